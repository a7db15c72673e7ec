"""Rows read and written as dicts through SQLAlchemy Core, for the store's hot paths.

An ORM session spends most of a small transaction's time on its own machinery (the
identity map, attribute history, the unit of work). A hot path that writes a few
known rows per step (an agent's reply and tool calls, a run's usage) uses these
instead, in the same tracked transaction:

1. `load_rows` reads whole rows as dicts; `insert_row`, `update_row` and `delete_row`
   write one row (`update_rows` several) and record the same `RowWrite` an ORM flush
   records for it (the whole row before and after, each value normalized by its
   column's kind), so subscriptions, the change log and other processes see the
   write exactly as an ORM write.
2. `update_row` writes only the columns whose values change, and nothing when none does.
3. Statements are built once per table and compiled once per set of columns.
4. A row written here must not also be held as an ORM object in the same session: that
   object would not see the change (and a flush of it could undo it).
5. What a later layer does for each row the ORM flushes (`on_row_written`), it does
   for each row inserted or updated here, in the same transaction.
6. Inside a write on SQLite, the statements run on the driver's connection (`_Driver`),
   with the SQL built once per table and set of columns and each column's conversions
   applied as SQLAlchemy applies them: a tenth of a Core execution's cost. Its errors
   are raised as SQLAlchemy's, as Core raises them. Reads in a query go through Core,
   where they are tracked.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.sql.schema import CallableColumnDefault, ScalarElementColumnDefault

from rxnb.store._sessions import Reader, Writer
from rxnb.store._tracking import RowWrite, Tracker, _kind, _normal
from rxnb.store._values import UNKNOWN

Row = dict[str, Any]

_STATEMENTS: dict[tuple[sa.Table, str], Any] = {}

RowHook = Callable[[Writer, Row, "Row | None"], None]
_HOOKS: dict[sa.Table, list[RowHook]] = {}


def on_row_written(table: sa.Table, hook: RowHook) -> None:
    """Rule 5: call `hook(db, row, old)` for each row of `table` inserted (`old` None)
    or updated here, after its statement, in its transaction."""
    _HOOKS.setdefault(table, []).append(hook)


def load_rows(
    db: Reader, table: sa.Table, column: sa.Column[Any], values: Iterable[Any]
) -> list[Row]:
    """The rows of `table` whose `column` is one of `values` (as tracked reads in a
    query), in no particular order."""
    wanted = list(values)
    if not wanted:
        return []
    driver = _Driver.of(db)
    if driver is not None:
        return driver.load(table, column.name, wanted)
    statement = _statement(table, "load", column.name)
    result = db.connection().execute(statement, {"values": wanted})
    return [dict(row) for row in result.mappings()]


def insert_row(db: Writer, table: sa.Table, values: Mapping[str, Any]) -> Row:
    """Insert one row (column defaults filled in as the ORM fills them); the whole row,
    with its generated key."""
    row = dict(values)
    for column in table.columns:
        if column.name in row:
            continue
        default = column.default
        if isinstance(default, ScalarElementColumnDefault):
            row[column.name] = default.arg
        elif isinstance(default, CallableColumnDefault):  # SQLModel's default_factory:
            row[column.name] = default.arg(None)  # type: ignore[arg-type]  # no context
        elif default is None and column.server_default is None and not column.primary_key:
            row[column.name] = None
        # else the database fills it in: the image leaves it out (unknown)
    with _Untracked(db) as tracker:
        driver = _Driver.of(db)
        if driver is not None:
            driver.insert(table, row)
        else:
            result = db.connection().execute(_statement(table, "insert"), row)
            keys = tuple(result.inserted_primary_key or ())
            for column, key in zip(table.primary_key.columns, keys, strict=True):
                row[column.name] = key
        for hook in _HOOKS.get(table, ()):
            hook(db, row, None)
    tracker.record(RowWrite(table.fullname, _key(table, row), None, _image(table, row)))
    return row


def update_row(db: Writer, table: sa.Table, row: Row, changes: Mapping[str, Any]) -> Row:
    """Set `changes` on `row` (as loaded); the row as it is now. Unchanged values are
    not written; when none changes, nothing is."""
    changed = _changed(row, changes)
    if not changed:
        return row
    _write_updates(db, table, [(row, changed)])
    return {**row, **changed}


def update_rows(
    db: Writer, table: sa.Table, updates: Sequence[tuple[Row, Mapping[str, Any]]]
) -> None:
    """`update_row` for several rows (each `(row as loaded, changes)`): the rows whose
    changed columns are the same are written by one statement run with each row's
    values (on PostgreSQL one round trip, psycopg pipelines them), not by one
    statement each. Rows with nothing changed are not written."""
    groups: dict[tuple[str, ...], list[tuple[Row, Row]]] = {}
    for row, changes in updates:
        changed = _changed(row, changes)
        if changed:
            groups.setdefault(tuple(changed), []).append((row, changed))
    for members in groups.values():
        _write_updates(db, table, members)


def _changed(row: Row, changes: Mapping[str, Any]) -> Row:
    return {k: v for k, v in changes.items() if row.get(k, _ABSENT) != v}


def _write_updates(db: Writer, table: sa.Table, members: Sequence[tuple[Row, Row]]) -> None:
    """Write each `(row as loaded, changed values)` of `members` (the same columns
    changed in each), run the table's row hooks, and record the writes."""
    driver = _Driver.of(db)
    with _Untracked(db) as tracker:
        if driver is not None and not _plan(driver.dialect, table).on_update:
            for row, changed in members:
                driver.update(table, _key(table, row)[0], changed)
        else:
            params = [{"_rx_key": _key(table, row)[0], **changed} for row, changed in members]
            db.connection().execute(
                _statement(table, "update"), params if len(params) > 1 else params[0]
            )
        for row, changed in members:
            for hook in _HOOKS.get(table, ()):
                hook(db, {**row, **changed}, row)
    kinds = _kinds(table)
    for row, changed in members:
        old = _image(table, row)
        now = {**old, **{name: _normal(value, kinds[name]) for name, value in changed.items()}}
        tracker.record(RowWrite(table.fullname, _key(table, row), old, now))


def delete_row(db: Writer, table: sa.Table, row: Row) -> None:
    """Delete `row` (as loaded)."""
    with _Untracked(db) as tracker:
        driver = _Driver.of(db)
        if driver is not None:
            driver.delete(table, _key(table, row)[0])
        else:
            db.connection().execute(_statement(table, "delete"), {"_rx_key": _key(table, row)[0]})
    tracker.record(RowWrite(table.fullname, _key(table, row), _image(table, row), None))


_ABSENT = object()


def _key(table: sa.Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


def _image(table: sa.Table, row: Row) -> dict[str, object]:
    return {name: _normal(row.get(name, UNKNOWN), kind) for name, kind in _kinds(table).items()}


_KINDS: dict[sa.Table, dict[str, str | None]] = {}


def _kinds(table: sa.Table) -> dict[str, str | None]:
    """Each column's kind (`_values.column_kind`), by name, worked out once per table."""
    kinds = _KINDS.get(table)
    if kinds is None:
        kinds = _KINDS[table] = {c.name: _kind(c) for c in table.columns}
    return kinds


def _statement(table: sa.Table, what: str, column: str = "") -> Any:
    """Rule 3."""
    found = _STATEMENTS.get((table, what + column))
    if found is None:
        keys = list(table.primary_key.columns)
        if what in ("update", "delete") and len(keys) != 1:
            raise TypeError(f"{table.name}: rows are updated here by a one-column primary key")
        if what == "load":
            found = sa.select(table).where(
                table.c[column].in_(sa.bindparam("values", expanding=True))
            )
        elif what == "insert":
            found = table.insert()
        elif what == "update":
            found = table.update().where(keys[0] == sa.bindparam("_rx_key"))
        else:
            found = table.delete().where(keys[0] == sa.bindparam("_rx_key"))
        _STATEMENTS[(table, what + column)] = found
    return found


class _Untracked:
    """A statement whose rows this module records itself (not as a table-level write)."""

    def __init__(self, db: Writer) -> None:
        tracker = getattr(db, "_rx_tracker", None)
        if tracker is None:
            raise TypeError("rows are written here only inside a store write (a mutation)")
        self.tracker: Tracker = tracker

    def __enter__(self) -> Tracker:
        self.tracker.flushing += 1
        return self.tracker

    def __exit__(self, *exc_info: object) -> None:
        self.tracker.flushing -= 1


class _Driver:
    """Rule 6: the statements of one write on SQLite, run on the driver's connection."""

    def __init__(self, connection: sqlite3.Connection, dialect: sa.Dialect) -> None:
        self.connection, self.dialect = connection, dialect

    @staticmethod
    def of(db: Reader) -> _Driver | None:
        """`db`'s driver when it is a write on SQLite (once per transaction), else None."""
        found = db.__dict__.get("_rx_driver", _ABSENT)
        if found is _ABSENT:
            found = None
            tracker = getattr(db, "_rx_tracker", None)
            if tracker is not None and tracker.writing:
                conn = db.connection()
                connection = conn.connection.driver_connection
                if conn.dialect.name == "sqlite" and isinstance(connection, sqlite3.Connection):
                    found = _Driver(connection, conn.dialect)
            db.__dict__["_rx_driver"] = found
        return found if isinstance(found, _Driver) else None

    def load(self, table: sa.Table, column: str, values: list[Any]) -> list[Row]:
        plan = _plan(self.dialect, table)
        sql = plan.loads.get((column, len(values)))
        if sql is None:
            marks = ", ".join("?" * len(values))
            sql = plan.loads[(column, len(values))] = (
                f"SELECT {plan.columns} FROM {plan.table} WHERE {plan.quoted[column]} IN ({marks})"
            )
        bind = plan.binds.get(column)
        rows = self._run(sql, [bind(v) for v in values] if bind else values).fetchall()
        names, results = plan.names, plan.results
        out = []
        for values_of_row in rows:
            row = dict(zip(names, values_of_row, strict=True))
            for name, convert in results:
                row[name] = convert(row[name])
            out.append(row)
        return out

    def insert(self, table: sa.Table, row: Row) -> None:
        """Insert `row`, setting its generated integer key if it has one."""
        plan = _plan(self.dialect, table)
        names = tuple(row)
        sql = plan.inserts.get(names)
        if sql is None:
            columns = ", ".join(plan.quoted[name] for name in names)
            sql = plan.inserts[names] = (
                f"INSERT INTO {plan.table} ({columns}) VALUES ({', '.join('?' * len(names))})"
            )
        cursor = self._run(sql, plan.bound(row, names))
        if plan.generated is not None and row.get(plan.generated) is None:
            row[plan.generated] = cursor.lastrowid

    def update(self, table: sa.Table, key: Any, changed: Row) -> None:
        plan = _plan(self.dialect, table)
        names = tuple(changed)
        sql = plan.updates.get(names)
        if sql is None:
            columns = ", ".join(f"{plan.quoted[name]}=?" for name in names)
            sql = plan.updates[names] = f"UPDATE {plan.table} SET {columns} WHERE {plan.key}=?"
        self._run(sql, [*plan.bound(changed, names), plan.bound_key(key)])

    def delete(self, table: sa.Table, key: Any) -> None:
        plan = _plan(self.dialect, table)
        self._run(f"DELETE FROM {plan.table} WHERE {plan.key}=?", [plan.bound_key(key)])

    def _run(self, sql: str, params: Sequence[Any]) -> sqlite3.Cursor:
        try:
            return self.connection.execute(sql, params)
        except sqlite3.Error as exc:  # as Core raises it: SQLAlchemy's, the driver's as .orig
            raise sa.exc.DBAPIError.instance(
                sql, list(params), exc, sqlite3.Error, dialect=self.dialect
            ) from exc


class _Plan:
    """A table's SQL for `_Driver`, and each column's conversions, on one dialect."""

    def __init__(self, dialect: sa.Dialect, table: sa.Table) -> None:
        quote = dialect.identifier_preparer.quote
        self.table = dialect.identifier_preparer.format_table(table)
        self.names = [c.name for c in table.columns]
        self.quoted = {c.name: quote(c.name) for c in table.columns}
        self.columns = ", ".join(self.quoted[name] for name in self.names)
        keys = list(table.primary_key.columns)
        self.key = self.quoted[keys[0].name] if len(keys) == 1 else ""
        self.key_bind = keys[0].type.dialect_impl(dialect).bind_processor(dialect) if keys else None
        integer_key = len(keys) == 1 and isinstance(keys[0].type, sa.Integer)
        self.generated: str | None = keys[0].name if integer_key else None
        self.on_update = any(c.onupdate is not None for c in table.columns)
        """Core sets such columns on an update: those updates go through Core."""
        self.binds: dict[str, Callable[[Any], Any]] = {}
        self.results: list[tuple[str, Callable[[Any], Any]]] = []
        for column in table.columns:
            impl = column.type.dialect_impl(dialect)
            bind = impl.bind_processor(dialect)
            result = impl.result_processor(dialect, None)
            if bind is not None:
                self.binds[column.name] = bind
            if result is not None:
                self.results.append((column.name, result))
        self.loads: dict[tuple[str, int], str] = {}
        self.inserts: dict[tuple[str, ...], str] = {}
        self.updates: dict[tuple[str, ...], str] = {}

    def bound(self, row: Row, names: tuple[str, ...]) -> list[Any]:
        binds = self.binds
        return [
            binds[name](row[name]) if name in binds and row[name] is not None else row[name]
            for name in names
        ]

    def bound_key(self, key: Any) -> Any:
        return self.key_bind(key) if self.key_bind is not None and key is not None else key


_PLANS: dict[tuple[str, sa.Table], _Plan] = {}


def _plan(dialect: sa.Dialect, table: sa.Table) -> _Plan:
    found = _PLANS.get((dialect.name, table))
    if found is None:
        found = _PLANS[(dialect.name, table)] = _Plan(dialect, table)
    return found

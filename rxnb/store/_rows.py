"""Rows read and written as dicts through SQLAlchemy Core, for the store's hot paths.

An ORM session spends most of a small transaction's time on its own machinery (the
identity map, attribute history, the unit of work). A hot path that writes a few
known rows per step (an agent's reply and tool calls, a run's usage) uses these
instead, in the same tracked transaction:

1. `load_rows` reads whole rows as dicts; `insert_row`, `update_row` and `delete_row`
   write one row and record the same `RowWrite` an ORM flush records for it (the
   whole row before and after, each value normalized by its column's kind), so
   subscriptions, the change log and other processes see the write exactly as an
   ORM write.
2. `update_row` writes only the columns whose values change, and nothing when none does.
3. Statements are built once per table and compiled once per set of columns.
4. A row written here must not also be held as an ORM object in the same session: that
   object would not see the change (and a flush of it could undo it).
5. What a later layer does for each row the ORM flushes (`on_row_written`), it does
   for each row inserted or updated here, in the same transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
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
    changed = {k: v for k, v in changes.items() if row.get(k, _ABSENT) != v}
    if not changed:
        return row
    new = {**row, **changed}
    key = _key(table, row)
    with _Untracked(db) as tracker:
        db.connection().execute(_statement(table, "update"), {"_rx_key": key[0], **changed})
        for hook in _HOOKS.get(table, ()):
            hook(db, new, row)
    old = _image(table, row)
    kinds = _kinds(table)
    now = {**old, **{name: _normal(value, kinds[name]) for name, value in changed.items()}}
    tracker.record(RowWrite(table.fullname, key, old, now))
    return new


def delete_row(db: Writer, table: sa.Table, row: Row) -> None:
    """Delete `row` (as loaded)."""
    with _Untracked(db) as tracker:
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

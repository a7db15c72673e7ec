"""Read-set and write-set capture, hooked into SQLAlchemy's events.

A `Tracker` is attached to a connection for the length of one rxnb transaction
(`connection.info[TRACKER]`). Engine events see every statement executed on it; mapper
events see every ORM row flushed through it. Connections without a tracker (the
user's own engines) are ignored.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.orm import Mapper, attributes
from sqlalchemy.sql import dml, elements

from rxnb.errors import ReadOnlyError
from rxnb.store._readset import ReadSet, analyze_statement
from rxnb.store._values import NUMBER, STRING, UNKNOWN, column_kind, normalize

TRACKER: Final = "rxnb.tracker"
EVERYTHING: Final = "*"
"""The table name of a write whose tables are unknown (text SQL): it touches all."""


@dataclass(frozen=True)
class RowWrite:
    """One row inserted (old None), updated, or deleted (new None), with its images."""

    table: str
    key: tuple[Any, ...]
    old: Mapping[str, object] | None
    new: Mapping[str, object] | None


@dataclass(frozen=True)
class TableWrite:
    """A statement that may have changed any row of `table` (`EVERYTHING`: any table)."""

    table: str


Write = RowWrite | TableWrite


@dataclass
class Tracker:
    """Collects what one transaction reads (readers) or writes (writers).

    Writes are kept in frames so that a nested mutation rolled back to its savepoint
    drops exactly its own writes.
    """

    writing: bool
    string_ranges: bool
    reads: ReadSet = field(default_factory=ReadSet)
    frames: list[list[Write]] = field(default_factory=lambda: [[]])
    flushing: int = 0

    def push_frame(self) -> None:
        self.frames.append([])

    def pop_frame(self, *, keep: bool) -> None:
        frame = self.frames.pop()
        if keep:
            self.frames[-1].extend(frame)

    def record(self, write: Write) -> None:
        self.frames[-1].append(write)

    def writes(self) -> list[Write]:
        return [w for frame in self.frames for w in frame]


def _tracker(conn: sa.Connection) -> Tracker | None:
    tracker = conn.info.get(TRACKER)
    return tracker if isinstance(tracker, Tracker) else None


def _merged_params(
    multiparams: Sequence[Mapping[str, Any]] | None, params: Mapping[str, Any] | None
) -> Mapping[str, Any] | None:
    merged = dict(params or {})
    if multiparams:
        if len(multiparams) > 1:
            return None  # several parameter sets: values cannot be pinned down
        merged.update(multiparams[0])
    return merged


def _before_execute(
    conn: sa.Connection,
    clauseelement: object,
    multiparams: Sequence[Mapping[str, Any]],
    params: Mapping[str, Any],
    execution_options: Mapping[str, Any],
) -> None:
    tracker = _tracker(conn)
    if tracker is None:
        return
    if isinstance(clauseelement, dml.UpdateBase):
        if not tracker.writing:
            raise ReadOnlyError(
                "A query tried to run a write statement "
                f"({type(clauseelement).__name__}); queries are read-only. "
                "Move the write into an @rx.mutation."
            )
        if not tracker.flushing:  # the ORM flush reports its rows itself
            table = clauseelement.table
            name = table.fullname if isinstance(table, sa.TableClause) else EVERYTHING
            tracker.record(TableWrite(name))
        return
    if tracker.writing:
        if isinstance(clauseelement, elements.TextClause):
            tracker.record(TableWrite(EVERYTHING))
        return
    merged = _merged_params(multiparams, params)
    reads = (
        analyze_statement(clauseelement, merged, string_ranges=tracker.string_ranges)
        if merged is not None
        else None
    )
    if reads is None:
        tracker.reads.everything = True
    else:
        tracker.reads.add(reads)


def _before_driver_sql(
    conn: sa.Connection,
    cursor: object,
    statement: str,
    parameters: object,
    context: object,
    executemany: bool,
) -> None:
    # exec_driver_sql bypasses before_execute; treat it as opaque SQL (rule 1).
    tracker = _tracker(conn)
    if tracker is None or context is None:
        return
    compiled = getattr(context, "compiled", None)
    if compiled is not None:
        return  # a compiled statement already seen by _before_execute
    if tracker.writing:
        tracker.record(TableWrite(EVERYTHING))
    else:
        tracker.reads.everything = True


def install_engine_hooks(engine: sa.Engine) -> None:
    """Attach the statement hooks to an engine rxnb created."""
    event.listen(engine, "before_execute", _before_execute)
    event.listen(engine, "before_cursor_execute", _before_driver_sql)


_KIND: Final = "rxnb.kind"


def _kind(column: sa.Column[Any]) -> str | None:
    # Cached on the column itself: a dict keyed by Column is slow (Column.__eq__
    # builds SQL), and one keyed by id() could outlive a redefined table's columns.
    info = column.info
    try:
        kind: str | None = info[_KIND]
    except KeyError:
        kind = info[_KIND] = column_kind(column)
    return kind


def _old_value(state: Any, key: str) -> object:
    if key not in state.committed_state:  # unchanged: its loaded value, if loaded
        return state.dict.get(key, UNKNOWN)
    history = state.attrs[key].history
    if history.deleted:
        return history.deleted[0]
    if history.unchanged:
        return history.unchanged[0]
    return UNKNOWN  # not loaded before it changed (or at all)


_Plan = tuple[tuple[str, str, str, str | None, bool], ...]
_PLANS: weakref.WeakKeyDictionary[Mapper[Any], _Plan] = weakref.WeakKeyDictionary()


def _plan(mapper: Mapper[Any]) -> _Plan:
    """(attribute, column, table, kind, primary key) of each table column `mapper`
    maps, worked out once per mapper."""
    plan = _PLANS.get(mapper)
    if plan is None:
        plan = tuple(
            (prop.key, column.name, column.table.fullname, _kind(column), column.primary_key)
            for prop in mapper.column_attrs
            for column in prop.columns
            if isinstance(column, sa.Column) and isinstance(column.table, sa.Table)
        )
        _PLANS[mapper] = plan
    return plan


def _row_writes(mapper: Mapper[Any], target: object, op: str) -> list[RowWrite]:
    """One RowWrite per table the mapped object spans (joined inheritance: several).

    The hot path of every ORM write (each row flushed): a column the flush did not
    change has one value, normalized once for both images."""
    state = attributes.instance_state(target)
    values, committed = state.dict, state.committed_state
    olds: dict[str, dict[str, object]] = {}
    news: dict[str, dict[str, object]] = {}
    keys: dict[str, list[object]] = {}
    insert, delete = op == "insert", op == "delete"
    for attr, name, table, kind, primary in _plan(mapper):
        raw = values.get(attr, UNKNOWN)
        value = _normal(raw, kind)
        if not insert:
            if attr in committed:
                old_raw = _old_value(state, attr)
                olds.setdefault(table, {})[name] = _normal(old_raw, kind)
            else:
                old_raw = raw
                olds.setdefault(table, {})[name] = value
        if not delete:
            news.setdefault(table, {})[name] = value
        if primary:
            key = old_raw if delete else raw
            keys.setdefault(table, []).append(None if key is UNKNOWN else key)
    tables = olds.keys() | news.keys()
    return [
        RowWrite(
            table,
            tuple(keys.get(table, ())),
            olds.get(table) if not insert else None,
            news.get(table) if not delete else None,
        )
        for table in sorted(tables)
    ]


def _normal(value: object, kind: str | None) -> object:
    """`normalize`, quicker for the exact types most values have."""
    if value is None or value is UNKNOWN:
        return value
    cls = type(value)
    if cls is str:
        return value if kind == STRING else UNKNOWN
    if cls is int or cls is float or cls is bool:
        return value if kind == NUMBER else UNKNOWN
    return normalize(value, kind)


def _on_row(op: str) -> Any:
    def listener(mapper: Mapper[Any], connection: sa.Connection, target: object) -> None:
        tracker = _tracker(connection)
        if tracker is None:
            return
        for write in _row_writes(mapper, target, op):
            tracker.record(write)

    return listener


def _install_mapper_hooks() -> None:
    for op in ("insert", "update", "delete"):
        event.listen(Mapper, f"after_{op}", _on_row(op))


_install_mapper_hooks()

"""`paginate`: one page of an ordered result, by keyset, that stays gap-free when live.

The rules, cited in the code by number:

1. The order is total: the statement's ORDER BY columns, then the primary key columns
   it does not name, in the direction of its last ORDER BY column.
2. NULL is the smallest value: first in an ascending column, last in a descending one
   (NULLS FIRST / NULLS LAST is spelled out for nullable columns, as the dialects'
   defaults differ).
3. A page holds the rows strictly after its cursor, up to and including its end. A
   cursor names a boundary row by its order values; the row need not exist any more.
4. The first run of a page reads `size + 1` rows to find its end: the last of its
   `size` rows, or the end of the result when fewer follow (`done`). Inside a
   subscription that end is pinned (`PinnedEnds`): later runs return every row between
   the cursor and the pinned end, however many, and keep `.cursor` at the end. Pages
   chained by cursors so never skip nor repeat a row whatever is written.
5. The keyset bounds are also given as top-level range conjuncts on the first order
   column wherever they hold for every row of the page, so that the read set narrows
   to the page (rules 4-5 of `_readset`), and an index on that column serves it.
6. The probe of rule 4 that looks one row past the end is not tracked when the end is
   pinned: the pinned page does not depend on rows past its end.
"""

from __future__ import annotations

import base64
import binascii
import datetime
import decimal
import hashlib
import json
import uuid
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, Final, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.orm import Session
from sqlalchemy.sql import elements, operators

from rxnb.errors import ArgumentError
from rxnb.store._readset import ReadSet
from rxnb.store._tracking import TRACKER, Tracker

T = TypeVar("T")

_END: Final[tuple[Any, ...]] = ()
"""A pinned end that is the end of the result (the page was the last one)."""


@dataclass(frozen=True)
class Page(Generic[T]):
    """One page of an ordered result, as `db.paginate` returns it.

    `items` are the page's rows in order. `cursor` is an opaque, URL-safe string: pass
    it as `cursor=` to get the next page. It is None exactly when `done` is True, i.e.
    when this page reached the end of the result. Inside a live query a page keeps the
    end it had when first read: it may grow or shrink as rows are written, and its
    `cursor` and `done` stay as they were, so that chained pages stay gap-free.
    """

    items: list[T]
    cursor: str | None
    done: bool


class PinnedEnds:
    """The ends of the pages one subscription has read (rule 4), keyed by call.

    Owned by a subscription and handed to its reader on every run; `sweep` after a
    run forgets the pages that run no longer asked for.
    """

    def __init__(self) -> None:
        self._ends: dict[Hashable, tuple[Any, ...]] = {}
        self._used: set[Hashable] = set()

    def get(self, key: Hashable) -> tuple[Any, ...] | None:
        self._used.add(key)
        return self._ends.get(key)

    def pin(self, key: Hashable, end: tuple[Any, ...]) -> None:
        self._used.add(key)
        self._ends[key] = end

    def sweep(self) -> None:
        for key in self._ends.keys() - self._used:
            del self._ends[key]
        self._used.clear()

    def __len__(self) -> int:
        return len(self._ends)


@dataclass(frozen=True)
class _Key:
    column: sa.Column[Any]
    descending: bool
    nullable: bool


def paginate(
    session: Session,
    statement: Any,
    cursor: object,
    size: object,
    pinned: PinnedEnds | None,
) -> Page[Any]:
    """See `Reader.paginate`."""
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise ArgumentError(f"db.paginate got size={size!r}; pass a whole number of rows >= 1")
    if cursor is not None and not isinstance(cursor, str):
        raise ArgumentError(
            f"db.paginate got cursor={cursor!r}; pass None for the first page "
            "or the `.cursor` of the page before"
        )
    table, keys = _order_keys(statement)
    fingerprint = _fingerprint(table, keys)
    start = _decode(cursor, fingerprint, len(keys)) if cursor is not None else None
    ordered = statement.order_by(None).order_by(*(_order_clause(k) for k in keys))
    width = len(statement.column_descriptions)
    labelled = [k.column.label(f"rx_page_key_{i}") for i, k in enumerate(keys)]
    call = _call_key(statement, cursor, size) if pinned is not None else None
    end = pinned.get(call) if pinned is not None else None
    if end is None:  # rule 4: the first run finds the end
        probe = _bounded(ordered, keys, start, None).add_columns(*labelled).limit(size + 1)
        if pinned is None:
            rows = _execute(session, probe)
        else:
            with _untracked(session):  # rule 6
                rows = _execute(session, probe)
        end = _END if len(rows) <= size else tuple(rows[size - 1][width:])
        if pinned is not None:
            pinned.pin(call, end)
        if pinned is None or end == _END:
            # The probe is the page: unpinned, or its read (all rows past the
            # cursor) is exactly what a last page depends on.
            if pinned is not None:
                rows = _execute(session, probe)  # now tracked
            return _page(rows[:size], width, end, fingerprint)
    bounded = _bounded(ordered, keys, start, None if end == _END else end)
    rows = _execute(session, bounded.add_columns(*labelled))
    return _page(rows, width, end, fingerprint)


def _page(
    rows: Sequence[sa.Row[Any]], width: int, end: tuple[Any, ...], fingerprint: str
) -> Page[Any]:
    items = [row[0] if width == 1 else tuple(row[:width]) for row in rows]
    if end == _END:
        return Page(items, None, True)
    return Page(items, _encode(end, fingerprint), False)


def _execute(session: Session, statement: sa.Select[Any]) -> list[sa.Row[Any]]:
    # sqlalchemy's own `execute`: SQLModel's would return only the first column of a
    # `select(Model)` given more columns.
    return list(Session.execute(session, statement).all())


class _untracked:  # noqa: N801 - a context manager, read as a phrase
    """Rule 6: statements run inside add nothing to the transaction's read set."""

    def __init__(self, session: Session) -> None:
        self._tracker: Tracker | None = None
        tracker = session.connection().info.get(TRACKER)
        if isinstance(tracker, Tracker) and not tracker.writing:
            self._tracker = tracker
        self._saved = ReadSet()

    def __enter__(self) -> None:
        if self._tracker is not None:
            self._saved, self._tracker.reads = self._tracker.reads, ReadSet()

    def __exit__(self, *exc_info: object) -> None:
        if self._tracker is not None:
            self._tracker.reads = self._saved


# -- the order ---------------------------------------------------------------------------


def _order_keys(statement: Any) -> tuple[sa.Table, list[_Key]]:
    """Rule 1: the statement's table and its total order."""
    if not isinstance(statement, sa.Select):
        raise ArgumentError(
            f"db.paginate needs a select(...) statement, got {type(statement).__name__}; "
            "pass e.g. select(Message).order_by(Message.id)"
        )
    # Not `get_final_froms()`: it compiles the statement, which costs more than the page.
    found = [*statement.columns_clause_froms, *statement._from_obj]
    froms = list(dict.fromkeys(f._deannotate() for f in found))  # ORM entities: annotated
    if statement._setup_joins or len(froms) != 1 or not isinstance(froms[0], sa.Table):
        raise ArgumentError(
            "db.paginate needs a select(...) of one table (no join or subquery); "
            "paginate the table and look the rest up per row"
        )
    table = froms[0]
    if statement._limit_clause is not None or statement._offset_clause is not None:
        raise ArgumentError(
            "db.paginate got a statement with .limit() or .offset(); drop them, "
            "`size=` and `cursor=` choose the page"
        )
    if statement._group_by_clauses or statement._distinct:
        raise ArgumentError(
            "db.paginate cannot page a statement with GROUP BY or DISTINCT; "
            "page the table's rows instead"
        )
    clauses = statement._order_by_clauses
    if not clauses:
        raise ArgumentError(
            "db.paginate needs an ordered statement; add .order_by(...), "
            "e.g. .order_by(Message.id) (the primary key is added as the tie-breaker)"
        )
    keys: list[_Key] = []
    for clause in clauses:
        column, descending = _order_column(clause, table)
        if not any(column is k.column for k in keys):
            keys.append(_Key(column, descending, bool(column.nullable)))
    if not table.primary_key.columns:
        raise ArgumentError(
            f"db.paginate needs table `{table.name}` to have a primary key (the tie-breaker)"
        )
    last_descending = keys[-1].descending
    for column in table.primary_key.columns:
        if not any(column is k.column for k in keys):
            keys.append(_Key(column, last_descending, False))
    return table, keys


def _order_column(clause: Any, table: sa.Table) -> tuple[sa.Column[Any], bool]:
    shown = clause
    descending = False
    if isinstance(clause, elements.UnaryExpression):
        if clause.modifier in (operators.nulls_first_op, operators.nulls_last_op):
            raise ArgumentError(
                "db.paginate orders NULL first ascending and last descending; "
                "drop .nulls_first() / .nulls_last() from the ORDER BY"
            )
        descending = clause.modifier is operators.desc_op
        clause = (
            clause.element if clause.modifier in (operators.desc_op, operators.asc_op) else None
        )
    column = _plain_column(clause)
    own = table.columns.get(column.key) if column is not None else None
    if column is None or own is None or column.table is not table:
        raise ArgumentError(
            f"db.paginate orders by columns of `{table.name}` only, got ORDER BY {shown}; "
            "order by plain columns, e.g. .order_by(Message.created_at.desc())"
        )
    return own, descending


def _plain_column(clause: Any) -> sa.Column[Any] | None:
    # An ORM attribute's column arrives "annotated"; its table is the real one.
    while isinstance(clause, elements.Grouping):
        clause = clause.element
    if isinstance(clause, sa.Column):
        column: sa.Column[Any] = clause
        return column
    return None


def _order_clause(key: _Key) -> sa.ColumnElement[Any]:
    if not key.nullable:
        return key.column.desc() if key.descending else key.column.asc()
    if key.descending:  # rule 2
        return key.column.desc().nulls_last()
    return key.column.asc().nulls_first()


def _fingerprint(table: sa.Table, keys: Sequence[_Key]) -> str:
    spec = ",".join(f"{k.column.name}{'-' if k.descending else '+'}" for k in keys)
    return hashlib.sha1(f"{table.fullname}:{spec}".encode()).hexdigest()[:8]


# -- the keyset predicates ---------------------------------------------------------------


def _bounded(
    ordered: sa.Select[Any],
    keys: Sequence[_Key],
    start: tuple[Any, ...] | None,
    end: tuple[Any, ...] | None,
) -> sa.Select[Any]:
    """Rule 3: rows after `start` (None: from the first), up to `end` (None: all)."""
    conjuncts: list[sa.ColumnElement[bool]] = []
    first = keys[0]
    column = first.column
    s1 = start[0] if start is not None else None
    e1 = end[0] if end is not None else None
    # Rule 5: a bound on the first column, where no row of the page can be NULL there.
    if not first.descending:
        if start is not None and s1 is not None:
            conjuncts.append(column >= _bound(column, s1))
        if end is not None and e1 is not None and (not first.nullable or s1 is not None):
            conjuncts.append(column <= _bound(column, e1))
    else:
        if start is not None and s1 is not None and (not first.nullable or e1 is not None):
            conjuncts.append(column <= _bound(column, s1))
        if end is not None and e1 is not None:
            conjuncts.append(column >= _bound(column, e1))
    if start is not None:
        conjuncts.append(_after(keys, start))
    if end is not None:
        conjuncts.append(_up_to(keys, end))
    return ordered.where(*conjuncts) if conjuncts else ordered


def _after(keys: Sequence[_Key], values: tuple[Any, ...]) -> sa.ColumnElement[bool]:
    """Rows strictly after `values` in the order."""
    expr: sa.ColumnElement[bool] = _follows(keys[-1], values[-1])
    for key, value in zip(reversed(keys[:-1]), reversed(values[:-1]), strict=True):
        expr = sa.or_(_follows(key, value), sa.and_(_equals(key, value), expr))
    return expr


def _up_to(keys: Sequence[_Key], values: tuple[Any, ...]) -> sa.ColumnElement[bool]:
    """Rows at or before `values` in the order."""
    expr: sa.ColumnElement[bool] = sa.or_(
        _precedes(keys[-1], values[-1]), _equals(keys[-1], values[-1])
    )
    for key, value in zip(reversed(keys[:-1]), reversed(values[:-1]), strict=True):
        expr = sa.or_(_precedes(key, value), sa.and_(_equals(key, value), expr))
    return expr


def _equals(key: _Key, value: Any) -> sa.ColumnElement[bool]:
    return key.column.is_(None) if value is None else key.column == _bound(key.column, value)


def _follows(key: _Key, value: Any) -> sa.ColumnElement[bool]:
    """The column's value comes after `value` (rule 2: NULL is the smallest)."""
    column = key.column
    if not key.descending:
        return column.is_not(None) if value is None else column > _bound(column, value)
    if value is None:
        return sa.false()
    below = column < _bound(column, value)
    return sa.or_(below, column.is_(None)) if key.nullable else below


def _precedes(key: _Key, value: Any) -> sa.ColumnElement[bool]:
    """The column's value comes before `value` (rule 2: NULL is the smallest)."""
    column = key.column
    if key.descending:
        return column.is_not(None) if value is None else column > _bound(column, value)
    if value is None:
        return sa.false()
    below = column < _bound(column, value)
    return sa.or_(below, column.is_(None)) if key.nullable else below


def _bound(column: sa.Column[Any], value: Any) -> sa.BindParameter[Any]:
    # Explicitly bound: SQLAlchemy refuses `column > True` written plainly.
    return sa.bindparam(None, value, type_=column.type)


def _call_key(statement: Any, cursor: object, size: int) -> Hashable:
    """Which paginate call of a query this is: its statement, parameters, cursor, size."""
    cache_key = statement._generate_cache_key()  # SQLAlchemy's own; cheaper than compiling
    if cache_key is not None:
        values = tuple(repr(b.effective_value) for b in cache_key.bindparams)
        return (cache_key.key, values, cursor, size)
    compiled = statement.compile()
    params = tuple(sorted((k, repr(v)) for k, v in compiled.params.items()))
    return (str(compiled), params, cursor, size)


# -- cursors -----------------------------------------------------------------------------


def _encode(values: tuple[Any, ...], fingerprint: str) -> str:
    parts: list[Any] = [fingerprint]
    for value in values:
        parts.append(_tagged(value))
    raw = json.dumps(parts, separators=(",", ":"), ensure_ascii=False).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _tagged(value: Any) -> list[Any]:
    if value is None:
        return ["n"]
    if isinstance(value, bool):
        return ["b", value]
    if isinstance(value, int):
        return ["i", value]
    if isinstance(value, float):
        return ["f", value.hex()]
    if isinstance(value, str):
        return ["s", value]
    if isinstance(value, datetime.datetime):
        return ["d", value.isoformat()]
    if isinstance(value, datetime.date):
        return ["D", value.isoformat()]
    if isinstance(value, datetime.time):
        return ["t", value.isoformat()]
    if isinstance(value, decimal.Decimal):
        return ["m", str(value)]
    if isinstance(value, uuid.UUID):
        return ["u", str(value)]
    raise ArgumentError(
        f"db.paginate cannot put a {type(value).__name__} order value in a cursor; "
        "order by int, float, str, bool, date/time, Decimal or UUID columns"
    )


def _untagged(part: Any) -> Any:
    tag, *rest = part
    if tag == "n" and not rest:
        return None
    (payload,) = rest
    match tag:
        case "b" if isinstance(payload, bool):
            return payload
        case "i" if isinstance(payload, int) and not isinstance(payload, bool):
            return payload
        case "f":
            return float.fromhex(payload)
        case "s" if isinstance(payload, str):
            return payload
        case "d":
            return datetime.datetime.fromisoformat(payload)
        case "D":
            return datetime.date.fromisoformat(payload)
        case "t":
            return datetime.time.fromisoformat(payload)
        case "m":
            return decimal.Decimal(payload)
        case "u":
            return uuid.UUID(payload)
    raise ValueError(tag)


def _decode(cursor: str, fingerprint: str, width: int) -> tuple[Any, ...]:
    shown = cursor if len(cursor) <= 40 else cursor[:40] + "…"
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        parts = json.loads(raw)
        if not isinstance(parts, list) or not parts:
            raise ValueError(parts)
        found, *tagged = parts
        values = tuple(_untagged(p) for p in tagged)
    except (ValueError, TypeError, binascii.Error, UnicodeDecodeError, decimal.InvalidOperation):
        raise ArgumentError(
            f"db.paginate got cursor {shown!r}, which is not a page cursor; pass None "
            "for the first page or the `.cursor` of the page before, unchanged"
        ) from None
    if found != fingerprint or len(values) != width:
        raise ArgumentError(
            f"db.paginate got cursor {shown!r} from a differently ordered statement; "
            "pass the `.cursor` of a page of this same ordered statement"
        )
    return values

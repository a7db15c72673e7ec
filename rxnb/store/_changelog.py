"""rxnb's own tables: the change log (`rx_changes`) and the table registry (`rx_tables`).

Every commit appends one `rx_changes` row per written row (or table) in the same
transaction. Other processes tail the log to learn what changed; the row images they
need to match subscriptions precisely are kept small (`_values.loggable`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import sqlalchemy as sa

from rxnb.store._tracking import RowWrite, TableWrite, Write
from rxnb.store._values import MAX_LOGGED_STRING, UNKNOWN, loggable

internal_metadata: Final = sa.MetaData()

changes_table: Final = sa.Table(
    "rx_changes",
    internal_metadata,
    sa.Column("seq", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("origin", sa.String(32), nullable=False),
    sa.Column("tbl", sa.String, nullable=False),
    sa.Column("key", sa.Text, nullable=True),
    sa.Column("old", sa.Text, nullable=True),
    sa.Column("new", sa.Text, nullable=True),
    sqlite_autoincrement=True,
)

tables_table: Final = sa.Table(
    "rx_tables",
    internal_metadata,
    sa.Column("name", sa.String, primary_key=True),
    sa.Column("created_at", sa.Float, nullable=False),
)

INSERT_CHANGE: Final = (
    "INSERT INTO rx_changes (at, origin, tbl, key, old, new) VALUES (?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True)
class LoggedChange:
    """One row of the change log, decoded."""

    seq: int
    origin: str
    write: Write | None
    """None for the reader's own entries, which it does not decode."""


_PLAIN: Final = (int, float, bool, type(None))


def _image(image: Mapping[str, object] | None) -> str | None:
    if image is None:
        return None
    kept = {}
    for k, v in image.items():  # once per column of every row written: plain types first
        kind = type(v)
        short = kind is str and len(v) <= MAX_LOGGED_STRING  # type: ignore[arg-type]
        if kind in _PLAIN or short or (v is not UNKNOWN and loggable(v)):
            kept[k] = v
    return json.dumps(kept, separators=(",", ":"))


def _key(key: tuple[Any, ...]) -> str | None:
    try:
        return json.dumps(list(key), separators=(",", ":"), default=str)
    except (TypeError, ValueError):
        return None


def encode(writes: Iterable[Write], origin: str) -> list[tuple[object, ...]]:
    """Rows for INSERT_CHANGE, one per write."""
    now = time.time()
    rows: list[tuple[object, ...]] = []
    for w in writes:
        if isinstance(w, RowWrite):
            rows.append((now, origin, w.table, _key(w.key), _image(w.old), _image(w.new)))
        else:
            rows.append((now, origin, w.table, None, None, None))
    return rows


def decode(
    seq: int, origin: str, table: str, key: str | None, old: str | None, new: str | None
) -> LoggedChange:
    """A log row back into a write; images lack what was too large to log (UNKNOWN)."""
    if key is None and old is None and new is None:
        return LoggedChange(seq, origin, TableWrite(table))
    return LoggedChange(
        seq,
        origin,
        RowWrite(
            table,
            tuple(json.loads(key)) if key else (),
            json.loads(old) if old is not None else None,
            json.loads(new) if new is not None else None,
        ),
    )


def decode_rows(rows: Iterable[Sequence[Any]], own_origin: str) -> list[LoggedChange]:
    """`(seq, origin, tbl, key, old, new)` log rows as changes, those of `own_origin`
    (the reader's own) left undecoded."""
    return [
        LoggedChange(row[0], row[1], None) if row[1] == own_origin else decode(*row) for row in rows
    ]

"""The `rx_journal` and `rx_events` tables: what each workflow run has done, and the
events sent to runs (kept until the run waits for them)."""

from __future__ import annotations

import dataclasses
from typing import Any

from sqlmodel import Field, SQLModel, select

from rxnb.store import own_table


class JournalEntry(SQLModel, table=True):
    """One completed step (or recorded value, sleep, wait) of one workflow run.

    Written in one commit when the step completes; a replay returns `output` (or
    raises `error`) instead of running the step again.
    """

    __tablename__ = "rx_journal"
    __table_args__ = own_table()

    run_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    """The step's position in the run: 0, 1, 2, … in the order the code reaches them."""
    name: str
    kind: str
    """step | query | mutation | value | sleep | event | patch"""
    output: str | None = None
    """The step's result as JSON (a sleep: its wake time; an event: its payload)."""
    error: str | None = None
    """Why the step failed: one line, `Type: message`."""
    started_at: float
    finished_at: float | None = None
    """None while a wait is in progress (an event not yet received)."""
    attempts: int = 1
    traceback: str | None = None
    """The details of `error` (not read on replay, which needs only the line)."""


class Event(SQLModel, table=True):
    """An event sent to a run (`rx.send_event`); consumed by `ctx.wait_for_event`."""

    __tablename__ = "rx_events"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str = Field(index=True)
    name: str
    payload: str = "null"
    sent_at: float
    consumed: bool = False


class ChildLink(SQLModel, table=True):
    """A child workflow's run and the parent step waiting for it (`ctx.child`)."""

    __tablename__ = "rx_children"

    child_id: str = Field(primary_key=True)
    parent_id: str = Field(index=True)
    seq: int


@dataclasses.dataclass(slots=True)
class Recorded:
    """A journal entry as a `WorkflowContext` holds it (a plain object: cheap to make)."""

    run_id: str
    seq: int
    name: str
    kind: str
    output: str | None
    error: str | None
    started_at: float
    finished_at: float | None
    attempts: int


def as_row(entry: Any) -> dict[str, Any]:
    """`entry` (a `Recorded` or a `JournalEntry`) as a row of `rx_journal`."""
    return {c: getattr(entry, c, None) for c in COLUMNS}


COLUMNS = [c.name for c in JournalEntry.__table__.columns]  # type: ignore[attr-defined]


def read_journal(db: Any, run_id: str) -> dict[int, Recorded]:
    """Run `run_id`'s journal by step number. Read as Core rows, not ORM objects:
    every resume reads the whole journal, and an agent loop's grows by a few entries
    per iteration (8.5 -> 2.0 ms per resume at 1,000 entries)."""
    table = JournalEntry.__table__  # type: ignore[attr-defined]
    rows = db.execute(select(*[table.c[f] for f in FIELDS]).where(table.c.run_id == run_id))
    return {row.seq: Recorded(*row) for row in rows}


FIELDS = [f.name for f in dataclasses.fields(Recorded)]
"""`Recorded`'s fields in order: a journal row read in this order is its arguments."""

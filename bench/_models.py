"""Tables, queries and mutations shared by the benchmark and its writer subprocess.

Both processes import this module so that they define the same SQLModel classes.
"""

from __future__ import annotations

from sqlmodel import Field, SQLModel, select

import rxnb as rx


class BenchCounter(SQLModel, table=True):
    """One row per thread, updated in place so query results stay small."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    content: str = ""
    written_at: float = 0.0


class BenchRow(SQLModel, table=True):
    """Insert target of the rxnb side of the throughput figure (P3)."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    content: str = ""


class PlainRow(SQLModel, table=True):
    """Insert target of the plain SQLModel baseline (P3)."""

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    content: str = ""


@rx.query
def counter(db: rx.Reader, thread_id: str) -> list[BenchCounter]:
    return list(db.exec(select(BenchCounter).where(BenchCounter.thread_id == thread_id)).all())


@rx.mutation
def create_counters(db: rx.Writer, thread_ids: list[str]) -> None:
    for thread_id in thread_ids:
        db.add(BenchCounter(thread_id=thread_id))


@rx.mutation
def set_counter(db: rx.Writer, thread_id: str, content: str, written_at: float = 0.0) -> None:
    row = db.exec(select(BenchCounter).where(BenchCounter.thread_id == thread_id)).one()
    row.content = content
    row.written_at = written_at
    db.add(row)


@rx.mutation
def insert_row(db: rx.Writer, thread_id: str, content: str) -> None:
    db.add(BenchRow(thread_id=thread_id, content=content))


@rx.query
def rows(db: rx.Reader, thread_id: str) -> list[BenchRow]:
    return list(db.exec(select(BenchRow).where(BenchRow.thread_id == thread_id)).all())

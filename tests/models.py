"""Table classes and functions the tests share (importable from subprocesses too)."""

from __future__ import annotations

from sqlmodel import Field, SQLModel, select

import rxnb as rx


class Message(SQLModel, table=True):
    __tablename__ = "t_message"
    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str = "user"
    content: str = ""


class Counter(SQLModel, table=True):
    __tablename__ = "t_counter"
    id: int = Field(primary_key=True)
    value: int = 0


class Item(SQLModel, table=True):
    __tablename__ = "t_item"
    id: int | None = Field(default=None, primary_key=True)
    grp: str = Field(index=True)
    n: int = 0
    label: str = ""


@rx.query
def messages(db: rx.Reader, thread_id: str) -> list[Message]:
    return db.exec(select(Message).where(Message.thread_id == thread_id)).all()


@rx.mutation
def send(db: rx.Writer, thread_id: str, text: str) -> int:
    message = Message(thread_id=thread_id, content=text)
    db.add(message)
    db.flush()
    assert message.id is not None
    return message.id


@rx.query
def counter(db: rx.Reader, counter_id: int = 1) -> int:
    row = db.get(Counter, counter_id)
    return row.value if row else 0


@rx.mutation
def increment(db: rx.Writer, counter_id: int = 1) -> int:
    row = db.get(Counter, counter_id)
    if row is None:
        row = Counter(id=counter_id, value=0)
        db.add(row)
    row.value += 1
    return row.value

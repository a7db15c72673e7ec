"""The store's Core row path (`load_rows`, `insert_row`, `update_row`, `delete_row`):
each write is recorded exactly as an ORM flush records the same write, so what
subscriptions, the change log and other processes see does not depend on the path."""

from __future__ import annotations

import datetime
import time
from collections.abc import Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from polling import until
from sqlmodel import Field, SQLModel, select

import rxnb as rx
from rxnb.agents import Message
from rxnb.store import RowWrite, Write, Writer, delete_row, insert_row, load_rows, update_row

TABLE = Message.__table__  # type: ignore[attr-defined]


class Commits:
    """The writes of each commit of `store`."""

    def __init__(self, store: rx.Store) -> None:
        self.seen: list[list[Write]] = []
        store.database.add_commit_listener(self._heard)

    def _heard(self, writes: Sequence[Write]) -> None:
        self.seen.append(list(writes))

    def take(self) -> list[RowWrite]:
        found = [w for commit in self.seen for w in commit]
        self.seen.clear()
        assert all(isinstance(w, RowWrite) for w in found), found
        return [w for w in found if isinstance(w, RowWrite)]


def _without_id(image: object) -> object:
    return {k: v for k, v in image.items() if k != "id"} if isinstance(image, dict) else image


def _same(orm: RowWrite, core: RowWrite) -> None:
    assert (orm.table, _without_id(orm.old), _without_id(orm.new)) == (
        core.table,
        _without_id(core.old),
        _without_id(core.new),
    )


def test_inserts_updates_and_deletes_are_recorded_as_the_orm_records_them(
    store: rx.Store,
) -> None:
    db, commits = store.database, Commits(store)
    at = time.time()
    values = {"thread_id": "t", "role": "tool", "text": "x" * 300, "created_at": at}
    values |= {"arguments": '{"n": 1}', "files": '["f1"]', "cost": 0.5, "step": 2}

    def orm_insert(w: Writer) -> int:
        row = Message(**values)
        w.add(row)
        w.flush()
        assert row.id is not None
        return row.id

    orm_id = db.write(orm_insert)
    (orm,) = commits.take()
    core_id = db.write(lambda w: insert_row(w, TABLE, values)["id"])
    (core,) = commits.take()
    assert core.old is None and core.new is not None
    assert core.key == (core_id,) and core.new["id"] == core_id != orm_id
    assert core.new["status"] == "done", "the column default is filled in, as the ORM does"
    _same(orm, core)

    changes = {"status": "failed", "text": "boom", "error": "it broke", "cost": None}

    def orm_update(w: Writer) -> None:
        row = w.get(Message, orm_id)
        assert row is not None
        for name, value in changes.items():
            setattr(row, name, value)

    db.write(orm_update)
    (orm,) = commits.take()
    db.write(lambda w: update_row(w, TABLE, load_rows(w, TABLE, TABLE.c.id, [core_id])[0], changes))
    (core,) = commits.take()
    _same(orm, core)
    assert core.old is not None and core.old["status"] == "done"

    def orm_delete(w: Writer) -> None:
        w.delete(w.get(Message, orm_id))

    db.write(orm_delete)
    (orm,) = commits.take()
    db.write(lambda w: delete_row(w, TABLE, load_rows(w, TABLE, TABLE.c.id, [core_id])[0]))
    (core,) = commits.take()
    _same(orm, core)
    assert core.new is None
    assert db.read(lambda r: r.exec(select(Message)).all())[0] == []


def test_an_update_that_changes_nothing_writes_nothing(store: rx.Store) -> None:
    db, commits = store.database, Commits(store)
    row = db.write(lambda w: insert_row(w, TABLE, {"thread_id": "t", "role": "user"}))
    commits.take()
    same = db.write(lambda w: update_row(w, TABLE, row, {"role": "user", "text": ""}))
    assert same == row
    assert commits.take() == []


def test_rows_written_in_a_mutation_that_raises_are_not_written(store: rx.Store) -> None:
    db, commits = store.database, Commits(store)

    def half(w: Writer) -> None:
        insert_row(w, TABLE, {"thread_id": "t", "role": "user", "text": "kept?"})
        raise ValueError("changed my mind")

    with pytest.raises(ValueError, match="changed my mind"):
        db.write(half)
    assert commits.take() == []
    assert db.read(lambda r: r.exec(select(Message)).all())[0] == []


def test_rows_are_written_only_inside_a_write(store: rx.Store) -> None:
    with pytest.raises(TypeError, match="only inside a store write"):
        store.database.read(lambda r: insert_row(r, TABLE, {"thread_id": "t", "role": "user"}))  # type: ignore[arg-type]


def test_a_live_query_sees_rows_written_on_the_core_path(store: rx.Store) -> None:
    @rx.query
    def done_in(db: rx.Reader, thread: str) -> list[str]:
        rows = db.exec(select(Message).where(Message.thread_id == thread, Message.status == "done"))
        return [m.text for m in rows]

    seen: list[list[str]] = []
    sub = store.subscribe(done_in, {"thread": "t"}, seen.append)
    try:
        row = store.database.write(
            lambda w: insert_row(w, TABLE, {"thread_id": "t", "role": "user", "text": "a"})
        )
        until(lambda: seen[-1:] == [["a"]])
        store.database.write(lambda w: update_row(w, TABLE, row, {"status": "failed"}))
        until(lambda: seen[-1:] == [[]])  # the old image matched: the query ran again
    finally:
        sub.close()


class Typed(SQLModel, table=True):
    """Columns whose values SQLAlchemy converts on their way in or out on some dialect."""

    __tablename__ = "rows_typed"
    id: int | None = Field(default=None, primary_key=True)
    key: str = ""  # a keyword of SQL
    flag: bool = False
    at: datetime.datetime | None = None
    data: dict[str, Any] | None = Field(default=None, sa_column=sa.Column(sa.JSON))
    amount: float = 0.0


def test_rows_read_and_written_in_a_write_are_those_read_in_a_query(store: rx.Store) -> None:
    db, table = store.database, Typed.__table__  # type: ignore[attr-defined]
    when = datetime.datetime(2026, 12, 4, 18, 30, 15, 123456, tzinfo=datetime.UTC)
    values = {"key": "k", "flag": True, "at": when, "data": {"a": [1, 2]}, "amount": 1.5}
    first = db.write(lambda w: insert_row(w, table, values))
    second = db.write(lambda w: insert_row(w, table, {"key": "other"}))
    assert (first["id"], second["id"]) == (1, 2)
    changes = {"flag": False, "at": when + datetime.timedelta(days=1), "data": {"b": None}}
    updated = db.write(
        lambda w: update_row(w, table, load_rows(w, table, table.c.id, [1])[0], changes)
    )

    in_write = db.write(lambda w: load_rows(w, table, table.c.id, [2, 1]))
    in_query = db.read(lambda r: load_rows(r, table, table.c.id, [1, 2]))[0]
    by_orm = db.read(lambda r: [t.model_dump() for t in r.exec(select(Typed).order_by(Typed.id))])[
        0
    ]
    ordered = sorted(in_write, key=lambda row: row["id"])
    assert ordered == sorted(in_query, key=lambda row: row["id"]) == by_orm
    assert ordered[0] == updated == {**values, **changes, "id": 1}
    assert isinstance(ordered[0]["flag"], bool) and isinstance(ordered[0]["at"], datetime.datetime)


def test_a_row_the_database_refuses_raises_sqlalchemys_error_and_leaves_nothing(
    store: rx.Store,
) -> None:
    db, table = store.database, Typed.__table__  # type: ignore[attr-defined]
    db.write(lambda w: insert_row(w, table, {"id": 7, "key": "a"}))

    def twice(w: Writer) -> None:
        insert_row(w, table, {"id": 8, "key": "b"})
        insert_row(w, table, {"id": 7, "key": "again"})

    with pytest.raises(sa.exc.IntegrityError):
        db.write(twice)
    rows = db.read(lambda r: load_rows(r, table, table.c.id, [7, 8]))[0]
    assert [(row["id"], row["key"]) for row in rows] == [(7, "a")]
    db.write(lambda w: insert_row(w, table, {"id": 8, "key": "b"}))  # the store goes on

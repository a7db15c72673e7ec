"""`Run.ties`: a write that adds a child link, a generation or a message naming a run
marks the run, and a run's end looks up only the kinds of rows it is marked with; a
run without marks (NULL: a row from before the column, or inserted by hand) looks up
every kind, as before."""

from __future__ import annotations

import time
import uuid
from typing import Any

import pytest
import sqlalchemy as sa

import rxnb as rx
from rxnb.agents import Message
from rxnb.execution import Executor, ties
from rxnb.llm import Generation
from rxnb.store import insert_row, update_row
from rxnb.workflows import ChildLink

MESSAGES = Message.__table__  # type: ignore[attr-defined]


@rx.action
def add(ctx: rx.ActionContext, a: int, b: int) -> int:
    return a + b


def _queued_run(store: rx.Store, ties: int | None = 0) -> str:
    """A run of a function no one runs, due in a day: it stays queued until cancelled.
    `ties=0` as `start` inserts it; None as a run inserted by hand."""
    run_id = uuid.uuid4().hex[:16]

    def write(db: rx.Writer) -> None:
        now = time.time()
        db.add(
            rx.Run(id=run_id, function="nowhere.f", due_at=now + 86400, created_at=now, ties=ties)
        )

    store.database.write(write)
    return run_id


def _ties_of(store: rx.Store, run_id: str) -> int | None:
    return store.database.read(lambda db: db.get(rx.Run, run_id))[0].ties  # type: ignore[union-attr]


def _add_rows(db: rx.Writer, run_id: str) -> None:
    db.add(Message(thread_id="t", role="assistant", status="streaming", run_id=run_id))
    db.add(
        Generation(run_id=run_id, target="nowhere", row_key="1", field="f", model="m", started_at=0)
    )


def _statuses(store: rx.Store, run_id: str) -> tuple[str, str]:
    def read(db: rx.Reader) -> tuple[str, str]:
        message = db.exec(sa.select(Message.status).where(Message.run_id == run_id)).one()
        generation = db.exec(sa.select(Generation.status).where(Generation.run_id == run_id)).one()
        return message[0], generation[0]

    return store.database.read(read)[0]


def test_rows_that_name_a_run_mark_it(store: rx.Store) -> None:
    plain, linked = _queued_run(store), _queued_run(store)
    assert _ties_of(store, plain) == 0
    store.database.write(lambda db: _add_rows(db, linked))
    assert _ties_of(store, linked) == ties.GENERATIONS | ties.MESSAGES
    store.database.write(lambda db: db.add(ChildLink(child_id=linked, parent_id="p", seq=0)))
    assert _ties_of(store, linked) == ties.GENERATIONS | ties.MESSAGES | ties.CHILD
    assert _ties_of(store, plain) == 0


def test_a_row_given_a_run_later_marks_it_and_other_changes_write_no_mark(
    store: rx.Store,
) -> None:
    run_id = _queued_run(store)
    message_id = store.database.write(lambda db: _new_message(db, run_id=None))
    assert _ties_of(store, run_id) == 0

    def set_run(db: rx.Writer) -> None:
        row = db.get(Message, message_id)
        assert row is not None
        row.run_id = run_id

    store.database.write(set_run)
    assert _ties_of(store, run_id) == ties.MESSAGES
    marks: list[str] = []
    sa.event.listen(store.database.engines()[1], "before_cursor_execute", note_marks(marks))

    def edit(db: rx.Writer) -> None:
        row = db.get(Message, message_id)
        assert row is not None
        row.text = "changed"

    store.database.write(edit)  # its run was marked when it was set: no second mark
    assert marks == []


def test_rows_written_as_rows_mark_their_run_as_orm_rows_do(store: rx.Store) -> None:
    inserted, updated = _queued_run(store), _queued_run(store)
    row = store.database.write(
        lambda db: insert_row(db, MESSAGES, {"thread_id": "t", "role": "tool", "run_id": inserted})
    )
    assert _ties_of(store, inserted) == ties.MESSAGES
    plain = store.database.write(
        lambda db: insert_row(db, MESSAGES, {"thread_id": "t", "role": "assistant"})
    )
    assert _ties_of(store, updated) == 0
    store.database.write(lambda db: update_row(db, MESSAGES, plain, {"run_id": updated}))
    assert _ties_of(store, updated) == ties.MESSAGES
    marks: list[str] = []
    sa.event.listen(store.database.engines()[1], "before_cursor_execute", note_marks(marks))
    store.database.write(lambda db: update_row(db, MESSAGES, row, {"text": "changed"}))
    assert marks == [], "its run was marked when the row was inserted"


def test_a_mark_committed_once_is_not_written_again_and_one_rolled_back_is(
    store: rx.Store,
) -> None:
    """Bits are only ever set: once this process has committed one, a new row naming
    the run writes no mark (an agent adds a message at every step); a mark whose
    transaction rolled back is not taken as set."""
    run_id = _queued_run(store)
    marks: list[str] = []
    sa.event.listen(store.database.engines()[1], "before_cursor_execute", note_marks(marks))

    def add_then_fail(db: rx.Writer) -> None:
        _new_message(db, run_id=run_id)
        raise ValueError("rolled back")

    def nested_then_fail(db: rx.Writer) -> None:  # a savepoint released, then a rollback
        store.database.write(lambda inner: _new_message(inner, run_id=run_id))
        raise ValueError("rolled back")

    for failing in (add_then_fail, nested_then_fail):
        with pytest.raises(ValueError, match="rolled back"):
            store.database.write(failing)
    assert _ties_of(store, run_id) == 0
    assert len(marks) == 2
    store.database.write(lambda db: _new_message(db, run_id=run_id))
    assert _ties_of(store, run_id) == ties.MESSAGES
    assert len(marks) == 3
    for _ in range(3):
        store.database.write(lambda db: _new_message(db, run_id=run_id))
        store.database.write(
            lambda db: insert_row(
                db, MESSAGES, {"thread_id": "t", "role": "tool", "run_id": run_id}
            )
        )
    assert len(marks) == 3
    store.database.write(
        lambda db: db.add(
            Generation(run_id=run_id, target="x", row_key="1", field="f", model="m", started_at=0)
        )
    )
    assert _ties_of(store, run_id) == ties.MESSAGES | ties.GENERATIONS  # another bit: marked
    assert len(marks) == 4


def _new_message(db: rx.Writer, run_id: str | None) -> int:
    row = Message(thread_id="t", role="assistant", status="done", run_id=run_id)
    db.add(row)
    db.flush()
    assert row.id is not None
    return row.id


def note_marks(marks: list[str]) -> object:
    def before(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if statement.startswith("UPDATE rx_runs SET ties"):
            marks.append(statement)

    return before


def test_a_run_and_its_rows_in_one_transaction_are_marked(store: rx.Store) -> None:
    run_id = uuid.uuid4().hex[:16]

    def write(db: rx.Writer) -> None:
        now = time.time()
        db.add(rx.Run(id=run_id, function="nowhere.f", due_at=now + 86400, created_at=now, ties=0))
        _add_rows(db, run_id)

    store.database.write(write)
    assert _ties_of(store, run_id) == ties.GENERATIONS | ties.MESSAGES
    marks: list[str] = []
    sa.event.listen(store.database.engines()[1], "before_cursor_execute", note_marks(marks))
    store.database.write(lambda db: _add_rows(db, run_id))  # an agent's next step
    assert marks == [], "the marks it was created with are known to be set"


def test_a_marked_run_ends_its_rows(store: rx.Store) -> None:
    run_id = _queued_run(store)
    store.database.write(lambda db: _add_rows(db, run_id))
    rx.cancel(run_id)
    assert _statuses(store, run_id) == ("cancelled", "cancelled")


def test_a_run_inserted_by_hand_is_unmarked_and_still_ends_its_rows(store: rx.Store) -> None:
    run_id = _queued_run(store, ties=None)
    store.database.write(lambda db: _add_rows(db, run_id))
    assert _ties_of(store, run_id) is None  # a mark cannot make NULL mean "nothing"
    rx.cancel(run_id)
    assert _statuses(store, run_id) == ("cancelled", "cancelled")


def test_runs_from_before_the_column_get_null_and_still_end_their_rows(url: str) -> None:
    """A store written by an rxnb without `Run.ties`: opening it adds the column as
    NULL on the runs already there (not 0, which would skip their rows)."""
    store = rx.open(url)
    try:
        run_id = _queued_run(store)
        store.database.write(lambda db: _add_rows(db, run_id))
    finally:
        store.close()
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:  # as an older rxnb left it
            conn.exec_driver_sql("ALTER TABLE rx_runs DROP COLUMN ties")
    finally:
        engine.dispose()
    store = rx.open(url)
    try:
        assert _ties_of(store, run_id) is None
        rx.cancel(run_id)
        assert _statuses(store, run_id) == ("cancelled", "cancelled")
        assert _ties_of(store, add.start(a=1, b=2).id) == 0
    finally:
        store.close()


def test_an_untied_run_ends_with_its_row_alone_and_hooks_of_others_still_run(
    store: rx.Store,
) -> None:
    """A run with no ties ends at READ COMMITTED, its row locked (no other row to
    change); a `RUN_ENDED` hook that did not declare itself gated sees every end."""
    handle = add.start(a=2, b=3)
    assert handle.result(timeout=10) == 5
    assert _ties_of(store, handle.id) == 0
    seen: list[tuple[str, str]] = []

    def hook(db: rx.Writer, run: rx.Run) -> None:
        seen.append((run.id, run.status))

    rx.execution.RUN_ENDED.append(hook)
    try:
        other = add.start(a=1, b=1)
        assert other.result(timeout=10) == 2
    finally:
        rx.execution.RUN_ENDED.remove(hook)
    assert seen == [(other.id, "succeeded")]


def test_a_run_tied_when_claimed_ends_alone_at_once_and_ends_its_rows(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its end is recorded in one transaction, not first tried in a batch (which would
    leave it, as rows point at it), and still ends the rows that point at it."""
    batched: list[str] = []
    real = Executor._write_ends

    def write_ends(executor: Executor, batch: list[Any]) -> None:
        batched.extend(end.ctx.run_id for end in batch)
        real(executor, batch)

    monkeypatch.setattr(Executor, "_write_ends", write_ends)

    def send(db: rx.Writer) -> str:
        run_id = db.schedule(add, a=2, b=3)
        db.add(Message(thread_id="t", role="assistant", status="streaming", run_id=run_id))
        return run_id

    run_id = store.database.write(send)
    assert rx.RunHandle(run_id, store).result(timeout=10) == 5
    assert batched == []
    status = store.database.read(
        lambda db: db.exec(sa.select(Message.status).where(Message.run_id == run_id)).one()
    )[0]
    assert status[0] != "streaming"
    untied = add.start(a=1, b=1)
    assert untied.result(timeout=10) == 2
    assert batched == [untied.id], "an untied run's end is still tried in a batch"

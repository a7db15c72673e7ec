"""`rx.agents.fork`: a new thread that begins as a copy of another up to a message.

Rules:

1. `fork(thread_id, at_message=N)` makes a new thread holding copies of the source
   thread's messages with ids up to N, N included (the message the fork branches at
   is its last), in order, with their parts: text, files, tool calls with their
   arguments, approvals, results and errors, usage and cost. The copies get new ids;
   a tool call's copy points at the copy of its reply (`parent_id`) and gets a call id
   of its own (call ids are unique in the store: `rx.agents.approve` finds a call by
   it). Each copy keeps the run that wrote the original (`run_id`), its agent, model,
   step and time.
2. Message N must be in the thread, and every message copied must have ended (no
   reply still streaming, no call waiting for approval): the new thread has no turn
   to finish them. Fork at an earlier message, or once the turn has ended.
3. The new thread's row records where it came from (`Thread.forked_from`,
   `Thread.forked_at`); the source thread is not changed. Everything is written in one
   transaction: an error writes nothing.
4. The new thread is an ordinary thread: `agent.send(new_id, text)` goes on from the
   copied messages (the model is sent them as history), `rx.chat(new_id)` shows it.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from sqlmodel import col, select

from rxnb.agents._model import UNFINISHED, Message, Thread
from rxnb.errors import AgentError
from rxnb.reactive import Store, current_store
from rxnb.store import Writer

_COPIED = [c.name for c in Message.__table__.columns if c.name != "id"]  # type: ignore[attr-defined]


def fork_in(db: Writer, thread_id: str, at_message: int, new_thread: str | None = None) -> str:
    """`rx.agents.fork` inside a transaction: the new thread's id (the module's rules)."""
    if isinstance(at_message, bool) or not isinstance(at_message, int):
        raise AgentError(
            f"rx.agents.fork({thread_id!r}, at_message={at_message!r}): give the id of a "
            "message of the thread (an int: rx.agents.messages(thread_id) lists them)"
        )
    target = db.get(Message, at_message)
    if target is None or target.thread_id != thread_id:
        where = "no message has that id"
        if target is not None:
            where = f"message {at_message} is in thread {target.thread_id!r}"
        raise AgentError(
            f"rx.agents.fork({thread_id!r}, at_message={at_message}): {where}; give the id "
            "of one of its messages (rx.agents.messages(thread_id) lists them)"
        )
    copied = list(
        db.exec(
            select(Message)
            .where(Message.thread_id == thread_id, col(Message.id) <= at_message)
            .order_by(col(Message.id))
        ).all()
    )
    for message in copied:  # rule 2
        if message.status in UNFINISHED:
            raise AgentError(
                f"rx.agents.fork: message {message.id} of thread {thread_id!r} is still "
                f"{message.status}; fork at a message before it, or once its turn has ended"
            )
    new_id = new_thread if new_thread is not None else f"{thread_id}-fork-{uuid.uuid4().hex[:6]}"
    if db.get(Thread, new_id) is not None or _has_messages(db, new_id):
        raise AgentError(
            f"rx.agents.fork: thread {new_id!r} exists already; give another new_thread="
        )
    source = db.get(Thread, thread_id)
    now = time.time()
    db.add(
        Thread(
            id=new_id,
            agent=None if source is None else source.agent,
            title=copied[0].text[:80] if source is None else source.title,
            created_at=now,
            updated_at=now,
            forked_from=thread_id,
            forked_at=at_message,
        )
    )
    _copy(db, copied, new_id)
    return new_id


def _has_messages(db: Writer, thread_id: str) -> bool:
    found = db.exec(select(Message.id).where(Message.thread_id == thread_id).limit(1)).first()
    return found is not None


def _copy(db: Writer, messages: list[Message], new_id: str) -> None:
    """Rule 1: copies in order, tool calls pointing at their reply's copy."""
    ids: dict[int, int] = {}
    suffix = uuid.uuid4().hex[:8]
    for message in messages:
        values: dict[str, Any] = {name: getattr(message, name) for name in _COPIED}
        values["thread_id"] = new_id
        if message.parent_id is not None:
            values["parent_id"] = ids.get(message.parent_id, message.parent_id)
        if message.call_id is not None:
            values["call_id"] = f"{message.call_id}-{suffix}"
        copy = Message(**values)
        db.add(copy)
        db.flush()  # its id, for the tool calls that point at it
        assert message.id is not None
        assert copy.id is not None
        ids[message.id] = copy.id


def fork(
    thread_id: str,
    *,
    at_message: int,
    new_thread: str | None = None,
    store: Store | None = None,
) -> str:
    """A new thread that begins with copies of thread `thread_id`'s messages up to
    message `at_message` (its id, included), with their parts; the new thread's id
    (`new_thread`, or `<thread_id>-fork-<random>`).

        t2 = rx.agents.fork("t1", at_message=12)   # messages <= 12 copied
        helper.send(t2, "And in Berlin?")           # goes on from there

    The source thread is not changed; the new one records it (`Thread.forked_from`,
    `Thread.forked_at`). Every copied message must have ended.
    """
    target = store or current_store()
    return str(target.database.write(lambda db: fork_in(db, thread_id, at_message, new_thread)))

"""What a model call is sent (rule 2 of `rxnb.agents._threads`): the agent's
instructions, then the thread's latest `history` messages before the reply (100 by
default), never starting inside a tool exchange, with the context retrieved for a
reply just before it, read in one statement."""

from __future__ import annotations

from typing import Any

from sqlmodel import select

import rxnb as rx
from rxnb.agents import Message
from rxnb.agents._threads import HISTORY, model_input


def _thread(store: rx.Store, exchanges: int) -> int:
    """A thread of `exchanges` user/assistant pairs, each third reply with a tool call,
    then a user message and a pending reply; the pending reply's id."""

    def write(db: rx.Writer) -> int:
        for i in range(exchanges):
            db.add(Message(thread_id="w", role="user", text=f"q{i}"))
            reply = Message(thread_id="w", role="assistant", text=f"a{i}")
            db.add(reply)
            if i % 3 == 0:
                db.flush()
                db.add(
                    Message(
                        thread_id="w",
                        role="tool",
                        parent_id=reply.id,
                        call_id=f"c{i}",
                        tool_name="f",
                        arguments="{}",
                        text=f"r{i}",
                    )
                )
        db.add(Message(thread_id="w", role="user", text="last"))
        db.add(Message(thread_id="other", role="user", text="not this thread"))
        pending = Message(thread_id="w", role="assistant", status="pending")
        db.add(pending)
        db.flush()
        assert pending.id is not None
        return pending.id

    return store.database.write(write)


def _sent(store: rx.Store, until: int, history: int = HISTORY) -> tuple[Any, list[dict[str, Any]]]:
    return store.database.read(
        lambda db: model_input(
            db, "w", instructions="Be brief.", history=history, context=None, until=until
        )
    )[0]


def _contents(sent: list[dict[str, Any]]) -> list[Any]:
    return [m.get("content") for m in sent]


def _expected(store: rx.Store, until: int, history: int) -> list[dict[str, Any]]:
    """Rule 2 worked out here from every stored message, to compare with."""
    stored = store.database.read(
        lambda db: db.exec(
            select(Message)
            .where(Message.thread_id == "w", Message.id < until)  # type: ignore[operator]
            .order_by(Message.id)  # type: ignore[arg-type]
        ).all()
    )[0]
    window = stored[-history:]
    while window and window[0].role == "tool":
        window = window[1:]
    out: list[dict[str, Any]] = [{"role": "system", "content": "Be brief."}]
    for m in window:
        if m.role == "user":
            out.append({"role": "user", "content": m.text})
        elif m.role == "assistant":
            calls = [t for t in window if t.role == "tool" and t.parent_id == m.id]
            message: dict[str, Any] = {"role": "assistant", "content": m.text or None}
            if calls:
                message["tool_calls"] = [
                    {
                        "id": t.call_id,
                        "type": "function",
                        "function": {"name": t.tool_name, "arguments": t.arguments or "{}"},
                    }
                    for t in calls
                ]
            out.append(message)
            out.extend(
                {"role": "tool", "tool_call_id": t.call_id, "content": t.text} for t in calls
            )
    return out


def test_the_latest_history_messages_are_sent_from_a_whole_exchange(store: rx.Store) -> None:
    until = _thread(store, 60)  # 60 * 2 + 20 tool calls + 1 = 141 messages before it
    reply, sent = _sent(store, until)
    assert reply is not None and reply["id"] == until and reply["status"] == "pending"
    assert sent == _expected(store, until, HISTORY)
    assert HISTORY == 100 and 90 < len(sent) <= 101
    assert sent[-1] == {"role": "user", "content": "last"}
    assert "not this thread" not in _contents(sent)
    for history in (1, 2, 5, 6, 7):  # a window that starts at a tool call drops it
        assert _sent(store, until, history=history)[1] == _expected(store, until, history)
    assert _contents(_sent(store, until, history=5)[1]) == [
        "Be brief.",
        "q58",
        "a58",
        "q59",
        "a59",
        "last",
    ]


def test_context_retrieved_for_the_reply_is_sent_just_before_it(store: rx.Store) -> None:
    until = _thread(store, 2)

    def retrieved(db: rx.Writer) -> None:  # written after the reply, as `retrieve=` does
        db.add(Message(thread_id="w", role="system", text="ctx for it", parent_id=until))
        db.add(Message(thread_id="w", role="system", text="a note, not context"))

    store.database.write(retrieved)
    _, sent = _sent(store, until)
    assert sent[-2:] == [
        {"role": "user", "content": "last"},
        {"role": "system", "content": "ctx for it"},
    ]
    assert "a note, not context" not in _contents(sent), "written after the reply"


def test_a_deleted_reply_is_none(store: rx.Store) -> None:
    until = _thread(store, 1)
    reply, _ = _sent(store, until + 1000)
    assert reply is None

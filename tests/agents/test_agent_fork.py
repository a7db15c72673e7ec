"""`rx.agents.fork`: a new thread that begins with copies of another's messages up to
one, with their parts, and goes on by itself; the source thread untouched."""

from __future__ import annotations

import json

import pytest
from sqlmodel import select

import rxnb as rx
from rxnb.agents import Message, Thread
from rxnb.agents._threads import model_input


@rx.tool
def forecast(city: str) -> str:
    """Today's forecast in `city`."""
    return f"sunny in {city}"


def weather_agent(name: str) -> rx.Agent:
    return rx.Agent(
        name,
        model="rxnb/scripted",
        tools=[forecast],
        turns=[
            {
                "script": "Checking.",
                "tool_calls": [{"name": "forecast", "arguments": {"city": "Paris"}}],
            },
            {"script": "Sunny in Paris."},
            {"script": "Berlin too."},
        ],
    )


def rows(thread_id: str) -> list[Message]:
    return rx.agents.messages(thread_id)


def test_a_forked_thread_copies_messages_with_their_parts_and_goes_on(store: rx.Store) -> None:
    agent = weather_agent("forker")
    assert agent.send("t1", "Weather in Paris?").result(timeout=30) == "Sunny in Paris."
    source = rows("t1")
    assert [m.role for m in source] == ["user", "assistant", "tool", "assistant"]
    last = source[-1].id
    assert last is not None

    new_id = rx.agents.fork("t1", at_message=last, new_thread="t1-b")
    assert new_id == "t1-b"
    copied = rows(new_id)
    tool, reply = copied[2], copied[1]
    assert tool.call_id is not None
    assert tool.call_id != source[2].call_id  # call ids are unique in the store
    same_call = [{**p, "id": tool.call_id} if "id" in p else p for p in source[2].parts]
    assert [m.parts for m in copied] == [
        source[0].parts,
        source[1].parts,
        same_call,
        source[3].parts,
    ]
    assert [(m.role, m.status, m.text, m.run_id) for m in copied] == [
        (m.role, m.status, m.text, m.run_id) for m in source
    ]
    assert tool.parent_id == reply.id  # points at its own thread's reply
    assert (json.loads(tool.arguments), tool.text) == ({"city": "Paris"}, "sunny in Paris")
    assert {m.id for m in copied}.isdisjoint({m.id for m in source})
    thread = store.database.read(lambda db: db.get(Thread, new_id))[0]
    assert thread is not None
    assert (thread.forked_from, thread.forked_at) == ("t1", last)

    # The model is sent the same history in the fork as in the source.
    def sent(thread_id: str) -> list[dict[str, object]]:
        until = max(m.id for m in rows(thread_id) if m.id is not None) + 1
        return store.database.read(
            lambda db: model_input(
                db, thread_id, instructions="", history=100, context=None, until=until
            )[1]
        )[0]

    def without_ids(messages: list[dict[str, object]]) -> str:
        return (
            json.dumps(messages)
            .replace(str(tool.call_id), "ID")  # first: the source's id begins it
            .replace(str(source[2].call_id), "ID")
        )

    assert without_ids(sent(new_id)) == without_ids(sent("t1"))
    # The scripted model starts its script again after each user message.
    assert agent.send(new_id, "And in Berlin?").result(timeout=30) == "Sunny in Paris."
    roles = [m.role for m in source]
    assert [m.role for m in rows(new_id)] == [*roles, "user", *roles[1:]]
    assert [(m.id, m.text) for m in rows("t1")] == [(m.id, m.text) for m in source]


def test_a_fork_at_a_message_copies_it_and_those_before_only(store: rx.Store) -> None:
    agent = weather_agent("forker-2")
    agent.send("t2", "Weather in Paris?").result(timeout=30)
    source = rows("t2")
    assert source[0].id is not None
    new_id = rx.agents.fork("t2", at_message=source[0].id)
    assert new_id.startswith("t2-fork-")
    assert [(m.role, m.text) for m in rows(new_id)] == [("user", "Weather in Paris?")]


def test_a_fork_that_cannot_be_made_says_why_and_writes_nothing(store: rx.Store) -> None:
    agent = weather_agent("forker-3")
    agent.send("t3", "Weather in Paris?").result(timeout=30)
    other = weather_agent("forker-4")
    other.send("t4", "Weather in Paris?").result(timeout=30)
    first_of_t4 = rows("t4")[0].id
    reply_id = store.database.write(
        lambda db: agent.send_in(db, "t3", "More?", schedule=False)
    )  # a reply left pending: no turn will write it
    count = store.database.read(lambda db: len(db.exec(select(Message)).all()))[0]
    cases = [
        (lambda: rx.agents.fork("t3", at_message=10**6), r"no message has that id"),
        (lambda: rx.agents.fork("t3", at_message=first_of_t4), r"is in thread 't4'"),
        (lambda: rx.agents.fork("t3", at_message="1"), r"give the id of a message"),
        (lambda: rx.agents.fork("t3", at_message=reply_id), r"is still pending; fork at a message"),
        (
            lambda: rx.agents.fork("t3", at_message=rows("t3")[0].id, new_thread="t4"),
            r"thread 't4' exists already",
        ),
    ]
    for fork, match in cases:
        with pytest.raises(rx.AgentError, match=match) as caught:
            fork()
        assert "\n" not in str(caught.value)
    assert store.database.read(lambda db: len(db.exec(select(Message)).all()))[0] == count
    threads = store.database.read(lambda db: db.exec(select(Thread.id)).all())[0]
    assert sorted(threads) == ["t3", "t4"]


def test_rx_fork_of_a_turn_points_to_forking_the_thread(store: rx.Store) -> None:
    run = weather_agent("forker-5").send("t5", "Weather in Paris?")
    run.result(timeout=30)
    with pytest.raises(rx.WorkflowError, match=r"an agent's turn.*rx\.agents\.fork\(thread_id"):
        rx.fork(run.id, from_step=1)

"""Agent turns in one process, offline (`rxnb/scripted` with `turns=`): tools, their
errors, max_steps, structured answers, approvals, Stop. Every turn ends with nothing
left unfinished in its thread."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import pytest
from agent_jobs import Verdict, count, effects, explode, send_email, weather
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.agents import Message
from rxnb.workflows import JournalEntry


def calls(*pairs: tuple[str, dict[str, object] | str]) -> list[dict[str, object]]:
    return [{"name": name, "arguments": arguments} for name, arguments in pairs]


def thread(thread_id: str) -> list[Message]:
    return rx.agents.messages(thread_id)


def settled(thread_id: str) -> list[Message]:
    """The thread's messages once none is unfinished (else AssertionError)."""
    unfinished = ("pending", "streaming", "waiting", "running")
    rows = thread(thread_id)
    left = [(m.id, m.role, m.status) for m in rows if m.status in unfinished]
    assert not left, f"unfinished messages: {left}"
    return rows


def test_a_turn_runs_two_tools_at_once_then_answers(
    store: rx.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXNB_TEST_EFFECTS", str(tmp_path / "effects"))
    both_started = threading.Barrier(2, timeout=10)  # each waits for the other: at once

    @rx.tool
    def forecast(city: str) -> str:
        """The forecast."""
        both_started.wait()
        return weather.fn(city)

    agent = rx.Agent(
        "two-at-once",
        model="rxnb/scripted",
        tools=[forecast],
        turns=[
            {
                "script": "Checking.",
                "tool_calls": calls(
                    ("forecast", {"city": "Paris"}), ("forecast", {"city": "Rome"})
                ),
            },
            {"script": "Sunny in both."},
        ],
    )
    run = agent.send("t-two", "Weather in Paris and Rome?")
    assert run.result(timeout=30) == "Sunny in both."
    rows = settled("t-two")
    assert [(m.role, m.status) for m in rows] == [
        ("user", "done"),
        ("assistant", "done"),
        ("tool", "done"),
        ("tool", "done"),
        ("assistant", "done"),
    ]
    first, paris, rome = rows[1], rows[2], rows[3]
    assert first.text == "Checking." and rows[4].text == "Sunny in both."
    assert (paris.parent_id, json.loads(paris.arguments), paris.text) == (
        first.id,
        {"city": "Paris"},
        "sunny in Paris",
    )
    assert [p["type"] for p in rome.parts] == ["tool-call", "tool-result"]
    assert sorted(effects(tmp_path / "effects")) == [
        "end Paris",
        "end Rome",
        "start Paris",
        "start Rome",
    ]
    thread = store.database.read(lambda db: db.get(rx.agents.Thread, "t-two"))[0]
    assert thread is not None
    assert (thread.agent, thread.title) == ("two-at-once", "Weather in Paris and Rome?")
    assert thread.created_at == thread.updated_at == rows[0].created_at
    usage = rx.agents.usage_of_thread("t-two")
    assert usage["prompt_tokens"] > 0 and usage["completion_tokens"] > 0
    assert all(m.usage is not None for m in rows if m.role == "assistant")
    replies = [json.loads(m.usage or "null") for m in rows if m.role == "assistant"]
    turn = json.loads(run.run().usage or "null")  # the run's: the sum of its model calls'
    for name in ("prompt_tokens", "completion_tokens", "total_tokens"):
        assert turn[name] == sum(r[name] for r in replies) > 0, name


def test_tool_errors_bad_arguments_and_unknown_tools_are_told_to_the_model(store: rx.Store) -> None:
    agent = rx.Agent(
        "errors",
        model="rxnb/scripted",
        tools=[explode, count],
        turns=[
            {
                "tool_calls": calls(
                    ("explode", {"reason": "on purpose"}),
                    ("count", {"n": "many"}),
                    ("count", "{not json"),
                    ("teleport", {}),
                )
            },
            {"script": "Those failed."},
        ],
    )
    assert agent.send("t-err", "Try them").result(timeout=30) == "Those failed."
    rows = settled("t-err")
    tools = [m for m in rows if m.role == "tool"]
    assert [m.status for m in tools] == ["failed"] * 4
    assert tools[0].text == "ValueError: the tool broke: on purpose"
    assert tools[0].detail is not None and "explode" in tools[0].detail
    assert "count was called with bad arguments: n:" in tools[1].text
    assert "not JSON" in tools[2].text
    assert tools[3].text == "there is no tool named 'teleport'; the tools are: explode, count"
    assert tools[0].parts[-1] == {
        "type": "tool-error",
        "id": tools[0].call_id,
        "error": tools[0].text,
    }


def test_max_steps_ends_the_turn_saying_so(store: rx.Store) -> None:
    agent = rx.Agent(
        "looping",
        model="rxnb/scripted",
        tools=[count],
        max_steps=2,
        turns=[{"tool_calls": calls(("count", {"n": 1}))}],  # the last turn repeats
    )
    run = agent.send("t-loop", "Count forever")
    with pytest.raises(rx.RunFailedError, match="max_steps=2 model calls"):
        run.result(timeout=30)
    rows = settled("t-loop")
    assert [(m.role, m.status) for m in rows] == [
        ("user", "done"),
        ("assistant", "done"),
        ("tool", "done"),
        ("assistant", "done"),
        ("tool", "cancelled"),
    ]
    assert "max_steps=2" in (rows[-1].note or "") and "max_steps=2" in (rows[-2].error or "")


def test_a_structured_answer_is_parsed(store: rx.Store) -> None:
    agent = rx.Agent(
        "judge",
        model="rxnb/scripted",
        output_type=Verdict,
        script='{"city": "Oslo", "sunny": false}',
    )
    assert agent.send("t-json", "Is Oslo sunny?").result(timeout=30) == Verdict(
        city="Oslo", sunny=False
    )


def test_an_invalid_structured_answer_is_sent_back_once(store: rx.Store) -> None:
    agent = rx.Agent(
        "judge-2",
        model="rxnb/scripted",
        output_type=Verdict,
        turns=[
            {"script": "It is sunny!"},
            {"script": '```json\n{"city": "Rome", "sunny": true}\n```'},
        ],
    )
    assert agent.send("t-json2", "Rome?").result(timeout=30) == Verdict(city="Rome", sunny=True)
    rows = settled("t-json2")
    assert [m.role for m in rows] == ["user", "assistant", "system", "assistant"]
    assert "not valid JSON for the schema Verdict" in rows[2].text


def test_an_answer_invalid_twice_fails_the_turn(store: rx.Store) -> None:
    agent = rx.Agent("judge-3", model="rxnb/scripted", output_type=Verdict, script="no JSON here")
    with pytest.raises(rx.RunFailedError, match="did not validate as Verdict twice"):
        agent.send("t-json3", "Rome?").result(timeout=30)
    settled("t-json3")


def approval_agent(name: str) -> rx.Agent:
    return rx.Agent(
        name,
        model="rxnb/scripted",
        tools=[send_email],
        turns=[
            {
                "script": "I will send it.",
                "tool_calls": calls(("send_email", {"to": "ana@example.com", "body": "hi"})),
            },
            {"script": "Done."},
        ],
    )


def waiting_call(thread_id: str) -> Message:
    return until(
        lambda: next((m for m in thread(thread_id) if m.approval == "pending"), None), timeout=30
    )


def test_an_approved_call_runs_and_a_denied_one_does_not(
    store: rx.Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXNB_TEST_EFFECTS", str(tmp_path / "effects"))
    agent = approval_agent("mailer")
    run = agent.send("t-ok", "Email Ana")
    call = waiting_call("t-ok")
    assert call.status == "waiting"
    until(lambda: run.status == "waiting", timeout=10)  # parked: holding no thread
    assert rx.agents.approve(call.call_id, approved=True, note="fine") == "approved"
    assert run.result(timeout=30) == "Done."
    assert effects(tmp_path / "effects") == ["email ana@example.com"]
    done = next(m for m in settled("t-ok") if m.role == "tool")
    assert (done.status, done.approval, done.note, done.text) == (
        "done",
        "approved",
        "fine",
        "sent to ana@example.com",
    )
    with pytest.raises(rx.RxnbError, match="is not waiting for approval: approved"):
        rx.agents.approve(call.call_id, approved=False)

    run = agent.send("t-no", "Email Ana")
    call = waiting_call("t-no")
    rx.agents.approve(call.call_id, approved=False, note="not today")
    assert run.result(timeout=30) == "Done."
    assert effects(tmp_path / "effects") == ["email ana@example.com"], "the denied call did not run"
    denied = next(m for m in settled("t-no") if m.role == "tool")
    assert (denied.status, denied.approval, denied.text) == (
        "denied",
        "denied",
        "denied by the user: not today",
    )


def test_a_new_message_denies_a_pending_approval(store: rx.Store) -> None:
    agent = approval_agent("mailer-2")
    first = agent.send("t-new", "Email Ana")
    call = waiting_call("t-new")
    second = agent.send("t-new", "Never mind")
    assert first.result(timeout=30) == "I will send it."  # ended: no model call after
    # The scripted model asks again in the new turn; that call is its own.
    again = waiting_call("t-new")
    assert again.call_id != call.call_id and again.run_id == second.id
    rx.agents.approve(again.call_id, approved=False)
    assert second.result(timeout=30) == "Done."
    rows = settled("t-new")
    old = next(m for m in rows if m.call_id == call.call_id)
    assert (old.status, old.approval) == ("denied", "denied")
    assert "a new message was sent" in (old.note or "")


def test_stop_mid_reply_keeps_its_text_and_ends_the_turn(store: rx.Store) -> None:
    words = " ".join(f"w{i}" for i in range(400))  # litellm stops a stream that repeats
    agent = rx.Agent("slow", model="rxnb/scripted", script=words, delay=0.02)
    run = agent.send("t-stop", "Talk")
    until(lambda: len(thread("t-stop")[1].text) > 20, timeout=30)
    rx.agents.stop(run.message_id)
    assert run.wait(30) == "cancelled"
    rows = settled("t-stop")
    assert rows[1].status == "cancelled" and 20 < len(rows[1].text) < len(words)


def test_stop_while_waiting_for_approval_denies_it(store: rx.Store) -> None:
    agent = approval_agent("mailer-3")
    run = agent.send("t-stop2", "Email Ana")
    call = waiting_call("t-stop2")
    rx.agents.stop(call.id)
    assert run.wait(30) == "cancelled"
    row = next(m for m in settled("t-stop2") if m.call_id == call.call_id)
    assert (row.status, row.approval) == ("denied", "denied")


def test_each_step_is_journaled_once(store: rx.Store) -> None:
    agent = rx.Agent(
        "journaled",
        model="rxnb/scripted",
        tools=[count],
        turns=[{"tool_calls": calls(("count", {"n": 1}), ("count", {"n": 2}))}, {"script": "3"}],
    )
    run = agent.send("t-j", "Count")
    assert run.result(timeout=30) == "3"
    journal = store.database.read(
        lambda db: [
            (e.kind, e.name)
            for e in db.exec(
                select(JournalEntry).where(JournalEntry.run_id == run.id).order_by(JournalEntry.seq)
            ).all()
        ]
    )[0]
    assert journal == [
        ("step", "model"),
        ("step", "run_call"),
        ("step", "run_call"),
        ("mutation", "rxnb.agents._turn._record_results"),
        ("step", "model"),
    ]


def test_queries_mutations_actions_and_other_agents_are_tools(store: rx.Store) -> None:
    from agent_jobs import add_note, notes, shout

    echo = rx.Agent("echoer", model="rxnb/echo", instructions="Repeat.")
    agent = rx.Agent(
        "store-user",
        model="rxnb/scripted",
        tools=[rx.tool(add_note), rx.tool(notes), rx.tool(shout), echo.as_tool(name="ask_echo")],
        turns=[
            {"tool_calls": calls(("add_note", {"text": "buy milk"}), ("shout", {"text": "hello"}))},
            {"tool_calls": calls(("notes", {"prefix": "buy"}), ("ask_echo", {"input": "ping"}))},
            {"script": "All done."},
        ],
    )
    run = agent.send("t-kinds", "Use them all")
    assert run.result(timeout=60) == "All done."
    tools = {m.tool_name: m for m in settled("t-kinds") if m.role == "tool"}
    assert tools["add_note"].text == "1"  # the mutation's result, as JSON text
    assert json.loads(tools["notes"].text) == ["buy milk"]  # the next step's query sees it
    assert tools["shout"].text == "HELLO"  # a child run of the action
    assert tools["ask_echo"].text == "ping"  # a child turn of the other agent
    child = settled(f"t-kinds/{tools['ask_echo'].call_id}")
    assert [(m.role, m.text) for m in child] == [("user", "ping"), ("assistant", "ping")]
    schema = rx.tool(notes).schema()["function"]
    assert schema["description"] == "The notes starting with `prefix`."
    assert schema["parameters"]["properties"]["prefix"]["type"] == "string"


def test_bad_definitions_say_what_to_fix() -> None:
    with pytest.raises(rx.FunctionError, match="1-64 letters"):
        rx.tool(name="has space")(lambda: None)
    with pytest.raises(rx.FunctionError, match=r"\*args cannot be described"):
        rx.tool(name="spread")(lambda *args: None)
    with pytest.raises(rx.ArgumentError, match="two tools are named count"):
        rx.Agent("dup", model="rxnb/scripted", tools=[count, count])
    with pytest.raises(rx.ArgumentError, match="max_steps= is a whole number >= 1"):
        rx.Agent("zero", model="rxnb/scripted", max_steps=0)
    with pytest.raises(rx.ArgumentError, match="model= is a litellm model name"):
        rx.Agent("nomodel", model="gpt")
    with pytest.raises(rx.ArgumentError, match="output_type= is a pydantic model class"):
        rx.Agent("badtype", model="rxnb/scripted", output_type=dict)


def test_a_turn_handed_over_mid_reply_resumes_in_the_same_reply(url: str) -> None:
    words = " ".join(f"w{i}" for i in range(200))  # litellm stops a stream that repeats
    agent = rx.Agent("slow-2", model="rxnb/scripted", script=words, delay=0.01)
    store = rx.open(url)
    run = agent.send("t-hand", "Talk")
    until(lambda: thread("t-hand")[1].status == "streaming", timeout=30)
    store.close()  # a hand-over, as when the kernel restarts
    store = rx.open(url)
    try:
        reply = thread("t-hand")[1]
        assert reply.status in ("pending", "streaming", "done")
        assert rx.RunHandle(run.id, store).result(timeout=60) == words
        reply = settled("t-hand")[1]
        assert (reply.status, reply.text) == ("done", words)
        assert reply.note == "resumed after its store was closed (attempt 2)"
    finally:
        store.close()


def test_an_invalid_structured_answer_at_the_last_step_fails_saying_so(store: rx.Store) -> None:
    agent = rx.Agent(
        "judge-4", model="rxnb/scripted", output_type=Verdict, max_steps=1, script="no JSON"
    )
    with pytest.raises(rx.RunFailedError, match="did not validate as Verdict at the last of"):
        agent.send("t-json4", "Rome?").result(timeout=30)
    settled("t-json4")


def test_a_thread_answers_one_message_at_a_time(store: rx.Store) -> None:
    words = " ".join(f"w{i}" for i in range(100))
    agent = rx.Agent("one-at-a-time", model="rxnb/scripted", script=words, delay=0.01)
    first = agent.send("t-busy", "Talk")
    with pytest.raises(rx.RxnbError, match=r"is still answering \(message \d+ is \w+\)"):
        agent.send("t-busy", "And now?")
    assert [m.role for m in thread("t-busy")] == ["user", "assistant"]  # nothing half-written
    assert first.result(timeout=30) == words
    assert agent.send("t-busy", "And now?").result(timeout=30) == words


def test_stop_denies_the_approval_and_cancels_the_calls_not_started(store: rx.Store) -> None:
    agent = rx.Agent(
        "mailer-4",
        model="rxnb/scripted",
        tools=[send_email, count],
        turns=[
            {
                "tool_calls": calls(
                    ("send_email", {"to": "ana@example.com", "body": "hi"}), ("count", {"n": 3})
                )
            },
            {"script": "Done."},
        ],
    )
    run = agent.send("t-stop3", "Email Ana and count")
    call = waiting_call("t-stop3")
    until(lambda: run.status == "waiting", timeout=10)
    rx.agents.stop(call.id)
    assert run.wait(30) == "cancelled"
    tools = {m.tool_name: m for m in settled("t-stop3") if m.role == "tool"}
    assert (tools["send_email"].status, tools["send_email"].approval) == ("denied", "denied")
    assert (tools["count"].status, tools["count"].note) == ("cancelled", "the turn was stopped")


def test_a_call_after_tools_is_sent_what_a_read_after_its_reply_finds(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The mutation step that records the tools' results reads the next call's input in
    its transaction: that call reads nothing first, and is sent what a read finds."""
    from rxnb.agents import _model_call
    from rxnb.agents._threads import model_input

    sent: list[list[dict[str, Any]]] = []
    reads: list[int] = []
    real_stream, real_begin = _model_call.stream, _model_call._ReplyWriter.begin

    def stream(*args: Any, **kwargs: Any) -> Any:
        sent.append(kwargs["messages"])
        return real_stream(*args, **kwargs)

    def begin(writer: Any, db: Any) -> Any:
        reads.append(writer.reply_id)
        return real_begin(writer, db)

    monkeypatch.setattr(_model_call, "stream", stream)
    monkeypatch.setattr(_model_call._ReplyWriter, "begin", begin)
    agent = rx.Agent(
        "prepared",
        model="rxnb/scripted",
        instructions="Count.",
        tools=[count],
        turns=[
            {"tool_calls": calls(("count", {"n": 1}), ("count", {"n": 2}))},
            {"tool_calls": calls(("count", {"n": 3}))},
            {"script": "6"},
        ],
    )
    run = agent.send("t-prep", "Count")
    assert run.result(timeout=30) == "6"
    replies = [m.id for m in settled("t-prep") if m.role == "assistant"]
    assert len(replies) == len(sent) == 3
    assert reads == [run.message_id], "only the first call reads its input itself"
    for reply_id, given in zip(replies, sent, strict=True):
        _, expected = store.database.read(
            lambda db, r=reply_id: model_input(
                db, "t-prep", instructions="Count.", history=100, context=None, until=r
            )
        )[0]
        assert given == expected
    roles = ["system", "user", "assistant", "tool", "tool", "assistant", "tool"]
    assert [m["role"] for m in sent[-1]] == roles

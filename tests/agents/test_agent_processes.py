"""Agent turns across real processes: a worker killed (kill -9) mid-turn, over
litellm's real HTTP path to a loopback OpenAI-compatible server that streams tool
calls, and an approval decided from another process while the only thread of the
worker's pool runs something else. SQLite and PostgreSQL."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import agent_jobs
import pytest
from fake_openai import ByTurn, FakeOpenAI, Ok, ToolCalls
from polling import until
from run_procs import Processes
from sqlmodel import select

import rxnb as rx
from rxnb.workflows import JournalEntry


@pytest.fixture
def queuing(url: str) -> Iterator[rx.Store]:
    """A store this process only queues runs in: the workers run them."""
    os.environ["RXNB_EXECUTE"] = "0"
    try:
        store = rx.open(url)
    finally:
        del os.environ["RXNB_EXECUTE"]
    yield store
    store.close()


def tool_rows(thread_id: str) -> list[rx.agents.Message]:
    return [m for m in rx.agents.messages(thread_id) if m.role == "tool"]


def waiting_for_approval(run: rx.RunHandle, thread_id: str) -> rx.agents.Message:
    """The tool call of `thread_id` pending approval, once `run` waits for it."""
    call: rx.agents.Message = until(
        lambda: next((m for m in tool_rows(thread_id) if m.approval == "pending"), None),
        timeout=60,
    )
    until(lambda: run.status == "waiting", timeout=10)
    return call


def test_a_turn_killed_after_two_tools_resumes_without_calling_them_again(
    url: str, queuing: rx.Store, procs: Processes, tmp_path: Path
) -> None:
    weather = "weather"
    server = FakeOpenAI(
        plan=[
            ByTurn(
                [
                    ToolCalls(
                        ["Checking"],
                        [(weather, '{"city": "Paris"}'), (weather, '{"city": "Rome"}')],
                    ),
                    ToolCalls(
                        ["And", " Oslo"], [(weather, '{"city": "Oslo"}')], delay=0.4, pieces=6
                    ),
                    Ok(["Sunny", " everywhere."]),
                ]
            )
        ]
    )
    effects = tmp_path / "effects"
    procs.env.update(RXNB_TEST_API_BASE=server.api_base, RXNB_TEST_EFFECTS=str(effects))
    try:
        run = agent_jobs.helper.send("t-kill", "Weather in Paris, Rome and Oslo?")
        first = procs.worker(url, "agent_jobs")
        # Tools 1-2 are done once their results are recorded (a journaled mutation).
        until(lambda: [m.status for m in tool_rows("t-kill")][:2] == ["done", "done"], timeout=60)
        assert run.status == "running", procs.output(first)
        first.kill()  # kill -9, while the second model call streams
        first.wait(10)
        second = procs.worker(url, "agent_jobs")
        assert run.result(timeout=60) == "Sunny everywhere.", procs.output(second)
    finally:
        server.close()
    lines = agent_jobs.effects(effects)
    for city in ("Paris", "Rome", "Oslo"):
        assert (lines.count(f"start {city}"), lines.count(f"end {city}")) == (1, 1), lines
    rows = rx.agents.messages("t-kill")
    assert [(m.role, m.status) for m in rows] == [
        ("user", "done"),
        ("assistant", "done"),
        ("tool", "done"),
        ("tool", "done"),
        ("assistant", "done"),
        ("tool", "done"),
        ("assistant", "done"),
    ]
    assert [json.loads(m.arguments)["city"] for m in rows if m.role == "tool"] == [
        "Paris",
        "Rome",
        "Oslo",
    ]
    assert rows[-1].text == "Sunny everywhere."
    journal = queuing.database.read(
        lambda db: [
            (e.seq, e.kind)
            for e in db.exec(select(JournalEntry).where(JournalEntry.run_id == run.id)).all()
        ]
    )[0]
    kinds = [kind for _, kind in sorted(journal)]
    # model, 2 tools, results (+ the next reply), model, 1 tool, results, model
    assert kinds == ["step", "step", "step", "mutation", "step", "step", "mutation", "step"]
    assert run.run().crashes == 1
    # The model was sent the tool results in OpenAI's format (litellm's real HTTP path).
    last = server.bodies[-1]["messages"]
    assert [m["role"] for m in last] == [
        "system",
        "user",
        "assistant",
        "tool",
        "tool",
        "assistant",
        "tool",
    ]
    assert (
        last[3]["content"] == "sunny in Paris"
        and last[3]["tool_call_id"] == last[2]["tool_calls"][0]["id"]
    )


def test_an_approval_from_another_process_while_the_only_thread_is_busy(
    url: str, queuing: rx.Store, procs: Processes, tmp_path: Path
) -> None:
    effects, release = tmp_path / "effects", tmp_path / "release"
    procs.env.update(RXNB_TEST_EFFECTS=str(effects), RXNB_WORKERS="1")
    worker = procs.worker(url, "agent_jobs")
    run = agent_jobs.mailer.send("t-approve", "Email Ana")
    call = waiting_for_approval(run, "t-approve")
    # The turn waits holding no thread: the pool's only one runs another run meanwhile.
    held = agent_jobs.hold.start(release=str(release))
    until(lambda: agent_jobs.effects(effects) == ["hold start"], timeout=30)
    assert run.status == "waiting" and held.status == "running"
    approver = procs.python(
        f"""
        import rxnb as rx
        rx.open({url!r})
        print(rx.agents.approve({call.call_id!r}, approved=True, note="from afar"))
        """
    )
    assert approver.wait(60) == 0, procs.output(approver)
    assert "approved" in procs.output(approver)
    release.touch()
    assert held.result(timeout=30) == "released"
    assert run.result(timeout=60) == "Done.", procs.output(worker)
    assert agent_jobs.effects(effects) == ["hold start", "hold end", "email ana@example.com"]
    done = next(m for m in tool_rows("t-approve"))
    assert (done.status, done.approval, done.note, done.text) == (
        "done",
        "approved",
        "from afar",
        "sent to ana@example.com",
    )


def test_an_approval_given_while_no_worker_runs_is_acted_on_by_the_next_one(
    url: str, queuing: rx.Store, procs: Processes, tmp_path: Path
) -> None:
    effects = tmp_path / "effects"
    procs.env.update(RXNB_TEST_EFFECTS=str(effects))
    first = procs.worker(url, "agent_jobs")
    run = agent_jobs.mailer.send("t-approve-kill", "Email Ana")
    call = waiting_for_approval(run, "t-approve-kill")
    first.kill()  # kill -9 while the turn waits for a person
    first.wait(10)
    # Approved here, where nothing executes: the decision waits in the store.
    assert rx.agents.approve(call.call_id, approved=True, note="after the crash") == "approved"
    assert agent_jobs.effects(effects) == []
    second = procs.worker(url, "agent_jobs")
    assert run.result(timeout=60) == "Done.", procs.output(second)
    assert agent_jobs.effects(effects) == ["email ana@example.com"]
    done = next(m for m in tool_rows("t-approve-kill"))
    assert (done.status, done.approval, done.note) == ("done", "approved", "after the crash")
    assert [m.status for m in rx.agents.messages("t-approve-kill")] == ["done"] * 4

"""Agent turns answered from the LLM cache, over litellm's real HTTP path to a loopback
server that counts requests; and two processes' stores of one answer keeping one."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from agent_jobs import effects, weather
from fake_openai import ByTurn, FakeOpenAI, Ok, ToolCalls
from sqlmodel import select

import rxnb as rx
from rxnb.llm import CacheEntry


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


def test_a_repeated_turn_with_a_tool_call_sends_no_request(
    store: rx.Store, server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXNB_TEST_EFFECTS", str(tmp_path / "effects"))
    server.plan = [ByTurn([ToolCalls([], [("weather", '{"city": "Oslo"}')]), Ok(["Sunny."])])]
    agent = rx.Agent(
        "cached-http",
        model="openai/fake",
        api_base=server.api_base,
        api_key="not-a-secret",
        tools=[weather],
        cache=True,
    )
    assert agent.send("t-cache-1", "Weather in Oslo?").result(timeout=30) == "Sunny."
    assert server.requests == 2
    # A new thread asking the same: both model calls (the second carries the tool's
    # result, under call ids made anew) come from the store; the tool runs again.
    assert agent.send("t-cache-2", "Weather in Oslo?").result(timeout=30) == "Sunny."
    assert server.requests == 2
    assert effects(tmp_path / "effects") == ["start Oslo", "end Oslo"] * 2
    replies = [m for m in rx.agents.messages("t-cache-2") if m.role == "assistant"]
    assert replies and all(m.status == "done" for m in replies)


def test_answers_stored_at_once_by_two_generations_keep_one(
    store: rx.Store, server: FakeOpenAI
) -> None:
    server.plan = [Ok(["one ", "answer"], delay=0.2)]
    agent = rx.Agent(
        "cached-race", model="openai/fake", api_base=server.api_base, api_key="k", cache=True
    )
    runs = [agent.send(f"t-race-{i}", "Same question") for i in range(2)]
    results = [run.result(timeout=30) for run in runs]
    assert results == ["one answer", "one answer"]
    assert server.requests == 2  # both asked before either answer was stored
    entries = store.database.read(lambda db: db.exec(select(CacheEntry)).all())[0]
    assert len(entries) == 1
    assert agent.send("t-race-3", "Same question").result(timeout=30) == "one answer"
    assert server.requests == 2

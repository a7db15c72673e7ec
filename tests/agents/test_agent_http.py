"""What an agent sends the provider, over litellm's real HTTP path to a loopback
OpenAI-compatible server: a denied call's reason reaches the model as that call's
result, and a structured answer asks for its JSON schema and is parsed from the text."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from agent_jobs import Verdict, effects, send_email
from fake_openai import ByTurn, FakeOpenAI, Ok, ToolCalls
from polling import until

import rxnb as rx


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


def over_http(server: FakeOpenAI, name: str, **options: Any) -> rx.Agent:
    return rx.Agent(
        name, model="openai/fake", api_base=server.api_base, api_key="not-a-secret", **options
    )


def test_a_denial_reaches_the_model_as_the_calls_result(
    store: rx.Store, server: FakeOpenAI, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXNB_TEST_EFFECTS", str(tmp_path / "effects"))
    arguments = '{"to": "ana@example.com", "body": "hi"}'
    server.plan = [ByTurn([ToolCalls([], [("send_email", arguments)]), Ok(["Not sent."])])]
    agent = over_http(server, "mailer-http", tools=[send_email])
    run = agent.send("t-deny-http", "Email Ana")
    call = until(
        lambda: next(
            (m for m in rx.agents.messages("t-deny-http") if m.approval == "pending"), None
        ),
        timeout=30,
    )
    rx.agents.approve(call.call_id, approved=False, note="not today")
    assert run.result(timeout=30) == "Not sent."
    assert effects(tmp_path / "effects") == []  # the denied tool never ran
    sent = server.bodies[-1]["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[2]["tool_call_id"] == sent[1]["tool_calls"][0]["id"]
    assert "denied by the user: not today" in sent[2]["content"]


def test_a_structured_answer_asks_for_its_schema_and_is_parsed(
    store: rx.Store, server: FakeOpenAI
) -> None:
    server.plan = [Ok(['{"city": "Oslo", ', '"sunny": true}'])]
    agent = over_http(server, "judge-http", output_type=Verdict)
    answer = agent.send("t-verdict-http", "Sunny in Oslo?").result(timeout=30)
    assert answer == Verdict(city="Oslo", sunny=True)
    requested = server.bodies[-1]["response_format"]
    assert requested["type"] == "json_schema"
    assert set(requested["json_schema"]["schema"]["properties"]) == set(Verdict.model_fields)

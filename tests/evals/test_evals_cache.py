"""rx.evals and the LLM cache: a re-run of an eval sends no request (the loopback
OpenAI-compatible server counts them), and without the cache it asks again."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "llm"))
from fake_openai import ByTurn, FakeOpenAI, Ok

import rxnb as rx

CASES = [{"input": f"word{i}", "expected": f"word{i}"} for i in range(20)]


def exact(output: Any, expected: Any) -> bool:
    return bool(output.strip() == expected)


class ByModel(ByTurn):
    """The judge's model answers a grade; any other echoes the prompt's last line."""

    def __init__(self) -> None:
        super().__init__([])

    def pick(self, body: dict[str, Any]) -> Any:
        if body.get("model") == "judge":
            return Ok(["REASON: ", "it ", "matches\n", "SCORE: ", "0.75"])
        text = body["messages"][-1]["content"].splitlines()[-1]
        return Ok([text[: len(text) // 2], text[len(text) // 2 :]])


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    fake = FakeOpenAI(plan=[ByModel()])
    yield fake
    fake.close()


def test_a_rerun_is_answered_from_the_cache_and_sends_no_request(
    store: rx.Store, server: FakeOpenAI
) -> None:
    judge = rx.evals.judge("Is it right?", model="openai/judge", api_base=server.api_base)
    first = rx.evals.run(
        CASES,
        "Say it back:\n{input}",
        scorers=[exact, judge],
        models=["openai/model-a", "openai/model-b"],
        api_base=server.api_base,
    )
    rows = first.wait(120)
    assert all(r.status == "done" for r in rows), [r.error for r in rows if r.error]
    asked = [body["model"] for body in server.bodies]
    assert asked.count("model-a") == asked.count("model-b") == 20
    # Both models give the same outputs, so the judge is asked each question once or
    # twice (twice when both rows asked before either answer was stored).
    assert 20 <= asked.count("judge") <= 40
    sent = server.requests
    assert all(json.loads(r.scores or "{}") == {"exact": 1.0, "judge": 0.75} for r in rows)
    again = first.rerun()
    rows = again.wait(120)
    assert all(r.status == "done" for r in rows)
    assert server.requests == sent  # nothing sent: every call was a cache hit
    assert all(r.output == json.loads(r.input) for r in rows)
    assert all(json.loads(r.scores or "{}") == {"exact": 1.0, "judge": 0.75} for r in rows)
    assert again.summary()["openai/model-a"]["cost"] == 0.0


def test_without_the_cache_a_rerun_asks_again(store: rx.Store, server: FakeOpenAI) -> None:
    report = rx.evals.run(
        CASES[:3], "{input}", models=["openai/model-a"], api_base=server.api_base, cache=False
    )
    report.wait(60)
    report.rerun().wait(60)
    assert server.requests == 6

"""rx.evals.run: cases x task x scorers x models fill a stored, live grid; a re-run is
answered from the LLM cache (the loopback server counts requests)."""

from __future__ import annotations

import json
import threading
from typing import Any

import pytest
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.evals import EvalResult, eval_grid, parse_score

CASES = [{"input": f"word{i}", "expected": f"word{i}"} for i in range(20)]


def exact(output: Any, expected: Any) -> bool:
    return bool(output.strip() == expected)


def test_twenty_cases_by_two_models_fill_the_grid_with_scores_and_a_summary(
    store: rx.Store,
) -> None:
    judge = rx.evals.judge(
        "Is the answer right?", model="rxnb/scripted", script="REASON: ok\nSCORE: 1"
    )
    seen: list[list[dict[str, Any]]] = []
    report = rx.evals.run(
        CASES,
        "{input}",
        scorers=[exact, judge],
        models=["rxnb/echo", "rxnb/scripted"],
        delay=0.001,
        script="nope",
    )
    sub = store.subscribe(eval_grid, {"eval_id": report.id}, seen.append)
    try:
        rows = report.wait(120)
        until(lambda: seen and all(r["status"] == "done" for r in seen[-1]), timeout=10)
    finally:
        sub.close()
    assert len(rows) == 40 and all(r.status == "done" for r in rows)
    echo = [r for r in rows if r.model == "rxnb/echo"]
    assert all(json.loads(r.scores or "{}") == {"exact": 1.0, "judge": 1.0} for r in echo)
    scripted = [r for r in rows if r.model == "rxnb/scripted"]
    assert all(
        r.output == "nope" and json.loads(r.scores or "{}")["exact"] == 0.0 for r in scripted
    )
    # Live: the grid was seen part-filled before it was whole.
    assert any(0 < sum(r["status"] == "done" for r in s if r["kind"] == "case") < 40 for s in seen)
    final = {r["model"]: r for r in seen[-1] if r["kind"] == "summary"}
    assert final["rxnb/echo"]["scores"] == {"exact": 1.0, "judge": 1.0}
    assert final["rxnb/scripted"]["scores"] == {"exact": 0.0, "judge": 1.0}
    assert final["rxnb/echo"]["output"] == "20/20 done, 0 failed"
    summary = report.summary()
    assert summary["rxnb/scripted"]["done"] == 20 and summary["rxnb/scripted"]["failed"] == 0


def test_a_failing_task_fails_its_row_only_and_a_failing_scorer_scores_null(
    store: rx.Store,
) -> None:
    def task(value: str, model: str | None) -> str:
        if value == "word3":
            raise ValueError("no answer for word3; fix the task")
        return value

    def picky(output: str, expected: str) -> float:
        if output == "word4":
            raise KeyError("picky")
        return 0.5

    report = rx.evals.run(CASES[:6], task, scorers=[exact, picky])
    rows = report.wait(60)
    by_input = {json.loads(r.input): r for r in rows}
    assert by_input["word3"].status == "failed"
    assert by_input["word3"].error == "ValueError: no answer for word3; fix the task"
    assert json.loads(by_input["word4"].scores or "{}") == {"exact": 1.0, "picky": None}
    assert "KeyError" in json.loads(by_input["word4"].notes or "{}")["picky"]
    assert [r.status for r in rows].count("done") == 5
    assert report.summary()[None] == {
        "cases": 6,
        "done": 6,
        "failed": 1,
        "scores": {"exact": 1.0, "picky": 0.5},
        "cost": 0.0,
    }


def test_a_function_task_runs_at_most_concurrency_cases_at_once(store: rx.Store) -> None:
    running, most, lock = 0, 0, threading.Lock()
    release = threading.Event()

    def task(value: str, model: str | None) -> str:
        nonlocal running, most
        with lock:
            running += 1
            most = max(most, running)
        release.wait(10)
        with lock:
            running -= 1
        return value

    report = rx.evals.run(CASES[:8], task, scorers=[exact], concurrency=2)
    until(lambda: most == 2, timeout=20)
    release.set()
    rows = report.wait(60)
    assert all(r.status == "done" for r in rows) and most == 2


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("REASON: good\nSCORE: 0.8", 0.8),
        ("**Score:** 1", 1.0),
        ("SCORE: 7", 1.0),  # clamped to 0..1
        ("score = 0", 0.0),
        ("I think it is fine.", None),
    ],
)
def test_a_judges_reply_is_read_as_a_score(reply: str, score: float | None) -> None:
    assert parse_score(reply)[0] == score


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"cases": [], "task": "{input}", "models": ["rxnb/echo"]}, "pass a list"),
        ({"cases": [1], "task": "{input}", "models": ["rxnb/echo"]}, "case 0 is 1"),
        ({"cases": CASES, "task": "{input}"}, "needs models="),
        ({"cases": CASES, "task": 5}, "pass a prompt template"),
        ({"cases": CASES, "task": "{input}", "models": ["m"], "api_key": "sk-1"}, "environment"),
        ({"cases": CASES, "task": str, "scorers": [lambda o, e: 1]}, "no name"),
        ({"cases": CASES, "task": str, "concurrency": 0}, "concurrency=0"),
    ],
)
def test_wrong_arguments_say_what_to_do(
    store: rx.Store, kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(rx.ArgumentError, match=problem):
        rx.evals.run(**kwargs)
    assert store.database.read(lambda db: db.exec(select(EvalResult)).all())[0] == []


def test_an_agent_answers_each_case_in_a_thread_of_its_own(store: rx.Store) -> None:
    helper = rx.Agent("eval-helper", model="rxnb/echo", delay=0)
    report = rx.evals.run(CASES[:3], helper, scorers=[exact])
    rows = report.wait(60)
    assert [r.status for r in rows] == ["done"] * 3, [r.error for r in rows]
    assert [r.model for r in rows] == ["rxnb/echo"] * 3
    assert [r.output for r in rows] == ["word0", "word1", "word2"]
    assert all(json.loads(r.scores or "{}") == {"exact": 1.0} for r in rows)
    with pytest.raises(rx.ArgumentError, match="its own model"):
        rx.evals.run(CASES, helper, models=["rxnb/scripted"])


def test_the_report_shows_as_the_grid_with_a_summary_row_per_model(store: rx.Store) -> None:
    report = rx.evals.run(CASES[:2], "{input}", scorers=[exact], models=["rxnb/echo"], delay=0)
    report.wait(30)
    widget = report.widget()
    try:
        until(lambda: widget.data["rows"] and widget.data["rows"][-1][1] == "summary", timeout=10)  # type: ignore[index]
        data: Any = widget.data
        assert data["evals"]["scores"] == "scores"
        kinds = [row[data["columns"].index("kind")] for row in data["rows"]]
        assert kinds == ["case", "case", "summary"]
        summary = data["rows"][-1]
        assert summary[data["columns"].index("scores")] == {"exact": 1.0}
    finally:
        widget.close()

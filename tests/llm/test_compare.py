"""rx.llm.compare: one request streamed to several models at once, a column each, on
both dialects; a failing model fails its own column only."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Ok
from pgtools import PG_URL
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.llm import Comparison, ComparisonColumn, Generation
from rxnb.testing import temporary_schema
from rxnb.widgets import comparison_columns

WORDS = " ".join(f"w{i}" for i in range(25))
MODELS = ["rxnb/echo", "rxnb/scripted", "rxnb/missing"]


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[rx.Store]:
    if request.param == "sqlite":
        s = rx.open(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
        return
    with temporary_schema(PG_URL) as url:
        s = rx.open(url)
        yield s
        s.close()


def test_three_columns_stream_at_once_and_a_failing_model_fails_its_own(
    store: rx.Store,
) -> None:
    seen: list[list[dict[str, Any]]] = []
    cmp = rx.llm.compare(
        WORDS,
        models=["rxnb/echo", "rxnb/scripted", "rxnb/missing"],
        delay=0.04,
        per_model={"rxnb/scripted": {"script": WORDS.upper()}},
    )
    sub = store.subscribe(comparison_columns, {"comparison_id": cmp.id}, seen.append)
    try:
        texts = cmp.result(60)
        until(lambda: all(r["finished_at"] is not None for r in seen[-1]), timeout=10)
    finally:
        sub.close()
    assert texts == {"rxnb/echo": WORDS, "rxnb/scripted": WORDS.upper(), "rxnb/missing": ""}
    # At once: the two that answer both had partial text while neither had finished.
    assert any(
        all(0 < len(r["text"]) < len(WORDS) and r["finished_at"] is None for r in rows[:2])
        for rows in seen
    )
    echo, scripted, missing = cmp.columns()
    assert (echo.status, scripted.status, missing.status) == ("done", "done", "failed")
    assert missing.error is not None and missing.error.startswith("NotFoundError: ")
    assert "rxnb/missing" in cmp.errors()
    for column in (echo, scripted):
        assert column.started_at is not None and column.first_token_at is not None
        assert column.finished_at is not None
        assert column.started_at <= column.first_token_at <= column.finished_at
        assert column.completion_tokens == 25 and column.cost == 0.0 and column.error is None
    assert missing.first_token_at is None and missing.finished_at is not None
    statuses = [h.status for h in cmp.runs()]
    assert statuses == ["succeeded", "succeeded", "failed"]
    last = {r["model"]: r for r in seen[-1]}
    assert last["rxnb/echo"]["tokens"] == echo.prompt_tokens + 25  # type: ignore[operator]
    assert last["rxnb/echo"]["latency"] is not None and last["rxnb/missing"]["latency"] is None


def test_each_column_is_a_generation_and_the_request_is_stored(store: rx.Store) -> None:
    cmp = rx.llm.compare(
        [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi there"}],
        models=["rxnb/echo", "rxnb/scripted"],
        title="greeting",
        per_model={"rxnb/scripted": {"script": "hello"}},
    )
    assert cmp.result(30) == {"rxnb/echo": "hi there", "rxnb/scripted": "hello"}

    def read(db: Any) -> tuple[Any, list[Any]]:
        return db.get(Comparison, cmp.id), db.exec(select(Generation)).all()

    comparison, generations = store.database.read(read)[0]
    assert comparison.title == "greeting"
    assert json.loads(comparison.messages)[0] == {"role": "system", "content": "Be brief."}
    assert sorted(g.model for g in generations) == ["rxnb/echo", "rxnb/scripted"]
    assert {g.target for g in generations} == {"rx_comparison_columns"}


def test_a_cancelled_column_ends_cancelled_and_keeps_its_text(store: rx.Store) -> None:
    cmp = rx.llm.compare(WORDS, models=["rxnb/echo"], delay=0.05)
    until(lambda: cmp.columns()[0].text, timeout=30)
    rx.cancel(cmp.columns()[0].run_id)
    (column,) = cmp.wait(30)
    assert column.status == "cancelled" and 0 < len(column.text) < len(WORDS)


def test_over_http_a_loopback_provider_streams_into_its_column(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    server = FakeOpenAI(plan=[Ok(["over ", "the ", "wire"])])
    try:
        cmp = rx.llm.compare("hi", models=["openai/fake", "rxnb/echo"], api_base=server.api_base)
        assert cmp.result(30) == {"openai/fake": "over the wire", "rxnb/echo": "hi"}
    finally:
        server.close()
    assert server.requests == 1


def test_the_widget_shows_the_columns_in_order(store: rx.Store) -> None:
    cmp = rx.llm.compare("a b c", models=["rxnb/scripted", "rxnb/echo"], script="x y")
    cmp.wait(30)
    widget = cmp.widget()
    try:
        until(lambda: [r[2] for r in widget.data["rows"]] == ["done", "done"], timeout=10)
        data = widget.data
        assert data["models"]["text"] == "text"  # type: ignore[index, call-overload]
        assert [r[1] for r in data["rows"]] == ["rxnb/scripted", "rxnb/echo"]  # type: ignore[index, union-attr]
    finally:
        widget.close()


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"models": []}, "list of model names"),
        ({"models": "rxnb/echo"}, "list of model names"),
        ({"models": ["rxnb/echo", "rxnb/echo"]}, "twice"),
        ({"models": ["rxnb/echo"], "api_key": "sk-123"}, "environment variable"),
        ({"models": ["rxnb/echo"], "per_model": {"rxnb/x": {}}}, "not in models="),
        ({"models": ["rxnb/echo"], "cache": "yes"}, "cache="),
    ],
)
def test_wrong_arguments_say_what_to_do_and_store_nothing(
    store: rx.Store, kwargs: dict[str, Any], problem: str
) -> None:
    with pytest.raises(rx.ArgumentError, match=problem):
        rx.llm.compare("hi", **kwargs)
    assert store.database.read(lambda db: db.exec(select(ComparisonColumn)).all())[0] == []


def test_without_a_kernel_the_snapshot_shows_each_column_inert(store: rx.Store) -> None:
    cmp = rx.llm.compare(
        "<script>alert(1)</script> hi",
        models=["rxnb/echo", "rxnb/missing"],
    )
    cmp.wait(30)
    widget = cmp.widget()
    try:
        until(lambda: [r[2] for r in widget.data["rows"]] == ["done", "failed"], timeout=10)  # type: ignore[index]
        html = widget.snapshot()
    finally:
        widget.close()
    assert "rxnb/echo" in html and "rxnb/missing" in html
    assert "NotFoundError: rxnb has no offline model" in html
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_with_the_cache_a_second_comparison_sends_no_request(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "x")
    server = FakeOpenAI(plan=[Ok(["over ", "the ", "wire"])])
    try:
        first = rx.llm.compare("hi", models=["openai/fake"], api_base=server.api_base, cache=True)
        assert first.result(30) == {"openai/fake": "over the wire"}
        again = rx.llm.compare("hi", models=["openai/fake"], api_base=server.api_base, cache=True)
        assert again.result(30) == {"openai/fake": "over the wire"}
        fresh = rx.llm.compare("hi", models=["openai/fake"], api_base=server.api_base, cache=False)
        assert fresh.result(30) == {"openai/fake": "over the wire"}
    finally:
        server.close()
    assert server.requests == 2  # the first and the uncached one
    assert again.columns()[0].cost == 0.0 and again.columns()[0].status == "done"

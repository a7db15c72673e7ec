"""Runs that end, or are started, in unusual ways: each ends in a clear state."""

from __future__ import annotations

import threading

import pytest
from edge_jobs import (
    ends_oddly,
    first,
    never_checks,
    quotes_the_environment,
    release,
    second,
    uses_key,
)
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.execution import executor_for


def run_rows(store: rx.Store) -> list[rx.Run]:
    return list(store.database.read(lambda db: db.exec(select(rx.Run)).all())[0])


@pytest.mark.parametrize(
    ("kind", "error"),
    [
        ("keyboard", "the action raised KeyboardInterrupt"),
        ("exit", "the action raised SystemExit"),
        ("bytes", "cannot be stored as JSON"),
        ("nan", "cannot be stored as JSON"),
        ("circular", "cannot be stored as JSON"),
    ],
)
def test_odd_endings_fail_the_run_and_free_its_slot(store: rx.Store, kind: str, error: str) -> None:
    run = ends_oddly.start(kind=kind)
    with pytest.raises(rx.RunFailedError, match=error):
        run.result(10)
    executor = executor_for(store)
    until(lambda: executor._free_slots() == executor.workers)
    assert ends_oddly.start(kind="plain").result(10) == "fine"


def test_a_run_due_in_centuries_does_not_stop_the_scheduler(store: rx.Store) -> None:
    far = rx.run_after(1e10, first)
    assert first.start().result(10) == "first"
    assert far.status == "queued"
    assert any(t.name == "rxnb-scheduler" for t in threading.enumerate())


@pytest.mark.parametrize("seconds", [float("nan"), float("inf")])
def test_a_start_time_that_is_not_finite_is_refused(store: rx.Store, seconds: float) -> None:
    with pytest.raises(rx.ArgumentError, match="finite"):
        rx.run_after(seconds, first)
    assert run_rows(store) == []


def test_a_key_names_a_run_of_one_action(store: rx.Store) -> None:
    a = rx.run_after(60, first, key="shared")
    b = rx.run_after(60, second, key="shared")
    assert a.id != b.id
    assert rx.run_after(60, first, key="shared").id == a.id


@pytest.mark.parametrize(
    "name", ["api_key", "openai_key", "secret_key", "private_key", "authorization"]
)
def test_a_secret_looking_argument_is_refused_before_anything_is_stored(
    store: rx.Store, name: str
) -> None:
    with pytest.raises(rx.ArgumentError, match=f"argument `{name}` looks like a secret"):
        uses_key.start(**{name: "sk-live-123"})
    assert run_rows(store) == []


def test_an_argument_that_only_mentions_tokens_is_stored(store: rx.Store) -> None:
    assert uses_key.start(max_tokens="100").result(timeout=10) is None


def test_a_timeout_fails_the_run_even_if_the_action_never_checks(store: rx.Store) -> None:
    release.clear()
    try:
        run = never_checks.start()
        until(lambda: run.status == "failed", timeout=5)
        assert "timed out after 0.2 s" in (run.run().error or "")
    finally:
        release.set()
    assert run.wait(10) == "failed"


def test_db_schedule_runs_in_the_mutation_s_own_store(url: str, tmp_path: object) -> None:
    other_url = url.replace("store.db", "other.db")
    mine, other = rx.open(url), rx.open(other_url)  # `other` is now current
    try:

        @rx.mutation
        def enqueue(db: rx.Writer) -> str:
            return db.schedule(first)

        run_id = mine.call(enqueue)
        assert rx.RunHandle(run_id, mine).result(10) == "first"
    finally:
        other.close()
        mine.close()


def test_waiting_for_a_run_no_live_executor_can_run_says_so(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXNB_EXECUTE", "0")  # this process queues; no worker runs
    store = rx.open(url)
    try:
        run = first.start()
        with pytest.raises(TimeoutError) as waited:
            run.wait(timeout=0.3)
        assert "still queued after 0.3 s; no live executor has" in str(waited.value)
        assert "rxnb worker --import MODULE" in str(waited.value)
    finally:
        store.close()


def test_waiting_for_a_run_an_executor_can_run_says_only_how_long(store: rx.Store) -> None:
    run = rx.run_after(60, first)  # registered here, due later
    with pytest.raises(TimeoutError) as waited:
        run.wait(timeout=0.3)
    assert str(waited.value) == f"run {run.id} still queued after 0.3 s"
    run.cancel()


def test_a_secret_from_the_environment_quoted_in_an_error_is_not_stored(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "sk-env-0123456789abcdef"
    monkeypatch.setenv("WEATHER_API_KEY", secret)
    run = quotes_the_environment.start(name="WEATHER_API_KEY")
    with pytest.raises(rx.RunFailedError) as failed:
        run.result(timeout=10)
    assert "PermissionError: 401 for https://api.example.com/v1?key=[redacted]" in str(failed.value)
    stored = store.database.read(lambda db: db.get(rx.Run, run.id))[0]
    assert stored is not None and secret not in (stored.error or "") and stored.error

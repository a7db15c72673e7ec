"""Workflows under load and at awkward moments: what wakes a parked run, and what
must not (each wake-up is a claim and a replay of the whole journal)."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.execution import _clock
from rxnb.widgets._timeline import timeline_rows
from rxnb.workflows import Event


def noted(label: str) -> str:
    return label


@rx.workflow
def awaits_go(ctx: rx.WorkflowContext) -> Any:
    ctx.step(noted, "before")
    return ctx.wait_for_event("go")


def parked(store: rx.Store, run_id: str) -> tuple[str, float, int]:
    """The run's status, due time and attempt (one more per claim) as stored."""
    run = store.database.read(lambda db: db.get(rx.Run, run_id))[0]
    assert run is not None
    return run.status, run.due_at, run.attempt


def test_an_event_the_run_does_not_wait_for_is_kept_without_waking_it(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = rx.open(url)
    run = awaits_go.start()
    until(lambda: run.status == "waiting")
    store.close()
    monkeypatch.setenv("RXNB_EXECUTE", "0")  # this process only sends: nothing claims
    store = rx.open(url)
    try:
        before = parked(store, run.id)
        for i in range(3):
            rx.send_event(run.id, "noise", i)
        assert parked(store, run.id) == before  # still parked until its wait's deadline
        rx.send_event(run.id, "go", "yes")
        status, due, _ = parked(store, run.id)
        assert status == "waiting" and due <= _clock.now()  # due now: woken
    finally:
        store.close()
    monkeypatch.delenv("RXNB_EXECUTE")
    store = rx.open(url)
    try:
        done = until(lambda: parked(store, run.id)[0] == "succeeded" and parked(store, run.id))
        assert done[2] == before[2] + 1  # one claim: for "go"
        events = store.database.read(
            lambda db: [(e.name, e.consumed) for e in db.exec(select(Event)).all()]
        )[0]
        assert sorted(events) == [("go", True)] + [("noise", False)] * 3  # kept for a wait
    finally:
        store.close()


MANY = 70_000
"""More runs than one statement can have parameters (PostgreSQL's protocol: 65,535)."""


def test_the_timeline_of_all_runs_shows_the_newest_among_very_many(
    url: str, store: rx.Store
) -> None:
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    numbers = f"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {MANY})"
    try:
        with engine.begin() as conn:  # runs as another program would write them: fast
            conn.execute(
                sa.text(
                    f"{numbers} INSERT INTO rx_runs (id, function, args, status, attempt,"
                    " max_attempts, due_at, created_at, cancel_requested)"
                    " SELECT 'r' || i, 'flow', '{}', 'succeeded', 1, 1, 0, i, FALSE FROM n"
                )
            )
            conn.execute(
                sa.text(
                    f"{numbers} INSERT INTO rx_journal (run_id, seq, name, kind, output,"
                    " started_at, finished_at, attempts)"
                    " SELECT 'r' || i, 0, 'fetch', 'step', '1', i, i, 1 FROM n"
                )
            )
    finally:
        engine.dispose()
    rows = timeline_rows(limit=3)
    assert [row["run_id"] for row in rows] == [f"r{MANY - 2}", f"r{MANY - 1}", f"r{MANY}"]

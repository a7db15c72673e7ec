"""Pause, resume and signals, sent from another process than the one running the run:
a running action waits at its next check; a workflow parks between steps, holding no
thread; a run not started is held; resume lets each go on where it was."""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from polling import until
from run_procs import Processes, enqueue, owners_registering
from sqlmodel import select

import rxnb as rx
from rxnb.execution import Run
from rxnb.workflows import JournalEntry

COUNTS = "control_jobs.counts"
STEPS = "control_jobs.steps"


def run_row(store: rx.Store, run_id: str) -> Run:
    row = store.database.read(lambda db: db.get(Run, run_id))[0]
    assert row is not None
    return row


def progress(store: rx.Store, run_id: str) -> int:
    text = run_row(store, run_id).progress
    return 0 if text is None else int(json.loads(text)["done"])


@pytest.fixture
def worker(store: rx.Store, procs: Processes, url: str) -> Processes:
    procs.worker(url, "control_jobs")
    until(lambda: owners_registering(store, STEPS), timeout=30)
    return procs


def test_a_paused_action_waits_at_its_next_check_and_goes_on_when_resumed(
    store: rx.Store, worker: Processes
) -> None:
    run_id = enqueue(store, COUNTS)
    until(lambda: progress(store, run_id) >= 3)
    assert rx.pause(run_id) == "running"  # it stays running, waiting at its check
    assert run_row(store, run_id).paused
    held = until(lambda: _steady(store, run_id))
    assert run_row(store, run_id).status == "running"
    assert rx.resume(run_id) == "running"
    until(lambda: progress(store, run_id) > held)
    rx.signal(run_id, "stop", True)
    handle = rx.RunHandle(run_id, store)
    assert handle.result(timeout=10) >= held + 1


def _steady(store: rx.Store, run_id: str) -> int | None:
    """The run's progress if it does not move for 0.3 s (a paused run's), else None."""
    seen = progress(store, run_id)
    deadline = time.monotonic() + 0.3
    while time.monotonic() < deadline:
        if progress(store, run_id) != seen:
            return None
    return seen


def test_a_signal_reaches_the_running_action(store: rx.Store, worker: Processes) -> None:
    run_id = enqueue(store, COUNTS)
    until(lambda: progress(store, run_id) >= 1)
    rx.signal(run_id, "stop", "now")  # read at its next check, from another process
    assert rx.RunHandle(run_id, store).wait(timeout=10) == "succeeded"


def test_a_paused_workflow_parks_between_steps_holding_no_thread(
    store: rx.Store, worker: Processes
) -> None:
    run_id = enqueue(store, STEPS, n=30)  # 3 s of steps: the pause lands well before the end
    until(lambda: len(journal(store, run_id)) >= 2)
    rx.pause(run_id)
    row = until(lambda: (r := run_row(store, run_id)).status == "paused" and r)
    assert row.owner is None  # parked: no process holds it
    done = len(journal(store, run_id))
    assert done < 30
    assert rx.resume(run_id) == "queued"
    result = rx.RunHandle(run_id, store).result(timeout=30)
    assert [r["i"] for r in result] == list(range(30))
    assert len(journal(store, run_id)) == 30  # each step ran once: none again after resume


def journal(store: rx.Store, run_id: str) -> list[Any]:
    return store.database.read(
        lambda db: db.exec(select(JournalEntry).where(JournalEntry.run_id == run_id)).all()
    )[0]


def test_a_run_paused_before_it_starts_is_held_until_resumed(store: rx.Store) -> None:
    run_id = enqueue(store, COUNTS)  # no process defines it yet: it stays queued
    assert rx.pause(run_id) == "paused"
    assert rx.resume(run_id) == "queued"
    assert rx.pause(run_id) == "paused"
    assert rx.cancel(run_id) == "cancelled"  # a paused run can be cancelled
    with pytest.raises(rx.RunError, match="nothing to pause"):
        rx.pause(run_id)
    assert rx.retry(run_id) == "queued"  # retried: not paused any more
    assert not run_row(store, run_id).paused


def test_a_signal_must_be_json(store: rx.Store) -> None:
    run_id = enqueue(store, COUNTS)
    with pytest.raises(rx.ArgumentError, match="must be JSON"):
        rx.signal(run_id, "delay", object())
    with pytest.raises(rx.ArgumentError, match="must be JSON"):
        rx.signal(run_id, "delay", float("nan"))
    assert run_row(store, run_id).signals is None

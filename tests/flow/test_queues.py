"""Queues: concurrency, partitions, priority and rate hold across processes; debounce
keeps the last start; a run waiting for its queue says why and holds no thread."""

from __future__ import annotations

import itertools
import json
import threading
from typing import Any

import pytest
import queue_jobs
from polling import until
from run_procs import Processes, owners_registering
from sqlmodel import select

import rxnb as rx
from rxnb.execution import Run
from rxnb.widgets._runs import runs_table


def results(store: rx.Store, function: Any) -> list[dict[str, Any]]:
    runs = store.database.read(
        lambda db: db.exec(select(Run).where(Run.function == function.name)).all()
    )[0]
    return [json.loads(r.result) for r in runs if r.status == "succeeded"]


def worker_with_queue_jobs(store: rx.Store, procs: Processes, url: str) -> None:
    procs.worker(url, "queue_jobs")
    until(lambda: owners_registering(store, queue_jobs.on_three.name), timeout=30)


def test_sixty_runs_on_a_queue_of_three_in_two_processes_never_run_more_than_three(
    no_claims_here: None, store: rx.Store, procs: Processes, url: str
) -> None:
    procs.env.pop("RXNB_EXECUTE")  # the workers claim
    procs.worker(url, "queue_jobs")
    procs.worker(url, "queue_jobs")
    until(lambda: len(owners_registering(store, queue_jobs.on_three.name)) == 2, timeout=30)
    handles = [queue_jobs.on_three.start(n=n) for n in range(60)]
    until(lambda: len(results(store, queue_jobs.on_three)) == 60, timeout=60, interval=0.05)
    spans = results(store, queue_jobs.on_three)
    assert queue_jobs.most_at_once(spans) == 3  # as many as allowed, never more
    assert len({s["pid"] for s in spans}) == 2  # both processes took part
    assert all(h.status == "succeeded" for h in handles)


def test_one_per_partition_serializes_each_partition_and_not_the_others(
    store: rx.Store, procs: Processes, url: str
) -> None:
    worker_with_queue_jobs(store, procs, url)
    for n in range(18):
        queue_jobs.on_parts.start(n=n, seconds=0.1, partition=f"user-{n % 3}")
    assert until(lambda: waiting_notes(store) & PARTITION_NOTES, interval=0.02)  # rx.runs()
    until(lambda: len(results(store, queue_jobs.on_parts)) == 18, timeout=60, interval=0.05)
    spans = results(store, queue_jobs.on_parts)
    for p in range(3):
        assert queue_jobs.most_at_once([s for s in spans if s["n"] % 3 == p]) == 1
    assert queue_jobs.most_at_once(spans) > 1  # partitions ran side by side


PARTITION_NOTES = {f"waiting: queue parts: partition user-{p} busy" for p in range(3)}


def waiting_notes(store: rx.Store) -> set[str]:
    """Why the queued runs wait, as `rx.runs()` shows it."""
    return {r["note"] for r in store.call(runs_table) if r["status"] == "queued"}


def test_priorities_are_taken_highest_first(store: rx.Store) -> None:
    queue_jobs.on_single.start(n=-1, gate="hold")  # fills the queue of one
    until(lambda: store.call(queue_jobs_status, n=-1) == "running")
    for priority in [3, -2, 10, 0, 7, 5]:
        queue_jobs.on_single.start(n=priority, priority=priority)
    rows = until(lambda: [r for r in store.call(runs_table) if r["status"] == "queued"])
    assert {r["note"] for r in rows} == {"waiting: queue single: 1/1 running"}  # rx.runs()
    queue_jobs.GATES.setdefault("hold", threading.Event()).set()
    until(lambda: len(results(store, queue_jobs.on_single)) == 7)
    spans = sorted(results(store, queue_jobs.on_single), key=lambda s: s["start"])
    assert [s["n"] for s in spans] == [-1, 10, 7, 5, 3, 0, -2]


@rx.query
def queue_jobs_status(db: rx.Reader, n: int) -> str | None:
    for run in db.exec(select(Run).where(Run.function == queue_jobs.on_single.name)).all():
        if run.arguments().get("n") == n:
            return run.status
    return None


def test_a_rate_of_ten_a_second_spaces_starts_across_two_processes(
    store: rx.Store, procs: Processes, url: str
) -> None:
    worker_with_queue_jobs(store, procs, url)
    for n in range(25):
        queue_jobs.on_rated.start(n=n)
    rate_note = "waiting: queue rated: rate 10 per 1 s"
    assert until(lambda: rate_note in waiting_notes(store), interval=0.02)  # rx.runs()
    until(lambda: len(results(store, queue_jobs.on_rated)) == 25, timeout=30, interval=0.05)
    starts = sorted(
        r.started_at
        for r in store.database.read(
            lambda db: db.exec(select(Run).where(Run.function == queue_jobs.on_rated.name)).all()
        )[0]
    )
    # Spaced evenly: a tenth of a second apart, so never 11 starts within one second.
    assert all(b - a >= 0.1 - 1e-6 for a, b in itertools.pairwise(starts))
    assert all(b - a >= 1.0 - 1e-6 for a, b in zip(starts, starts[10:], strict=False))
    # and not much slower than that (2.4 s), with room for a loaded machine
    assert starts[-1] - starts[0] < 2.4 + 3.0


def test_a_workflow_parked_in_a_durable_sleep_holds_no_place_in_its_queue(
    store: rx.Store,
) -> None:
    first, second = (queue_jobs.naps.start(n=n) for n in range(2))
    spans = [first.result(timeout=20), second.result(timeout=20)]
    # One at a time while they run, yet side by side: each slept while the other ran.
    assert queue_jobs.most_at_once(spans) == 2


def test_an_agent_on_a_queue_answers_its_threads_one_at_a_time(store: rx.Store) -> None:
    queued = rx.Agent("queued", model="rxnb/scripted", script="ok", queue="one-at-a-time")
    turns = [queued.send(f"q-{n}", "go") for n in range(3)]
    assert [turn.result(timeout=20) for turn in turns] == ["ok"] * 3
    runs = [turn.run() for turn in turns]
    assert {run.queue for run in runs} == {"one-at-a-time"}
    spans = [{"start": run.started_at, "end": run.finished_at} for run in runs]
    assert queue_jobs.most_at_once(spans) == 1


def test_debounce_keeps_the_last_start_of_a_key(store: rx.Store) -> None:
    handles = [queue_jobs.on_three.start(n=n, key="doc-1", debounce=0.3) for n in range(5)]
    assert len({h.id for h in handles}) == 1
    assert handles[0].result(timeout=10)["n"] == 4


def test_a_run_of_a_queue_no_one_defined_is_refused(store: rx.Store) -> None:
    @rx.action(queue="nowhere")
    def lost(ctx: rx.ActionContext) -> None: ...

    with pytest.raises(rx.ArgumentError, match=r"rx.Queue\('nowhere'"):
        lost.start()
    assert (
        store.database.read(lambda db: db.exec(select(Run).where(Run.function == lost.name)).all())[
            0
        ]
        == []
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"concurrency": 0}, "concurrency=0"),
        ({"per_partition": 1.5}, "per_partition=1.5"),
        ({"rate": (10,)}, r"rate=\(10,\)\): give \(starts, seconds\)"),
        ({"rate": (10, 0)}, "rate="),
    ],
)
def test_bad_queue_limits_say_what_to_give(options: dict[str, Any], message: str) -> None:
    with pytest.raises(rx.ArgumentError, match=message):
        rx.Queue("bad", **options)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"debounce": 1.0}, "needs key="),
        ({"key": "k", "debounce": -1}, "debounce=-1"),
        ({"priority": "high"}, "priority='high'"),
        ({"partition": ""}, "partition=''"),
    ],
)
def test_bad_start_options_say_what_to_give(
    store: rx.Store, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(rx.ArgumentError, match=message):
        queue_jobs.on_three.start(n=1, **options)

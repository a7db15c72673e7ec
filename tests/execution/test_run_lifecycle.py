"""One process: cancellation, retries, timeouts, scheduled starts, orphans, executor lifetime."""

from __future__ import annotations

import datetime
import json
import threading
import time
from pathlib import Path

import pytest
import run_jobs
from polling import until
from run_jobs import add, breaks, flaky, gated, overruns, record, refuses, returns_garbage, stamp
from sqlmodel import select

import rxnb as rx
from rxnb.execution import Owner

# -- semantics 7: cancellation is a write ---------------------------------------------------


def test_cancel_of_an_action_that_never_checks_waits_for_it_and_discards_its_result(
    store: rx.Store,
) -> None:
    handle = gated.start(name="stubborn")
    until(lambda: handle.status == "running")
    assert handle.cancel() == "running"
    until(lambda: "stubborn" in run_jobs.NOTICED)  # the executor passed the cancel on
    row = handle.run()
    assert (row.status, row.cancel_requested) == ("running", True)
    run_jobs.gate("stubborn").set()
    assert handle.wait(10) == "cancelled"
    row = handle.run()
    assert (row.status, row.result, row.error) == ("cancelled", None, None)
    assert row.finished_at is not None
    with pytest.raises(rx.RunCancelledError):
        handle.result(1)
    assert handle.cancel() == "cancelled"  # cancelling a finished run changes nothing


def test_a_queued_run_cancelled_never_starts(store: rx.Store, tmp_path: Path) -> None:
    cancelled_effects = str(tmp_path / "cancelled")
    later_effects = str(tmp_path / "later")
    doomed = rx.run_after(2.0, record, path=cancelled_effects)  # cancelled long before
    assert doomed.status == "queued"
    assert rx.cancel(doomed.id) == "cancelled"
    # A witness due after it: once the witness has run, the executor has passed the
    # cancelled run's due time with a free slot, so it would have started by now.
    witness = rx.run_after(2.1, record, path=later_effects)
    assert witness.result(timeout=10) > 0
    assert run_jobs.read_lines(cancelled_effects) == []
    row = doomed.run()
    assert (row.status, row.attempt, row.started_at) == ("cancelled", 0, None)
    with pytest.raises(rx.RunCancelledError):
        doomed.result(1)


# -- retries and errors -------------------------------------------------------------------


def attempts(path: str) -> list[tuple[int, float, str]]:
    rows = [line.split("\t") for line in run_jobs.read_lines(path)]
    return [(int(n), float(t), error) for n, t, error in rows]


def test_retries_until_success_recording_each_error(store: rx.Store, tmp_path: Path) -> None:
    path = str(tmp_path / "attempts")
    handle = flaky.start(fails=2, path=path)
    assert handle.result(timeout=10) == 3
    row = handle.run()
    assert (row.status, row.attempt, row.max_attempts, row.error) == ("succeeded", 3, 3, None)
    log = attempts(path)
    assert [n for n, _, _ in log] == [1, 2, 3]
    # Each retry found the previous attempt's error on the run.
    assert log[0][2] == "None"
    assert log[1][2].startswith("ValueError: failure number 1")
    assert log[2][2].startswith("ValueError: failure number 2")
    assert "run_jobs.py" in log[1][2]  # and where it was raised
    # Backoff 0.05 s, doubling, with +-50% jitter: at least 25 ms, then at least 50 ms
    # (upper bounds only generous ones: a loaded machine must not fail this test).
    gap1, gap2 = log[1][1] - log[0][1], log[2][1] - log[1][1]
    assert 0.025 <= gap1 < 5, gap1
    assert 0.05 <= gap2 < 5, gap2


def test_failing_every_attempt_fails_with_the_last_error(store: rx.Store, tmp_path: Path) -> None:
    path = str(tmp_path / "attempts")
    handle = flaky.start(fails=5, path=path)
    assert handle.wait(10) == "failed"
    row = handle.run()
    assert (row.attempt, row.finished_at is not None) == (3, True)
    assert row.error and row.error.startswith("ValueError: failure number 3")
    with pytest.raises(rx.RunFailedError, match="failure number 3"):
        handle.result(1)
    assert [n for n, _, _ in attempts(path)] == [1, 2, 3]


def test_retry_queues_a_failed_run_for_one_more_attempt(store: rx.Store, tmp_path: Path) -> None:
    path = str(tmp_path / "attempts")
    handle = flaky.start(fails=3, path=path)
    assert handle.wait(10) == "failed"
    with pytest.raises(rx.RunError, match="only failed or cancelled"):
        rx.retry(flaky.start(fails=0, path=str(tmp_path / "other")).id)  # queued or running
    assert rx.retry(handle.id) == "queued"
    assert handle.result(10) == 4  # the fourth attempt, past the 3 failures
    assert handle.run().attempt == 4
    with pytest.raises(rx.RunError, match="only failed or cancelled"):
        rx.retry(handle.id)
    with pytest.raises(rx.RunNotFoundError):
        rx.retry("no-such-run")


def test_non_retryable_error_fails_at_once(store: rx.Store, tmp_path: Path) -> None:
    path = str(tmp_path / "attempts")
    handle = refuses.start(path=path)
    with pytest.raises(rx.RunFailedError, match="retrying cannot help"):
        handle.result(timeout=10)
    row = handle.run()
    assert (row.status, row.attempt, row.max_attempts) == ("failed", 1, 4)
    assert run_jobs.read_lines(path) == ["1"]


def test_without_retries_an_action_runs_at_most_once(store: rx.Store, tmp_path: Path) -> None:
    path = str(tmp_path / "attempts")
    handle = breaks.start(path=path)
    assert handle.wait(10) == "failed"
    assert "RuntimeError: broken on purpose" in (handle.run().error or "")
    assert run_jobs.read_lines(path) == ["1"]


def test_a_result_that_is_not_json_fails_without_running_again(
    store: rx.Store, tmp_path: Path
) -> None:
    """The action did its work; retrying would repeat its side effects for nothing."""
    path = str(tmp_path / "attempts")
    handle = returns_garbage.start(path=path)
    with pytest.raises(rx.RunFailedError, match="cannot serialize"):
        handle.result(timeout=10)
    assert handle.run().attempt == 1
    assert run_jobs.read_lines(path) == ["1"]


def test_timeout_cancels_and_fails_the_run(store: rx.Store) -> None:
    started = time.monotonic()
    handle = overruns.start()
    assert handle.wait(10) == "failed"
    elapsed = time.monotonic() - started
    row = handle.run()
    assert row.error is not None and "timed out after 0.3 s" in row.error, row.error
    assert 0.3 <= elapsed < 10
    assert row.finished_at - row.started_at >= 0.3  # type: ignore[operator]
    with pytest.raises(rx.RunFailedError, match="timed out"):
        handle.result(1)


# -- scheduling -----------------------------------------------------------------------------


def test_run_after_starts_on_time_not_on_a_polling_tick(store: rx.Store) -> None:
    """Several runs due at staggered times each start once due, not before. How soon
    after is a figure of bench/runs.py (R1: p50 <= 10 ms); here the bound only has to
    survive a loaded machine."""
    stamp.start().result(timeout=10)  # warm the pool: measure scheduling, not thread start
    called = time.time()
    delays = [0.3, 0.37, 0.41, 0.52]
    handles = [rx.run_after(d, stamp) for d in delays]
    lateness = []
    for delay, handle in zip(delays, handles, strict=True):
        began = handle.result(timeout=10)
        row = handle.run()
        assert began - called >= delay
        assert row.started_at is not None and row.started_at >= row.due_at
        lateness.append(began - row.due_at)
    print(f"run_after lateness (due -> action began): {[f'{x * 1000:.1f} ms' for x in lateness]}")
    assert max(lateness) < 5, lateness


def test_run_at_a_datetime(store: rx.Store) -> None:
    when = datetime.datetime.now() + datetime.timedelta(seconds=0.3)
    handle = rx.run_at(when, stamp)
    assert handle.status == "queued"
    began = handle.result(timeout=10)
    assert 0 <= began - when.timestamp() < 5


# -- orphans and executor lifetime ------------------------------------------------------------


def test_a_silent_owner_on_another_host_loses_its_runs_after_the_lease(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No pid to check on another host: only the lease (here 1 s) tells it is gone."""
    monkeypatch.setenv("RXNB_LEASE_SECONDS", "1")
    path = str(tmp_path / "effects")
    store = rx.open(url)
    try:
        last_beat = time.time()
        owner = Owner(
            id="elsewhere:1:feed",
            host="elsewhere",
            pid=1,
            started_at=last_beat,
            heartbeat_at=last_beat,
            functions='["run_jobs.record"]',
        )
        run = rx.Run(
            id="remote-run",
            function=record.name,
            args=json.dumps({"path": path}),
            status="running",
            owner=owner.id,
            attempt=1,
            max_attempts=2,
            due_at=last_beat,
            created_at=last_beat,
            started_at=last_beat,
        )

        def write(db: rx.Writer) -> None:
            db.add(owner)
            db.add(run)

        store.database.write(write)
        handle = rx.RunHandle(run.id, store)
        assert handle.result(timeout=10) > 0
        row = handle.run()
        assert (row.status, row.attempt) == ("succeeded", 2)
        assert row.started_at is not None and row.started_at - last_beat >= 1.0
        assert [line.split()[2] for line in run_jobs.read_lines(path)] == ["2"]
        assert store.database.read(lambda db: db.get(Owner, owner.id))[0] is None
    finally:
        store.close()


def rxnb_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name.startswith("rxnb-")}


def test_closing_a_store_stops_its_executor_threads(url: str) -> None:
    before = rxnb_threads()
    for i in range(3):
        store = rx.open(url)
        assert any(t.name == "rxnb-scheduler" for t in rxnb_threads() - before)
        assert add.start(a=i, b=1).result(timeout=10) == i + 1
        store.close()
        until(lambda: rxnb_threads() <= before, timeout=10)
    store = rx.open(url)
    try:
        owners = store.database.read(lambda db: db.exec(select(Owner)).all())[0]
        assert len(owners) == 1, "each closed executor removed its owner row"
    finally:
        store.close()


def test_a_run_that_ignores_the_handover_of_a_closed_store_is_handed_over_after_the_lease(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXNB_LEASE_SECONDS", "1")
    store = rx.open(url)
    handle = gated.start(name="abandoned")
    until(lambda: handle.status == "running", timeout=10)
    store.close()  # asks it to stop; it does not (it never checks), so it is left running
    try:
        store = rx.open(url)  # the process is alive: its owner row says it was stopping
        reopened = rx.RunHandle(handle.id, store)
        # Once the old owner's heartbeat is a lease old, the run is handed over (a
        # crash is not counted), and this process's new executor starts it again.
        until(lambda: reopened.run().attempt == 2, timeout=10)
        run_jobs.gate("abandoned").set()
        assert reopened.result(timeout=10) == "abandoned done"
        row = reopened.run()
        assert (row.interrupted, row.crashes, row.max_attempts) == ("its store was closed", 0, 2)
    finally:
        run_jobs.gate("abandoned").set()
        store.close()

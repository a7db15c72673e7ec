"""Several processes on one SQLite store: exactly once, kill -9 recovery, remote cancel, CLI."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import run_jobs
from polling import until
from run_jobs import record, run_status
from run_procs import Processes, enqueue, owners_registering
from sqlmodel import select

import rxnb as rx
from rxnb.execution import Owner


def statuses(store: rx.Store, function: str) -> collections.Counter[str]:
    rows = store.database.read(
        lambda db: db.exec(select(rx.Run.status).where(rx.Run.function == function)).all()
    )[0]
    return collections.Counter(rows)


def running_anywhere(store: rx.Store) -> list[rx.Run]:
    return store.database.read(
        lambda db: db.exec(select(rx.Run).where(rx.Run.status == "running")).all()
    )[0]


def test_100_runs_on_3_processes_each_execute_exactly_once(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path
) -> None:
    workers = [procs.worker(url, "run_jobs"), procs.worker(url, "run_jobs", cli="script")]
    until(lambda: len(owners_registering(store, record.name)) == 3, timeout=20)
    effects = str(tmp_path / "effects")
    handles = [record.start(path=effects, pause=0.01) for _ in range(100)]
    for handle in handles:
        handle.wait(timeout=30)
    assert statuses(store, record.name) == {"succeeded": 100}

    lines = [line.split() for line in run_jobs.read_lines(effects)]
    executed = collections.Counter(run_id for run_id, _, _ in lines)
    assert sorted(executed) == sorted(h.id for h in handles)
    assert set(executed.values()) == {1}, [r for r, n in executed.items() if n > 1]
    assert {attempt for _, _, attempt in lines} == {"1"}
    by_pid = collections.Counter(pid for _, pid, _ in lines)
    print(f"runs per process: {dict(by_pid)}")
    assert len(by_pid) >= 2, f"one process ran everything: {by_pid}"
    assert by_pid.keys() <= {str(os.getpid()), *(str(w.pid) for w in workers)}


def test_a_worker_imports_litellm_only_once_it_runs_nothing(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path
) -> None:
    # litellm costs seconds of CPU to import: a worker started on a queue does not take
    # them from its runs, and imports it once idle, before a reply needs it.
    probe = "remote_jobs.litellm_imported"
    release = tmp_path / "release"
    busy = enqueue(store, probe, hold=str(release), at_least=1.5)  # claimed at start
    procs.worker(url, "remote_jobs")
    first = enqueue(store, probe)
    assert rx.RunHandle(first, store).result(timeout=30) is False
    release.touch()
    assert rx.RunHandle(busy, store).result(timeout=30) is False  # busy for 1.5 s and more

    def imported_once_idle() -> bool:
        return rx.RunHandle(enqueue(store, probe), store).result(timeout=30) is True

    until(imported_once_idle, timeout=30)


def start_stalled_run(
    procs: Processes, url: str, action: str, marker: Path
) -> tuple[subprocess.Popen[bytes], str]:
    """A process that alone registers `action` starts a run of it and blocks in it."""
    victim = procs.python(
        f"""
        import sys, threading, rxnb as rx
        from crash_jobs import {action}
        rx.open(sys.argv[1])
        {action}.start(marker=sys.argv[2])
        threading.Event().wait()
        """,
        url,
        str(marker),
    )
    line = until(lambda: run_jobs.read_lines(str(marker)), timeout=20)[0]
    run_id, pid, attempt = line.split()
    assert (int(pid), attempt) == (victim.pid, "1")
    return victim, run_id


def kill_9(proc: subprocess.Popen[bytes]) -> float:
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.time()
    assert proc.wait(10) == -signal.SIGKILL
    return killed_at


@pytest.mark.parametrize("action", ["stall_once", "stall_retried"])
def test_kill_9_mid_run_is_retried_elsewhere_without_spending_an_attempt(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path, action: str
) -> None:
    """A dead owner is not the action's failure: the run is queued again whether or
    not the action has `retries=`, and its `retries=` budget is left whole."""
    marker = tmp_path / "marker"
    victim, run_id = start_stalled_run(procs, url, action, marker)
    handle = rx.RunHandle(run_id, store)
    assert handle.status == "running"
    assert handle.run().owner.split(":")[1] == str(victim.pid)  # type: ignore[union-attr]
    rescuer = procs.worker(url, "crash_jobs")
    until(lambda: len(owners_registering(store, f"crash_jobs.{action}")) == 2, timeout=20)

    killed_at = kill_9(victim)
    until(lambda: handle.status != "running", timeout=15)
    recovered_after = time.time() - killed_at
    assert handle.result(timeout=10) == {"attempt": 2, "pid": rescuer.pid}
    row = handle.run()
    retries = 1 if action == "stall_retried" else 0
    assert (row.status, row.attempt, row.max_attempts) == ("succeeded", 2, retries + 2)
    assert (row.crashes, row.interrupted, row.error) == (1, "its process died", None)
    assert [line.split()[2] for line in run_jobs.read_lines(str(marker))] == ["1", "2"]
    assert running_anywhere(store) == []
    owner_pids = {o.pid for o in store.database.read(lambda db: db.exec(select(Owner)).all())[0]}
    assert victim.pid not in owner_pids, "the dead owner's row was removed"
    print(f"kill -9 -> run requeued after {recovered_after:.2f} s")
    assert recovered_after < 8.0, "same host: a dead pid is an orphan before the 10 s lease"


def test_kill_9_mid_run_of_an_at_most_once_action_fails_it_and_never_runs_it_again(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path
) -> None:
    marker = tmp_path / "marker"
    victim, run_id = start_stalled_run(procs, url, "stall_at_most_once", marker)
    rescuer = procs.worker(url, "crash_jobs")  # could run it again: must not
    until(lambda: len(owners_registering(store, "crash_jobs.stall_at_most_once")) == 2, timeout=20)
    handle = rx.RunHandle(run_id, store)
    killed_at = kill_9(victim)
    assert handle.wait(timeout=15) == "failed"
    recovered_after = time.time() - killed_at
    row = handle.run()
    assert row.attempt == 1
    assert row.error is not None and row.error.startswith("owner process died; not started again")
    assert f"rx.retry({run_id!r})" in row.error
    assert running_anywhere(store) == []
    assert rescuer.poll() is None
    assert len(run_jobs.read_lines(str(marker))) == 1, "the side effect happened once"
    print(f"kill -9 -> run failed after {recovered_after:.2f} s")
    assert recovered_after < 8.0


def test_an_action_that_kills_its_process_each_time_fails_after_its_crash_retries(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path
) -> None:
    """A poison pill does not loop for ever: with crash_retries=2 it is started three
    times (each start kills its worker), then the next worker fails it, saying why."""
    marker = str(tmp_path / "marker")
    run_id = enqueue(store, "crash_jobs.kills_its_process", marker=marker)
    store.database.write(lambda db: setattr(db.get(rx.Run, run_id), "crash_retries", 2))
    handle = rx.RunHandle(run_id, store)
    workers = []
    while handle.status not in ("failed", "succeeded", "cancelled"):
        assert len(workers) < 6, f"still {handle.status} after {len(workers)} workers"
        workers.append(procs.worker(url, "crash_jobs"))
        until(lambda: workers[-1].poll() is not None or handle.status == "failed", timeout=30)
    row = handle.run()
    assert row.status == "failed", row
    starts = run_jobs.read_lines(marker)
    assert [line.split()[0] for line in starts] == ["1", "2", "3"], starts
    assert row.crashes == 3
    assert row.error is not None
    assert row.error.startswith("owner process died 3 times in a row"), row.error
    assert "(crash_retries=2)" in row.error and f"rx.retry({run_id!r})" in row.error
    assert running_anywhere(store) == []


def test_a_worker_stopped_by_sigterm_records_the_run_it_was_running(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path
) -> None:
    """A graceful stop lets a short run end and be recorded: not failed as if the
    process had died, and not run again."""
    marker = str(tmp_path / "marker")
    worker = procs.worker(url, "crash_jobs")
    until(lambda: owners_registering(store, "crash_jobs.finishes"), timeout=20)
    run_id = enqueue(store, "crash_jobs.finishes", marker=marker)
    until(lambda: run_jobs.read_lines(marker), timeout=10)
    worker.send_signal(signal.SIGTERM)
    assert worker.wait(20) == 0, procs.output(worker)
    row = rx.RunHandle(run_id, store).run()
    assert (row.status, row.result, row.error) == ("succeeded", '"finished"', None)
    assert run_jobs.read_lines(marker) == ["started", "ended"]
    assert owners_registering(store, "crash_jobs.finishes") == [], "its owner row is gone"


def test_a_worker_stopped_by_sigterm_hands_a_long_run_over_without_cancelling_it(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path
) -> None:
    """A run that stops when asked is handed back to the queue at once (not cancelled,
    its attempt not spent) and taken up by another worker; the stopped one exits."""
    marker = tmp_path / "marker"
    stopping = procs.worker(url, "crash_jobs")
    until(lambda: owners_registering(store, "crash_jobs.stall_retried"), timeout=20)
    run_id = enqueue(store, "crash_jobs.stall_retried", max_attempts=2, marker=str(marker))
    until(lambda: run_jobs.read_lines(str(marker)), timeout=10)
    rescuer = procs.worker(url, "crash_jobs")
    until(lambda: len(owners_registering(store, "crash_jobs.stall_retried")) == 2, timeout=20)
    handle = rx.RunHandle(run_id, store)
    assert handle.run().owner.split(":")[1] == str(stopping.pid)  # type: ignore[union-attr]

    asked = time.monotonic()
    stopping.send_signal(signal.SIGTERM)
    assert stopping.wait(15) == 0, procs.output(stopping)
    exited_after = time.monotonic() - asked
    assert handle.result(timeout=15) == {"attempt": 2, "pid": rescuer.pid}
    assert [line.split()[2] for line in run_jobs.read_lines(str(marker))] == ["1", "2"]
    print(f"SIGTERM -> worker exited after {exited_after:.1f} s")
    assert exited_after < 10


def test_cancel_from_another_process_reaches_both_processes_subscribers(
    store: rx.Store, url: str, procs: Processes, tmp_path: Path
) -> None:
    """The run executes in a worker; this process cancels it; both processes see it."""
    marker = tmp_path / "marker"
    # The other process starts the run and is the only one to register its action.
    watcher = procs.python(
        """
        import sys, threading, rxnb as rx
        from run_jobs import run_status
        from remote_jobs import obeys_remotely
        store = rx.open(sys.argv[1])
        handle = obeys_remotely.start(marker=sys.argv[2])
        seen, done = [], threading.Event()
        def on_status(status):
            seen.append(status)
            if status == "cancelled":
                done.set()
        store.subscribe(run_status, {"run_id": handle.id}, on_status)
        assert done.wait(30), seen
        try:
            handle.result(5)
        except rx.RunCancelledError:
            print("subscriber saw", seen, "result: RunCancelledError", flush=True)
        """,
        url,
        str(marker),
    )
    run_id = until(lambda: run_jobs.read_lines(str(marker)), timeout=20)[0].split()[0]
    handle = rx.RunHandle(run_id, store)
    assert handle.run().owner.split(":")[1] == str(watcher.pid)  # type: ignore[union-attr]

    seen: list[str | None] = []
    cancelled = threading.Event()

    def on_status(status: str | None) -> None:
        seen.append(status)
        if status == "cancelled":
            cancelled.set()

    sub = store.subscribe(run_status, {"run_id": run_id}, on_status)
    assert seen == ["running"]
    asked_at = time.monotonic()
    assert rx.cancel(run_id) == "running"  # running: the action itself must stop
    assert cancelled.wait(10), seen
    took = time.monotonic() - asked_at
    sub.close()
    assert watcher.wait(20) == 0, procs.output(watcher)
    out = procs.output(watcher)
    assert "subscriber saw" in out and "'cancelled'" in out and "RunCancelledError" in out
    row = handle.run()
    assert (row.status, row.cancel_requested, row.result) == ("cancelled", True, None)
    print(f"cancel in this process -> cancelled seen here after {took * 1000:.0f} ms")


def test_rxnb_runs_says_when_no_executor_registered_a_queued_runs_function(
    store: rx.Store, url: str, procs: Processes
) -> None:
    # A notebook queued a run of its own function, far in the future, and went away.
    gone = procs.python(
        """
        import sys, rxnb as rx
        @rx.action
        def only_in_that_notebook(ctx: rx.ActionContext) -> None:
            pass
        store = rx.open(sys.argv[1])
        print(rx.run_after(3600, only_in_that_notebook).id)
        """,
        url,
    )
    assert gone.wait(30) == 0, procs.output(gone)
    orphan_id = procs.output(gone).split()[-1]
    served = rx.run_after(3600, record, path="unused")  # this process registers `record`

    listing = subprocess.run(
        [sys.executable, "-m", "rxnb", "runs", "--url", url],
        env=procs.env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout
    lines = {line.split()[0]: line for line in listing.splitlines()[1:]}
    assert "no executor has registered `__main__.only_in_that_notebook`" in lines[orphan_id]
    assert "queued" in lines[served.id]
    assert "no executor has registered" not in lines[served.id]

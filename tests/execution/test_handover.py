"""Hand-over: a process that stops gives its runs back to the queue, their attempt not
spent (rule 7 of `Executor`); crashes and errors are told apart and read in one line.

The kernel matrix is in test_kernel_lifecycle.py; this file covers the executor's side
in one process (store.close()) and in plain Python processes (exit, SIGTERM).
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import run_jobs
import sqlalchemy as sa
from polling import until
from run_jobs import fails_deeply, stops_at_most_once, stops_when_asked
from run_procs import Processes

import rxnb as rx
from rxnb.execution import _owners


def starts(path: str) -> list[str]:
    return [line.split()[0] for line in run_jobs.read_lines(path)]


def test_closing_the_store_hands_a_running_run_back_without_spending_an_attempt(
    url: str, tmp_path: Path
) -> None:
    path = str(tmp_path / "starts")
    store = rx.open(url)
    handle = stops_when_asked.start(path=path)
    until(lambda: starts(path) == ["1"], timeout=10)
    closing = time.monotonic()
    store.close()
    closed_in = time.monotonic() - closing
    store = rx.open(url)  # defines the action: starts it again
    try:
        handle = rx.RunHandle(handle.id, store)
        until(lambda: starts(path) == ["1", "2"], timeout=10)
        rx.cancel(handle.id)  # let it end: a user's cancel now
        assert handle.wait(10) == "cancelled"
        row = handle.run()
        assert (row.attempt, row.max_attempts, row.crashes) == (2, 2, 0)
        assert (row.interrupted, row.error) == ("its store was closed", None)
    finally:
        store.close()
    assert closed_in < 5, "the action stopped at its next check, not after a timeout"


def test_an_at_most_once_run_handed_over_fails_instead_of_starting_again(
    url: str, tmp_path: Path
) -> None:
    path = str(tmp_path / "starts")
    store = rx.open(url)
    handle = stops_at_most_once.start(path=path)
    until(lambda: starts(path) == ["1"], timeout=10)
    store.close()
    store = rx.open(url)
    try:
        handle = rx.RunHandle(handle.id, store)
        assert handle.wait(10) == "failed"
        row = handle.run()
        assert row.error is not None
        assert row.error.startswith("its store was closed; not started again (at_most_once=True)")
        assert f"rx.retry({handle.id!r})" in row.error
        assert starts(path) == ["1"]
    finally:
        store.close()


def test_a_cancel_that_arrives_during_the_handover_wins(url: str, tmp_path: Path) -> None:
    path = str(tmp_path / "starts")
    store = rx.open(url)
    handle = stops_when_asked.start(path=path)
    until(lambda: starts(path) == ["1"], timeout=10)
    rx.cancel(handle.id)  # recorded; then the store closes before anyone reacts
    store.close()
    store = rx.open(url)
    try:
        assert rx.RunHandle(handle.id, store).wait(10) == "cancelled"
        assert starts(path) == ["1"]
    finally:
        store.close()


SCRIPT = """
import sys, rxnb as rx
from run_jobs import stops_when_asked, read_lines
rx.open(sys.argv[1])
handle = stops_when_asked.start(path=sys.argv[2])
while not read_lines(sys.argv[2]):
    pass
print("started", handle.id, flush=True)
{ending}
"""


@pytest.mark.parametrize(
    ("ending", "why", "code"),
    [
        ("", "its process exited", 0),  # the script's end: the interpreter exits
        ("sys.exit(3)", "its process exited", 3),
        ("import threading; threading.Event().wait()", "its process was stopped (SIGTERM)", -15),
    ],
    ids=["end-of-script", "sys.exit", "sigterm"],
)
def test_a_python_process_that_stops_hands_its_runs_over(
    url: str, tmp_path: Path, ending: str, why: str, code: int
) -> None:
    path = str(tmp_path / "starts")
    procs = Processes(tmp_path)
    try:
        proc = procs.python(SCRIPT.format(ending=ending), url, path)
        run_id = started(procs, proc)
        stopping = time.monotonic()
        if code == -15:
            proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == code, procs.output(proc)
        stopped_in = time.monotonic() - stopping
    finally:
        procs.close()
    with rx.open(url, migrate=False) as store:
        row = rx.RunHandle(run_id, store).run()
        # This process does not define the action (the module is imported here, but
        # the run is not taken up while we look): it waits, queued, for an executor.
        assert (row.status, row.attempt, row.max_attempts) in (("queued", 1, 2), ("running", 2, 2))
        assert (row.interrupted, row.crashes, row.error) == (why, 0, None)
        rx.cancel(run_id, store=store)
    assert stopped_in < 10, "the process exited promptly, not blocked by its pool thread"
    assert "Traceback" not in procs.output(proc), procs.output(proc)


def test_a_stored_error_is_one_line_with_the_traceback_beside_it(store: rx.Store) -> None:
    handle = fails_deeply.start(lines=200)
    assert handle.wait(10) == "failed"
    row = handle.run()
    assert row.error is not None and row.traceback is not None
    assert "\n" not in row.error and len(row.error) <= 300, row.error
    assert row.error.startswith("RuntimeError: APIConnectionError: provider down line 0 of")
    assert row.error.endswith(")") and "run_jobs.py:" in row.error  # where, kept whole
    for noise in ("Give Feedback", "github.com/BerriAI", "\x1b["):
        assert noise not in row.error and noise not in row.traceback
    assert "Traceback (most recent call last)" in row.traceback
    assert "line 199 of a long explanation" in row.traceback
    with pytest.raises(rx.RunFailedError, match="RuntimeError: APIConnectionError"):
        handle.result(1)


def test_owners_here_are_judged_by_their_process_and_others_by_their_heartbeat() -> None:
    now = time.time()
    me = _owners.new_owner("me", now)
    assert _owners.MACHINE is not None and me.pid_start is not None  # Linux, as in CI

    def dead(**changes: object) -> bool:
        owner = _owners.new_owner("other", now)
        for name, value in changes.items():
            setattr(owner, name, value)
        return "other" in _owners._dead_owners([owner], "me")

    assert not dead(), "this very process"
    assert dead(pid_start=me.pid_start - 1), "the pid now belongs to a newer process"
    assert dead(pid=2**22 + 7), "no such process"
    stalled = now - 3600  # a process here holding the GIL for an hour keeps its runs
    assert not dead(heartbeat_at=stalled)
    assert dead(heartbeat_at=stalled, stopping="its store was closed"), "it stopped, went silent"
    # Same host name, another pid namespace (a container): its pids mean nothing here.
    assert not dead(machine="another-boot/pid:[1]", pid=2**22 + 7)
    assert dead(machine="another-boot/pid:[1]", heartbeat_at=stalled)


def test_crash_retries_are_checked_and_stored(url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(rx.FunctionError, match=r"crash_retries=-1\): use a whole number"):
        rx.action(crash_retries=-1)(lambda ctx: None)
    with pytest.raises(rx.FunctionError, match=r"at_most_once='yes'\): pass True or False"):
        rx.action(at_most_once="yes")(lambda ctx: None)
    monkeypatch.setenv("RXNB_CRASH_RETRIES", "many")
    with pytest.raises(rx.FunctionError, match="RXNB_CRASH_RETRIES='many'"):
        rx.action(lambda ctx: None)
    monkeypatch.setenv("RXNB_CRASH_RETRIES", "7")
    store = rx.open(url)
    try:
        monkeypatch.setenv("RXNB_EXECUTE", "0")  # queue only: look at the stored row

        @rx.action
        def quiet(ctx: rx.ActionContext) -> None: ...

        row = quiet.start().run()
        assert (row.crash_retries, row.at_most_once) == (7, False)
    finally:
        store.close()


@pytest.mark.sqlite_only
def test_a_store_made_by_an_older_rxnb_gets_the_new_run_columns_on_open(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with rx.open(f"sqlite:///{path}"):
        pass
    with sqlite3.connect(path) as db:
        for table, column in [
            ("rx_runs", "crashes"),
            ("rx_runs", "interrupted"),
            ("rx_runs", "traceback"),
            ("rx_owners", "stopping"),
            ("rx_generations", "traceback"),
            ("rx_journal", "traceback"),
        ]:
            db.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    db.close()
    with rx.open(f"sqlite:///{path}") as store:  # no migrate=True: rxnb's own tables
        assert add_row_works(store)


def add_row_works(store: rx.Store) -> bool:
    handle = run_jobs.add.start(a=1, b=2)
    return handle.result(timeout=10) == 3 and handle.run().crashes == 0


# -- from adversarial review ----------------------------------------------------------------

BUSY = """
import sys, rxnb as rx
from run_jobs import note, read_lines, stops_when_asked
rx.open(sys.argv[1])
handle = stops_when_asked.start(path=sys.argv[2])
while not read_lines(sys.argv[2]):
    pass
print("started", handle.id, flush=True)
i = 0
while True:  # the main thread is inside a store write whenever the signal may come
    note(text=str(i))
    i += 1
"""


def test_sigterm_while_the_main_thread_writes_hands_over_and_ends_the_process(
    url: str, tmp_path: Path
) -> None:
    """The signal handler used to hand over from inside the main thread's transaction:
    the process hung (PostgreSQL) or lost the hand-over (SQLite)."""
    for trial in range(3):
        path = str(tmp_path / f"starts-{trial}")
        procs = Processes(tmp_path)
        try:
            proc = procs.python(BUSY, url, path)
            run_id = started(procs, proc)
            time.sleep(0.05 * trial)  # not a synchronization: a different moment each trial
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(20) == -signal.SIGTERM, procs.output(proc)
        finally:
            procs.close()
        with rx.open(url, migrate=False) as store:
            row = rx.RunHandle(run_id, store).run()
            assert (row.interrupted, row.crashes) == ("its process was stopped (SIGTERM)", 0)
            rx.cancel(run_id, store=store)


def started(procs: Processes, proc: subprocess.Popen[bytes]) -> str:
    """The run id a script printed once its run started."""
    found = until(lambda: re.search(r"^started (\w+)$", procs.output(proc), re.M), timeout=30)
    return str(found[1])


def test_an_action_that_returns_once_it_sees_a_handover_is_started_again(
    url: str, tmp_path: Path
) -> None:
    """Its result is not taken (it stopped early, as for a cancel): the run is queued
    again and its next start runs to the end."""
    path = str(tmp_path / "starts")
    store = rx.open(url)
    handle = run_jobs.returns_when_stopped.start(path=path)
    until(lambda: starts(path) == ["1"], timeout=10)
    store.close()
    store = rx.open(url)
    try:
        handle = rx.RunHandle(handle.id, store)
        until(lambda: starts(path) == ["1", "2"], timeout=10)
        rx.cancel(handle.id)
        assert handle.wait(10) == "cancelled"
        assert handle.run().interrupted == "its store was closed"
    finally:
        store.close()


@contextmanager
def a_stopped_worker_waiting_for_a_deaf_run(
    url: str, tmp_path: Path, seconds: float
) -> Iterator[tuple[Processes, subprocess.Popen[bytes], rx.RunHandle, str]]:
    """A worker running `deaf` (it never checks), sent SIGTERM: it says it waits."""
    path = str(tmp_path / "deaf")
    procs = Processes(tmp_path)
    os.environ["RXNB_EXECUTE"] = "0"  # this process only queues: the worker runs it
    try:
        store = rx.open(url)
    finally:
        del os.environ["RXNB_EXECUTE"]
    try:
        handle = run_jobs.deaf.start(seconds=seconds, path=path)
        worker = procs.worker(url, "run_jobs")
        until(lambda: run_jobs.read_lines(path) == ["start 1"], timeout=30)
        worker.send_signal(signal.SIGTERM)
        until(lambda: "waiting for 1 run(s)" in procs.output(worker), timeout=10)
        yield procs, worker, handle, path
    finally:
        procs.close()
        store.close()


def test_a_worker_waits_for_a_run_that_does_not_stop_and_records_it(
    url: str, tmp_path: Path
) -> None:
    with a_stopped_worker_waiting_for_a_deaf_run(url, tmp_path, 3.0) as (
        procs,
        worker,
        handle,
        path,
    ):
        assert worker.wait(20) == 0, procs.output(worker)
        assert handle.result(timeout=5) == "deaf done"
        assert run_jobs.read_lines(path) == ["start 1", "end 1"], "run once, recorded"


def test_a_second_sigterm_stops_a_waiting_worker_at_once_and_its_run_is_handed_over(
    url: str, tmp_path: Path
) -> None:
    with a_stopped_worker_waiting_for_a_deaf_run(url, tmp_path, 30.0) as (procs, worker, handle, _):
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(10) == 128 + signal.SIGTERM, procs.output(worker)
        # Its owner row said it was stopping: the run is a hand-over, not a crash.
        recovered = until(lambda: handle.run().status != "running" and handle.run(), timeout=10)
        assert (recovered.interrupted, recovered.crashes) == ("the worker stopped", 0)
        rx.cancel(handle.id, store=handle.store)


def test_settings_and_options_out_of_range_are_refused_naming_the_fix(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for value in ("", "abc", "inf", "nan", "-1", "1e12"):
        monkeypatch.setenv("RXNB_HANDOVER_SECONDS", value)
        # Read when the store's executor starts (this process defines actions), not
        # first at exit, where the hand-over would fail: rx.open fails, and leaves
        # no store open behind it.
        with pytest.raises(rx.RxnbError, match=r"RXNB_HANDOVER_SECONDS=.*from 0 to 60"):
            rx.open(url)
        with pytest.raises(rx.NoStoreError):
            rx.current_store()
    monkeypatch.delenv("RXNB_HANDOVER_SECONDS")
    for option in ("retries", "crash_retries"):
        with pytest.raises(rx.FunctionError, match=rf"{option}=10000000000\): use a whole"):
            rx.action(**{option: 10**10})(lambda ctx: None)
    monkeypatch.setenv("RXNB_CRASH_RETRIES", "99999999999999999999")
    with pytest.raises(rx.FunctionError, match="RXNB_CRASH_RETRIES="):
        rx.action(lambda ctx: None)


def test_an_error_message_holding_a_nul_is_stored(store: rx.Store) -> None:
    handle = run_jobs.raises_a_nul.start()
    assert handle.wait(10) == "failed"
    row = handle.run()
    assert row.error is not None and row.error.startswith("ValueError: before\ufffdafter")
    assert row.traceback is not None and "\x00" not in row.traceback


SENDER = """
import os, sys
os.environ["RXNB_CHAT_DELAY"] = "0.05"
sys.path.insert(0, sys.argv[2])
import rxnb as rx
from chat_app import send
rx.open(sys.argv[1])
print("reply", send(thread_id="t", text="hello"), flush=True)
import threading; threading.Event().wait()  # until kill -9
"""

ELSEWHERE = """
import sys, rxnb as rx
store = rx.open(sys.argv[1])  # recovers the dead owner's runs; no chat_app here
if len(sys.argv) > 2:
    rx.cancel(sys.argv[2])
store.close()
"""


def test_a_process_without_the_message_class_still_sets_a_reply_back_to_pending_then_cancelled(
    url: str, tmp_path: Path
) -> None:
    """Recovery (and a cancel) in a process that does not define the chat's table
    class: the reply's row used to stay `streaming` for good."""
    examples = str(Path(__file__).resolve().parents[2] / "examples")
    procs = Processes(tmp_path)
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def reply() -> tuple[str, str]:
        with engine.connect() as conn:
            row = conn.execute(
                sa.text("SELECT status, content FROM chat_message WHERE role = 'assistant'")
            ).one()
        return row.status, row.content

    try:
        sender = procs.python(SENDER, url, examples)
        until(lambda: "reply" in procs.output(sender), timeout=30)
        until(lambda: reply()[0] == "streaming" and reply()[1], timeout=30)
        os.kill(sender.pid, signal.SIGKILL)
        assert sender.wait(10) == -signal.SIGKILL
        opener = procs.python(ELSEWHERE, url)
        assert opener.wait(30) == 0, procs.output(opener)
        assert reply()[0] == "pending"
        with engine.connect() as conn:
            run_id = conn.execute(sa.text("SELECT id FROM rx_runs")).scalar_one()
        canceller = procs.python(ELSEWHERE, url, run_id)
        assert canceller.wait(30) == 0, procs.output(canceller)
        assert reply()[0] == "cancelled"
    finally:
        procs.close()
        engine.dispose()

"""Hand-over: a process that stops gives its runs back to the queue, their attempt not
spent (rule 7 of `Executor`); crashes and errors are told apart and read in one line.

The kernel matrix is in test_kernel_lifecycle.py; this file covers the executor's side
in one process (store.close()) and in plain Python processes (exit, SIGTERM).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
import run_jobs
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
        line = until(lambda: "started" in procs.output(proc) and procs.output(proc), timeout=30)
        run_id = line.split("started ")[1].split()[0]
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


def test_a_pid_taken_by_a_newer_process_is_not_the_owner_alive(tmp_path: Path) -> None:
    me = os.getpid()
    assert _owners._pid_alive(me, since=time.time())
    started = _owners._process_started(me)
    assert started is not None and started <= time.time()
    assert not _owners._pid_alive(me, since=started - 60), "this process is newer than that"


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

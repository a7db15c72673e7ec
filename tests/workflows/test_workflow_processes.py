"""Durable sleep and events across processes: a workflow parked in one process is
woken on time by another, and an event sent from a process that only opens the store
reaches it, whether it was sent during the wait or before the workflow got there."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from flow_effects import read_log
from flow_procs import Processes, StoreTables, kill_9
from polling import until

SLEEPER = """
    import sys, threading
    import rxnb as rx
    from polling import until
    import flow_jobs
    url, log, leave = sys.argv[1:4]
    store = rx.open(url)
    run = flow_jobs.nap.start(log=log, tag="nap", seconds=3.0)
    until(lambda: run.status == "sleeping", timeout=20)
    print("parked", run.id, flush=True)
    if leave == "exits":
        store.close()
    else:
        threading.Event().wait()  # until kill -9
"""

WAITER = """
    import json, sys
    import rxnb as rx
    import flow_jobs
    url, log, gate = sys.argv[1:4]
    store = rx.open(url)
    run = flow_jobs.approval.start(log=log, tag="ask", gate=gate)
    print("run", run.id, flush=True)
    print("result", json.dumps(run.result(timeout=60)), flush=True)
    store.close()
"""

SENDER = """
    import json, os, sys, time
    import rxnb as rx
    run_id = sys.stdin.readline().strip()  # given once the test is ready
    store = rx.open(sys.argv[1])
    payload = {"ok": True, "by": os.getpid()}
    rx.send_event(run_id, "approval", payload)
    print("sent", time.time(), flush=True)
    store.close()
"""


@pytest.mark.parametrize("leave", ["exits", "killed"])
def test_a_durable_sleep_ends_on_time_in_a_process_opened_after_the_sleeper_left(
    leave: str, url: str, procs: Processes, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    store = StoreTables(url)
    waker = procs.resumer(url)  # importing now; opens the store once the sleeper is gone
    sleeper = procs.python(SLEEPER, url, log, leave)
    run_id = until(lambda: procs.printed(sleeper, "parked"), timeout=30)
    if leave == "exits":
        assert sleeper.wait(20) == 0, procs.output(sleeper)
    else:
        kill_9(sleeper)
    row = store.run(run_id)
    assert row is not None and (row.status, row.owner) == ("sleeping", None)
    (_, sleep, *rest) = store.journal(run_id)
    assert (sleep.kind, rest) == ("sleep", [])
    wake_at = float(sleep.output)
    assert row.due_at == wake_at

    procs.go(waker)
    opened = until(lambda: procs.opened_at(waker), timeout=10)
    assert opened < wake_at - 0.3, "the new process was open well before the wake time"
    until(lambda: store.status(run_id) == "succeeded", timeout=10)

    stamps = {line.step: line for line in read_log(log) if line.kind == "stamp"}
    assert stamps["before"].pid == sleeper.pid
    assert stamps["after"].pid == waker.pid
    late = stamps["after"].at - wake_at
    claimed = store.started_at(run_id) - wake_at
    print(f"[claimed {claimed * 1000:+.1f} ms]", end=" ")
    print(
        f"sleeper {leave}: the step after the sleep started {late * 1000:+.1f} ms from the "
        f"journaled wake time, in a process opened {wake_at - opened:.2f} s before it"
    )
    # Not early; how late is bench/runs.py's R2 (due -> began in another process): a
    # bound here only has to survive a loaded machine (247 ms was seen under load).
    assert -0.1 <= late <= 5
    assert store.run(run_id).result == pytest.approx(stamps["after"].at, abs=1e-5)  # type: ignore[union-attr]


def test_an_event_sent_from_a_process_that_only_opens_the_store_resumes_the_wait(
    url: str, procs: Processes, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    store = StoreTables(url)
    sender = procs.python(SENDER, url, gated=True)
    waiter = procs.python(WAITER, url, log, "")
    run_id = until(lambda: procs.printed(waiter, "run"), timeout=30)
    until(lambda: store.status(run_id) == "waiting", timeout=20)
    entries = store.journal(run_id)
    assert [(e.kind, e.name, e.finished_at) for e in entries][1:] == [("event", "approval", None)]

    procs.go(sender, run_id)
    assert sender.wait(30) == 0, procs.output(sender)
    assert waiter.wait(30) == 0, procs.output(waiter)
    payload = {"ok": True, "by": sender.pid}
    assert json.loads(procs.printed(waiter, "result") or "null") == payload
    row = store.run(run_id)
    assert row is not None and (row.status, row.result) == ("succeeded", payload)
    assert store.events(run_id) == [("approval", payload, True)]
    event = store.journal(run_id)[1]
    assert (event.output, event.error) == (payload, None)
    sent = float(procs.printed(sender, "sent") or 0)
    resumed = next(line for line in read_log(log) if line.step == "resumed")
    assert resumed.pid == waiter.pid
    print(f"event sent -> next step started {(resumed.at - sent) * 1000:.0f} ms later")


def test_an_event_sent_before_the_workflow_waits_for_it_is_kept_for_the_wait(
    url: str, procs: Processes, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    gate = tmp_path / "gate"
    store = StoreTables(url)
    sender = procs.python(SENDER, url, gated=True)
    waiter = procs.python(WAITER, url, log, str(gate))
    run_id = until(lambda: procs.printed(waiter, "run"), timeout=30)
    until(lambda: any(line.kind == "holding" for line in read_log(log)), timeout=20)

    procs.go(sender, run_id)  # while the run is still in the step before the wait
    assert sender.wait(30) == 0, procs.output(sender)
    assert store.status(run_id) == "running"
    assert [e.name for e in store.journal(run_id)] == ["asked"], "not waiting yet"
    payload = {"ok": True, "by": sender.pid}
    assert store.events(run_id) == [("approval", payload, False)]
    gate.touch()

    assert waiter.wait(30) == 0, procs.output(waiter)
    assert json.loads(procs.printed(waiter, "result") or "null") == payload
    assert store.events(run_id) == [("approval", payload, True)]
    assert [(e.name, e.output) for e in store.journal(run_id)][1:3] == [
        ("hold", "held"),
        ("approval", payload),
    ]


SLOW_PARKER = """
    import json, os, sys, time
    import rxnb as rx
    from rxnb.execution import _executor as executor
    import flow_jobs
    from flow_effects import append_line
    url, log, gate = sys.argv[1:4]
    outcome = executor.outcome

    def parks_slowly(action, ctx, args):
        # Widens the gap between the workflow finding no event (one transaction) and
        # the executor recording the run as waiting (the next): as when the write lock
        # is busy with other processes' writes.
        result = outcome(action, ctx, args)
        if result[0] == "parked" and result[1][0] == "waiting":
            append_line(log, f"parking {ctx.run_id} - {os.getpid()} {time.time()}")
            deadline = time.monotonic() + 30
            while not os.path.exists(gate) and time.monotonic() < deadline:
                time.sleep(0.01)
        return result

    executor.outcome = parks_slowly
    store = rx.open(url)
    run = flow_jobs.approval.start(log=log, tag="ask")
    print("run", run.id, flush=True)
    print("result", json.dumps(run.result(timeout=60)), flush=True)
"""


class EventLostError(AssertionError):
    """The run stayed parked with its event unread."""


def test_an_event_sent_while_the_run_is_being_parked_is_not_lost(
    url: str, procs: Processes, tmp_path: Path
) -> None:
    log = str(tmp_path / "effects.log")
    gate = tmp_path / "gate"
    store = StoreTables(url)
    sender = procs.python(SENDER, url, gated=True)
    waiter = procs.python(SLOW_PARKER, url, log, str(gate))
    run_id = until(lambda: procs.printed(waiter, "run"), timeout=30)
    until(lambda: any(line.kind == "parking" for line in read_log(log)), timeout=20)
    assert store.status(run_id) == "running"

    procs.go(sender, run_id)  # between "no event yet" and "parked as waiting"
    assert sender.wait(30) == 0, procs.output(sender)
    gate.touch()
    until(lambda: store.status(run_id) != "running", timeout=10)
    try:  # elsewhere an event resumes a waiting run within ~0.1 s
        until(lambda: store.status(run_id) == "succeeded", timeout=5)
    except AssertionError:
        row = store.run(run_id)
        assert row is not None
        raise EventLostError(
            f"the run is {row.status}, due at {row.due_at}, with events {store.events(run_id)}"
        ) from None

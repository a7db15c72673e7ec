"""Workflows in one process: journaled steps replayed, determinism, durable sleep and
events, bad input, control. Crash recovery across processes: test_workflow_crash.py."""

from __future__ import annotations

import datetime
import json
import threading
from typing import Any

import pytest
from flow_tools import CALLS, counted, journal, named
from polling import until
from sqlmodel import Field, SQLModel, select

import rxnb as rx
from rxnb.execution import executor_for
from rxnb.store import insert_row
from rxnb.workflows import advance_clock

MESSAGES = rx.agents.Message.__table__  # type: ignore[attr-defined]

# -- steps and replay ---------------------------------------------------------------------


@rx.workflow
def three_steps(ctx: rx.WorkflowContext, n: int) -> dict[str, Any]:
    a = ctx.step(counted, "a", n)
    first = ctx.now()
    ctx.sleep(0.2)  # parks the run: the rest runs on a later claim, replaying the above
    b = ctx.step(counted, "b", a * 2)
    return {"a": a, "b": b, "first": first.isoformat(), "again": ctx.now().isoformat()}


def test_steps_run_once_and_replays_return_the_journaled_results(store: rx.Store) -> None:
    run = three_steps.start(n=21)
    result = run.result(timeout=10)
    assert (result["a"], result["b"]) == (21, 42)
    assert CALLS == {"a": 1, "b": 1}  # replayed after the sleep, not run again
    entries = journal(store, run.id)
    assert [(e.seq, e.kind) for e in entries] == [
        (0, "step"),
        (1, "value"),
        (2, "sleep"),
        (3, "step"),
        (4, "value"),
    ]
    recorded = datetime.datetime.fromtimestamp(json.loads(entries[1].output or ""), datetime.UTC)
    assert result["first"] == recorded.isoformat(), "ctx.now() is the same on replay"
    assert run.run().attempt == 2  # claimed twice: before and after the sleep


@rx.workflow
def saves_as_its_result(ctx: rx.WorkflowContext, fail: bool) -> Any:
    def save() -> dict[str, int]:
        def body(db: rx.Writer) -> None:
            insert_row(db, MESSAGES, {"thread_id": ctx.run_id or "", "role": "user", "text": "s"})
            ctx.end_step(db, {"saved": 1})  # journaled with this write
            if fail:
                raise ValueError("the write is rolled back, its journal entry with it")

        CALLS["save"] += 1
        ctx.store.database.write(body)
        return {"saved": 1}

    saved = ctx.step(save, name="save")
    ctx.sleep(0.05)  # parks: the rest runs on a later claim, replaying `save`
    return [saved, ctx.step(counted, "after")]


@pytest.mark.parametrize("fail", [False, True])
def test_a_step_journaled_by_its_last_write_is_journaled_once(store: rx.Store, fail: bool) -> None:
    commits: list[set[str]] = []
    store.database.add_commit_listener(lambda writes: commits.append({w.table for w in writes}))
    run = saves_as_its_result.start(fail=fail)
    assert run.wait(10) == ("failed" if fail else "succeeded")
    entries = journal(store, run.id)
    assert CALLS["save"] == 1, "replayed after the sleep, not run again"
    stored = store.database.read(
        lambda db: db.exec(
            select(rx.agents.Message).where(rx.agents.Message.thread_id == run.id)
        ).all()
    )[0]
    if fail:
        (entry,) = entries
        assert (entry.seq, entry.output) == (0, None)
        assert (entry.error or "").startswith(
            "ValueError: the write is rolled back, its journal entry with it"
        )
        assert stored == []
        return
    assert [(e.seq, e.kind) for e in entries] == [(0, "step"), (1, "sleep"), (2, "step")]
    assert (entries[0].output, entries[2].output) == ('{"saved": 1}', '"after"')
    assert len(stored) == 1
    assert {"rx_messages", "rx_journal"} in commits, "the row and the entry commit together"
    assert run.result(timeout=1) == [{"saved": 1}, "after"]


def test_a_sleeping_run_holds_no_thread(store: rx.Store) -> None:
    @rx.workflow
    @named("month_sleeper")
    def month_sleeper(ctx: rx.WorkflowContext) -> str:
        ctx.step(counted, "before")
        ctx.sleep(datetime.timedelta(days=30))
        return str(ctx.step(counted, "after"))

    run = month_sleeper.start()
    until(lambda: run.status == "sleeping")
    executor = executor_for(store)
    # Its thread is given back right after the parked status commits.
    until(lambda: not executor._running, timeout=5)  # a parked run holds no thread
    wake = json.loads(journal(store, run.id)[1].output or "")
    assert wake - run.run().created_at == pytest.approx(30 * 86400, abs=5)
    try:
        advance_clock(30 * 86400 + 1)  # a fake clock: the month passes now
        assert run.result(timeout=10) == "after"
    finally:
        advance_clock(-(30 * 86400 + 1))
    assert CALLS == {"before": 1, "after": 1}


# -- determinism ----------------------------------------------------------------------------


def test_reordered_steps_raise_a_non_determinism_error_that_says_what_to_do(
    store: rx.Store,
) -> None:
    @rx.workflow
    @named("reordered")
    def v1(ctx: rx.WorkflowContext) -> str:
        ctx.step(counted, "fetch", name="fetch")
        ctx.wait_for_event("go")
        return str(ctx.step(counted, "write", name="write"))

    run = v1.start()
    until(lambda: run.status == "waiting")

    @rx.workflow
    @named("reordered")
    def v2(ctx: rx.WorkflowContext) -> str:  # the cell ran again with the steps swapped
        ctx.step(counted, "write", name="write")
        ctx.wait_for_event("go")
        return str(ctx.step(counted, "fetch", name="fetch"))

    rx.send_event(run.id, "go")
    with pytest.raises(rx.RunFailedError) as failed:
        run.result(timeout=10)
    message = str(failed.value)
    assert "NonDeterminismError" in message
    assert "step 0 is journaled as step `fetch`" in message
    assert "now reaches step `write`" in message
    assert f"rx.restart('{run.id}', from_step=0)" in message
    assert CALLS == {"fetch": 1}, "nothing ran past the divergence"
    assert len(journal(store, run.id)) == 2, "the journal is intact"


def test_patched_lets_new_code_run_for_new_runs_and_old_runs_continue(store: rx.Store) -> None:
    @rx.workflow
    @named("evolving")
    def old(ctx: rx.WorkflowContext) -> list[Any]:
        a = ctx.step(counted, "a", name="a")
        ctx.wait_for_event("go")
        return [a, ctx.step(counted, "b", name="b")]

    in_flight = old.start()
    until(lambda: in_flight.status == "waiting")

    @rx.workflow
    @named("evolving")
    def new(ctx: rx.WorkflowContext) -> list[Any]:
        a = ctx.step(counted, "a", name="a")
        if ctx.patched("add-check"):  # new code inside what old runs have journaled
            ctx.step(counted, "check", name="check")
        ctx.wait_for_event("go")
        return [a, ctx.step(counted, "b", name="b")]

    rx.send_event(in_flight.id, "go")
    assert in_flight.result(timeout=10) == ["a", "b"]
    assert CALLS["check"] == 0, "the old run replays past the patch without it"
    fresh = new.start()
    until(lambda: fresh.status == "waiting")
    rx.send_event(fresh.id, "go")
    assert fresh.result(timeout=10) == ["a", "b"]
    assert CALLS["check"] == 1, "a new run takes the patched code"


# -- bad input ------------------------------------------------------------------------------


def test_a_step_returning_something_unserializable_fails_the_run_at_that_step(
    store: rx.Store,
) -> None:
    @rx.workflow
    @named("unserializable")
    def bad(ctx: rx.WorkflowContext) -> None:
        ctx.step(counted, "fine")
        ctx.step(threading.Lock, name="lock")
        ctx.step(counted, "never")

    run = bad.start()
    with pytest.raises(rx.RunFailedError) as failed:
        run.result(timeout=10)
    message = str(failed.value)
    assert "step 1 `lock` returned lock, which cannot be journaled" in message
    assert "return JSON values" in message
    assert [e.name for e in journal(store, run.id)] == ["counted"], "journal intact"
    assert CALLS == {"fine": 1}


def test_bad_arguments_to_send_event_and_restart_say_what_is_wrong(store: rx.Store) -> None:
    with pytest.raises(rx.RunNotFoundError, match="no run has id 'nope'"):
        rx.send_event("nope", "approval")
    run = three_steps.start(n=1)
    run.result(timeout=10)
    with pytest.raises(rx.RunError, match="has succeeded: no one will wait for event"):
        rx.send_event(run.id, "approval", {"ok": True})
    waiting = approval.start()
    until(lambda: waiting.status == "waiting")
    with pytest.raises(rx.ArgumentError, match="the payload must be JSON"):
        rx.send_event(waiting.id, "approval", object())
    rx.cancel(waiting.id)
    with pytest.raises(rx.WorkflowError, match="from_step must be a step number"):
        rx.restart(run.id, from_step=-1)


# -- events ----------------------------------------------------------------------------------


@rx.workflow
def approval(ctx: rx.WorkflowContext, wait: float | None = None, nap: float = 0.0) -> Any:
    if nap:
        ctx.sleep(nap)
    return ctx.wait_for_event("approval", timeout=wait)


def test_an_event_resumes_the_waiting_run_with_its_payload(store: rx.Store) -> None:
    run = approval.start()
    until(lambda: run.status == "waiting")
    rx.send_event(run.id, "approval", {"ok": True, "by": "ana"})
    assert run.result(timeout=10) == {"ok": True, "by": "ana"}


def test_an_event_sent_before_the_wait_is_kept_for_it(store: rx.Store) -> None:
    run = approval.start(nap=0.3)
    until(lambda: run.status == "sleeping")
    rx.send_event(run.id, "approval", "early")
    assert run.result(timeout=10) == "early"


def test_a_wait_times_out_with_none(store: rx.Store) -> None:
    run = approval.start(wait=0.3)
    assert run.result(timeout=10) is None
    (entry,) = journal(store, run.id)
    assert (entry.kind, entry.error) == ("event", "timed out")


# -- control ---------------------------------------------------------------------------------


def test_cancel_stops_a_sleeping_run_at_once(store: rx.Store) -> None:
    run = approval.start(nap=3600)
    until(lambda: run.status == "sleeping")
    assert rx.cancel(run.id) == "cancelled"
    with pytest.raises(rx.RunCancelledError):
        run.result(timeout=5)


def test_restart_from_a_step_replays_the_steps_before_it(store: rx.Store) -> None:
    run = three_steps.start(n=5)
    run.result(timeout=10)
    assert rx.restart(run.id, from_step=3) == "queued"
    assert run.result(timeout=10)["b"] == 10
    assert CALLS == {"a": 1, "b": 2}, "step 0 was replayed, step 3 ran again"


# -- retries, parallel steps, children, mutations ------------------------------------------


def flaky(key: str, failures: int) -> str:
    CALLS[key] += 1
    if CALLS[key] <= failures:
        raise ConnectionError(f"attempt {CALLS[key]} failed")
    return "ok"


def test_a_step_is_retried_and_its_attempts_journaled(store: rx.Store) -> None:
    @rx.workflow
    @named("retrying")
    def retrying(ctx: rx.WorkflowContext) -> Any:
        ok = ctx.step(flaky, "x", 2, retries=2, backoff=0.01)
        try:
            ctx.step(flaky, "y", 5, retries=1, backoff=0.01)
        except rx.StepError as exc:
            return [ok, str(exc)]
        return [ok, None]

    run = retrying.start()
    ok, error = run.result(timeout=10)
    assert ok == "ok" and "ConnectionError: attempt 2 failed" in error
    entries = journal(store, run.id)
    assert [e.attempts for e in entries] == [3, 2]
    assert entries[0].error is None
    assert entries[1].error is not None
    assert entries[1].error.startswith("ConnectionError: attempt 2 failed (at test_workflow_basics")
    assert entries[1].traceback is not None and "Traceback" in entries[1].traceback


def test_parallel_steps_run_at_once_and_are_journaled_each(store: rx.Store) -> None:
    barrier = threading.Barrier(3, timeout=5)

    def meet(name: str) -> str:
        barrier.wait()  # all three are running at the same time, or this times out
        return counted(name)

    @rx.workflow
    @named("fan_out")
    def fan_out(ctx: rx.WorkflowContext) -> list[Any]:
        return ctx.parallel([(meet, "x"), (meet, "y"), (meet, "z")])

    run = fan_out.start()
    assert run.result(timeout=10) == ["x", "y", "z"]
    assert [e.seq for e in journal(store, run.id)] == [0, 1, 2]


@rx.workflow
def child_flow(ctx: rx.WorkflowContext, n: int) -> int:
    if n < 0:
        raise ValueError("negative")
    return int(ctx.step(counted, "child", n * 10))


def test_a_child_workflow_returns_its_result_to_the_parked_parent(store: rx.Store) -> None:
    @rx.workflow
    @named("parent_flow")
    def parent(ctx: rx.WorkflowContext) -> list[Any]:
        got = ctx.child(child_flow, n=4)
        try:
            ctx.child(child_flow, n=-1)
        except rx.StepError as exc:
            return [got, str(exc)]
        return [got, None]

    run = parent.start()
    got, error = run.result(timeout=15)
    assert got == 40
    assert "failed" in error and "negative" in error
    assert [e.kind for e in journal(store, run.id)] == ["child", "child"]


class Ledger(SQLModel, table=True):
    __tablename__ = "t_wf_ledger"
    id: int | None = Field(default=None, primary_key=True)
    amount: int


@rx.mutation
def pay(db: rx.Writer, amount: int) -> int:
    if amount < 0:
        raise ValueError("a payment is positive")
    db.add(Ledger(amount=amount))
    return amount


@rx.query
def paid(db: rx.Reader) -> int:
    return sum(row.amount for row in db.exec(select(Ledger)).all())


def test_a_journaled_mutation_commits_with_its_journal_entry(store: rx.Store) -> None:
    @rx.workflow
    @named("paying")
    def paying(ctx: rx.WorkflowContext) -> Any:
        ctx.mutation(pay, amount=5)
        ctx.sleep(0.1)  # replayed after: the payment is not made twice
        ctx.query(paid)
        ctx.mutation(pay, amount=-1)

    run = paying.start()
    with pytest.raises(rx.RunFailedError, match="a payment is positive"):
        run.result(timeout=10)
    assert paid() == 5
    kinds = [(e.kind, e.output) for e in journal(store, run.id)]
    assert kinds == [("mutation", "5"), ("sleep", kinds[1][1]), ("query", "5")]

"""One process: starting runs, results, progress, keys, argument checks, schedule-in-mutation."""

from __future__ import annotations

import datetime
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import run_jobs
import sqlalchemy as sa
from polling import until
from run_jobs import add, describe, gated, record, run_status, runs_of, schedule_record

import rxnb as rx
from rxnb.execution import executor_for


def count_runs(store: rx.Store, function: rx.Action) -> int:
    return len(store.call(runs_of, function=function.name))


def test_start_returns_at_once_and_result_arrives(store: rx.Store) -> None:
    handle = add.start(a=2, b=3)
    assert isinstance(handle, rx.RunHandle)
    assert handle.result(timeout=10) == 5
    row = handle.run()
    assert (row.status, row.attempt, row.max_attempts) == ("succeeded", 1, 1)
    assert row.function == "run_jobs.add"
    assert json.loads(row.args) == {"a": 2, "b": 3}
    assert row.due_at <= row.started_at <= row.finished_at  # type: ignore[operator]
    assert handle.status == "succeeded"
    assert handle.wait(1) == "succeeded"


def test_a_claim_that_sees_the_whole_queue_is_not_followed_by_another(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One run started on an idle executor costs one claim and no look at the queue:
    this process queued it due, so the scheduler claims at once; a claim that found
    fewer due runs than free slots saw every due run, so neither claiming again at
    once nor the run's end looks (nothing was written since)."""
    from rxnb.execution import _executor

    claims: list[int] = []
    looks: list[bool] = []
    real, real_look = _executor.claim, _executor.due_exists

    def counted(*args: Any, **kwargs: Any) -> Any:
        found, more = real(*args, **kwargs)
        claims.append(len(found))
        return found, more

    def look(*args: Any) -> bool:
        looks.append(real_look(*args))
        return looks[-1]

    monkeypatch.setattr(_executor, "claim", counted)
    monkeypatch.setattr(_executor, "due_exists", look)
    executor = executor_for(store)
    # A first run registers `add`: that wakes the scheduler too, and its look may race
    # the insert (finding the run before the insert's notification clears what it saw).
    assert add.start(a=0, b=0).result(timeout=10) == 0
    assert executor.wait_idle(10)
    until(lambda: not executor._wake.is_set())
    claims.clear(), looks.clear()
    assert add.start(a=1, b=2).result(timeout=10) == 3
    assert executor.wait_idle(10)
    until(lambda: not executor._wake.is_set())  # the scheduler took the end's wake-up
    assert claims == [1]
    assert looks == [], "queued here and due: claimed at once; its end looked not"
    many = [add.start(a=i, b=0) for i in range(12)]  # more than the pool's 8 threads
    assert [h.result(timeout=10) for h in many] == list(range(12))
    assert sum(claims) == 13, "every queued run was still claimed"


def test_the_next_due_time_is_read_again_only_when_it_may_have_changed(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Runs queued here due now are claimed without reading when the next run is due
    (it stays what it was); a run queued for later is read, and starts on time."""
    from rxnb.execution import _executor

    reads: list[float | None] = []
    real = _executor.next_due

    def counted(*args: Any) -> float | None:
        reads.append(real(*args))
        return reads[-1]

    monkeypatch.setattr(_executor, "next_due", counted)
    executor = executor_for(store)
    assert add.start(a=0, b=0).result(timeout=10) == 0  # registers `add`
    assert executor.wait_idle(10)
    until(lambda: not executor._wake.is_set())
    reads.clear()
    assert [add.start(a=i, b=1).result(timeout=10) for i in range(3)] == [1, 2, 3]
    assert executor.wait_idle(10)
    until(lambda: not executor._wake.is_set())
    assert reads == [], "due now and queued here: the next due time was not read"
    when = datetime.datetime.now() + datetime.timedelta(seconds=0.6)
    later = rx.run_at(when, add, a=20, b=22)
    until(lambda: any(r is not None for r in reads), timeout=10)  # read again, and found
    assert later.status == "queued"
    assert later.result(timeout=10) == 42
    started = later.run().started_at
    assert started is not None and started >= when.timestamp() - 0.05


def test_following_a_run_reads_its_row_once_however_often_it_changes(store: rx.Store) -> None:
    """What `RunHandle.wait` follows: each write of the run's row carries its new state,
    so a run writing its row often (usage, progress) costs its followers no read."""
    from rxnb.execution._handles import RunState
    from rxnb.execution._model import Run

    handle = gated.start(name="followed")
    until(lambda: handle.status == "running")
    states: list[dict[str, Any] | None] = []
    sub = store.subscribe(RunState(handle.id), {"run_id": handle.id}, states.append)

    def step(db: rx.Writer, n: int) -> None:
        run = db.get(Run, handle.id)
        assert run is not None
        run.progress = json.dumps({"done": n, "total": 20, "message": "writing"})

    try:
        for n in range(20):
            store.database.write(lambda db, n=n: step(db, n))
        run_jobs.gate("followed").set()
        assert handle.wait(10) == "succeeded"
        until(lambda: states[-1:] == [{"status": "succeeded", "attempt": 1}])
        assert sub.runs == 1, "read once, when subscribed; every change after was patched"
    finally:
        sub.close()


def test_progress_is_recorded_on_the_run(store: rx.Store) -> None:
    handle = add.start(a=40, b=2)
    handle.wait(10)
    progress = json.loads(handle.run().progress or "null")
    assert (progress["done"], progress["total"], progress["message"]) == (2, 2, "40 + 2")


def test_inline_call_runs_in_the_caller_and_records_no_run(store: rx.Store) -> None:
    assert add(a=1, b=2) == 3
    assert add(1, 2) == 3
    assert describe(when=datetime.datetime(2030, 1, 1), n=1)["run_id"] is None
    assert count_runs(store, add) == 0
    assert count_runs(store, describe) == 0


def test_arguments_reach_the_action_with_their_types(store: rx.Store) -> None:
    """The run's JSON arguments are validated again, so a datetime arrives as datetime."""
    when = datetime.datetime(2030, 1, 2, 3, 4, 5)
    inline = describe(when=when, n=7)
    background = describe.start(when=when, n=7).result(timeout=10)
    assert background["when"] == inline["when"] == "datetime"
    assert background["n"] == inline["n"] == "int"


def test_key_returns_the_unfinished_run_then_a_new_one(store: rx.Store) -> None:
    first = gated.start(name="k1", key="job-1")
    again = gated.start(name="k1", key="job-1")
    assert again.id == first.id
    until(lambda: first.status == "running")
    assert gated.start(name="k1", key="job-1").id == first.id  # running is unfinished too
    other = gated.start(name="k2", key="job-2")
    assert other.id != first.id
    run_jobs.gate("k1").set()
    run_jobs.gate("k2").set()
    assert first.result(timeout=10) == "k1 done"
    later = gated.start(name="k1", key="job-1")
    assert later.id != first.id
    assert later.result(timeout=10) == "k1 done"
    assert count_runs(store, gated) == 3


@pytest.mark.parametrize(
    ("args", "fragment"),
    [
        ({"a": "two", "b": 3}, "argument `a` got 'two'"),
        ({"a": 2}, "missing a required argument: 'b'"),
        ({"a": 2, "b": 3, "c": 4}, "unexpected keyword argument 'c'"),
    ],
)
def test_wrong_arguments_fail_before_any_run_exists(
    store: rx.Store, args: dict[str, object], fragment: str
) -> None:
    for start in (add.start, lambda **a: rx.run_after(60, add, **a)):
        with pytest.raises(rx.ArgumentError) as info:
            start(**args)
        assert fragment in str(info.value)
    assert count_runs(store, add) == 0


def test_non_json_argument_fails_clearly_before_any_run_exists(store: rx.Store) -> None:
    class Opaque:
        pass

    with pytest.raises(rx.FunctionError) as info:
        run_jobs.take_anything.start(value=Opaque())
    message = str(info.value)
    assert "run_jobs.take_anything" in message and "Opaque" in message
    assert count_runs(store, run_jobs.take_anything) == 0


def test_run_of_unknown_id_is_not_found(store: rx.Store) -> None:
    with pytest.raises(rx.RunNotFoundError):
        rx.cancel("no-such-run")
    with pytest.raises(rx.RunNotFoundError):
        rx.RunHandle("no-such-run", store).run()


# -- semantics 5: scheduling from a mutation is atomic with it ------------------------------


def test_mutation_that_raises_after_scheduling_leaves_no_run(
    store: rx.Store, tmp_path: Path
) -> None:
    path = str(tmp_path / "effects")
    with pytest.raises(ValueError, match="failed after scheduling"):
        schedule_record(path=path, then_fail=True)
    assert count_runs(store, record) == 0
    # A committed one runs; once it has, the rolled-back one has certainly not.
    run_id = schedule_record(path=path, then_fail=False)
    assert rx.RunHandle(run_id, store).result(timeout=10) > 0
    assert [line.split()[0] for line in run_jobs.read_lines(path)] == [run_id]
    assert count_runs(store, record) == 1


def test_schedule_checks_arguments_inside_the_mutation(store: rx.Store) -> None:
    @rx.mutation
    def schedule_badly(db: rx.Writer) -> str:
        return db.schedule(add, a="x", b=1)

    with pytest.raises(rx.ArgumentError):
        schedule_badly()
    assert count_runs(store, add) == 0


# -- status subscription -------------------------------------------------------------------


def test_a_subscriber_sees_the_run_through_to_its_end(store: rx.Store) -> None:
    seen: list[str | None] = []
    done = threading.Event()

    def on_status(status: str | None) -> None:
        seen.append(status)
        if status == "succeeded":
            done.set()

    handle = gated.start(name="sub")
    sub = store.subscribe(run_status, {"run_id": handle.id}, on_status)
    until(lambda: "running" in seen)
    run_jobs.gate("sub").set()
    assert done.wait(10), seen
    sub.close()
    assert seen[-1] == "succeeded"


def test_a_run_whose_arguments_are_not_a_json_object_fails_alone(store: rx.Store) -> None:
    """Rows written by another program may be malformed; the queue keeps moving."""
    now = time.time()
    bad = {"not-json": "{a: 1", "a-list": "[1, 2]"}

    def write(db: rx.Writer) -> None:
        for run_id, args in bad.items():
            db.add(rx.Run(id=run_id, function=add.name, args=args, due_at=now - 1, created_at=now))

    store.database.write(write)
    assert add.start(a=1, b=1).result(timeout=10) == 2
    for run_id in bad:
        row = rx.RunHandle(run_id, store).run()
        assert row.status == "failed"
        assert row.error is not None and "arguments are not a JSON object" in row.error


def test_an_action_without_a_context_parameter_is_refused_clearly() -> None:
    with pytest.raises(rx.FunctionError, match=r"def no_context\(ctx: rx\.ActionContext"):

        @rx.action
        def no_context() -> None: ...


def test_a_cancel_written_behind_rxnbs_back_still_reaches_its_run(store: rx.Store) -> None:
    # No change-log entry says the flag changed (plain SQL, as an admin script might
    # write it): the scheduler's look at its runs' flags every CONTROLS_EVERY seconds
    # delivers it, as it does a cancel that lands between a run's claim and its start.
    handle = gated.start(name="behind")
    until(lambda: run_status(run_id=handle.id) == "running", timeout=10)
    with store.database.engines()[1].begin() as conn:
        conn.execute(
            sa.text("UPDATE rx_runs SET cancel_requested = :yes WHERE id = :id"),
            {"yes": True, "id": handle.id},
        )
    until(lambda: "behind" in run_jobs.NOTICED, timeout=5)
    run_jobs.gate("behind").set()
    handle.wait(timeout=10)

"""`rx.fork`: a new run that replays another's journal up to a step and runs on from
there with the current code; the source untouched, the parent recorded."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flow_effects import read_log
from flow_procs import Processes, StoreTables
from flow_tools import CALLS, counted, journal
from polling import until
from sqlmodel import select

import rxnb as rx

RUN_AND_FORK = """
    import json, sys
    import rxnb as rx
    import fork_jobs
    url, log, mode, given = sys.argv[1:5]
    store = rx.open(url)
    if mode == "run":
        run = fork_jobs.five_steps.start(log=log, tag="source")
    else:
        run = rx.fork(given, from_step=2, tag="fork")
    print("result", run.id, json.dumps(run.result(timeout=60)), flush=True)
    store.close()
"""


def test_a_fork_from_the_third_step_runs_only_the_steps_after_it_once(
    url: str, procs: Processes, tmp_path: Path
) -> None:
    """The issue's must-show: a five-step workflow forked from its third step (step 2,
    numbered from 0) in another process, whose step 3 code changed."""
    log = str(tmp_path / "effects.log")
    source = procs.python(RUN_AND_FORK, url, log, "run", "")
    assert source.wait(90) == 0, procs.output(source)
    source_id, source_result = procs.printed(source, "result").split(" ", 1)  # type: ignore[union-attr]
    assert json.loads(source_result) == ["s1", "s2", "s3:v1", "s4", "s5"]
    procs.env["RXNB_FORK_VARIANT"] = "v2"  # the changed code of step 3
    forker = procs.python(RUN_AND_FORK, url, log, "fork", source_id)
    assert forker.wait(90) == 0, procs.output(forker)
    fork_id, fork_result = procs.printed(forker, "result").split(" ", 1)  # type: ignore[union-attr]
    assert json.loads(fork_result) == ["s1", "s2", "s3:v2", "s4", "s5"]

    effects = [(line.tag, line.step, line.pid) for line in read_log(log)]
    assert [(tag, step) for tag, step, _ in effects] == [
        *[("source", f"s{n}") for n in range(1, 6)],
        *[("fork", f"s{n}") for n in range(3, 6)],  # s1, s2 replayed; s3-s5 ran once
    ]
    assert {pid for tag, _, pid in effects if tag == "fork"} == {forker.pid}

    tables = StoreTables(url)
    fork_row, source_row = tables.run(fork_id), tables.run(source_id)
    assert fork_row is not None and source_row is not None
    assert (fork_row.status, source_row.status) == ("succeeded", "succeeded")
    assert fork_row.args == {"log": log, "tag": "fork"}  # the source's, `tag` replaced
    source_journal = tables.journal(source_id)
    fork_journal = tables.journal(fork_id)
    assert [e.seq for e in source_journal] == [0, 1, 2, 3, 4]
    assert source_journal[2].output == "s3:v1"  # the source is untouched
    assert [(e.seq, e.name, e.output) for e in fork_journal][:2] == [
        (e.seq, e.name, e.output) for e in source_journal[:2]
    ]
    assert fork_journal[2].output == "s3:v2"

    store = rx.open(url)  # only reads: this process defines no fork_jobs workflow
    try:
        assert store.database.read(lambda db: db.get(rx.Run, fork_id).forked_from)[0] == source_id
        rows = rx.widgets.compare_rows(a=source_id, b=fork_id)
        marks = {row["step"]: row["diff"] for row in rows}
        assert marks == {
            0: "same",
            1: "same",
            2: "changed",
            3: "same",
            4: "same",
            "result": "changed",
        }
    finally:
        store.close()


@rx.workflow
def child_job(ctx: rx.WorkflowContext, x: int) -> int:
    return int(ctx.step(counted, "child", x * 10))


@rx.workflow
def every_kind(ctx: rx.WorkflowContext, word: str) -> dict[str, Any]:
    first = ctx.step(counted, "first", word)
    ctx.sleep(0.01)
    approval = ctx.wait_for_event("approval")
    made = ctx.child(child_job, x=4)
    stamp = ctx.uuid()
    last = ctx.step(counted, "last", word.upper())
    return {"first": first, "approval": approval, "child": made, "uuid": stamp, "last": last}


def child_runs(store: rx.Store) -> int:
    return len(
        store.database.read(
            lambda db: db.exec(select(rx.Run).where(rx.Run.function == child_job.name)).all()
        )[0]
    )


def test_a_fork_copies_sleeps_events_children_and_values_as_they_ended(store: rx.Store) -> None:
    run = every_kind.start(word="one")
    until(lambda: run.status == "waiting")
    rx.send_event(run.id, "approval", {"ok": True})
    source = run.result(timeout=20)
    assert CALLS == {"first": 1, "child": 1, "last": 1}
    children = child_runs(store)

    fork = rx.fork(run.id, from_step=5, word="two")  # everything but the last step
    result = fork.result(timeout=20)
    # No new event waited for, no child started again, the recorded uuid kept: only
    # the last step ran, with the fork's argument.
    assert result == {**source, "last": "TWO"}
    assert CALLS == {"first": 1, "child": 1, "last": 2}
    assert child_runs(store) == children
    parent = [(e.seq, e.kind, e.output) for e in journal(store, run.id)]
    assert [(e.seq, e.kind, e.output) for e in journal(store, fork.id)][:5] == parent[:5]
    assert parent[5][2] == '"ONE"'  # the source's journal is untouched
    assert fork.run().forked_from == run.id


GATE = threading.Event()


def gated(name: str) -> str:
    GATE.wait(20)
    return counted(name)


@rx.workflow
def slow_third(ctx: rx.WorkflowContext) -> list[str]:
    return [ctx.step(counted, "a"), ctx.step(counted, "b"), ctx.step(gated, "c")]


def test_a_running_run_is_forked_from_its_journal_as_it_stands(store: rx.Store) -> None:
    GATE.clear()
    run = slow_third.start()
    until(lambda: len(journal(store, run.id)) == 2)
    with pytest.raises(rx.WorkflowError, match=r"beyond the journal .* fork from_step <= 2"):
        rx.fork(run.id, from_step=3)
    fork = rx.fork(run.id, from_step=2)
    GATE.set()
    assert fork.result(timeout=20) == ["a", "b", "c"]
    assert run.result(timeout=20) == ["a", "b", "c"]
    assert CALLS == {"a": 1, "b": 1, "c": 2}


@rx.workflow
def asks(ctx: rx.WorkflowContext) -> Any:
    ctx.step(counted, "asked")
    return ctx.wait_for_event("go")


def test_a_wait_still_going_is_not_copied_but_can_be_forked_before(store: rx.Store) -> None:
    run = asks.start()
    until(lambda: run.status == "waiting")
    with pytest.raises(rx.WorkflowError, match=r"step 1 of run \w+ \(event `go`\) has not ended"):
        rx.fork(run.id, from_step=2)
    fork = rx.fork(run.id, from_step=1)  # waits for an event of its own
    until(lambda: fork.status == "waiting")
    rx.send_event(fork.id, "go", "fork's")
    assert fork.result(timeout=20) == "fork's"
    assert run.status == "waiting"  # the source still waits for its event
    assert CALLS == {"asked": 1}
    rx.cancel(run.id)


@rx.action
def plain(ctx: rx.ActionContext) -> int:
    return 1


@dataclass(frozen=True)
class Refusal:
    fork: Callable[[str], Any]
    error: type[Exception]
    match: str


REFUSALS = [
    Refusal(lambda rid: rx.fork("nope"), rx.RunNotFoundError, r"no run has id 'nope'; pass"),
    Refusal(
        lambda rid: rx.fork(rid, from_step=9),
        rx.WorkflowError,
        r"which has steps 0-1; fork from_step <= 2",
    ),
    Refusal(lambda rid: rx.fork(rid, from_step=-1), rx.WorkflowError, r"a whole number >= 0"),
    Refusal(lambda rid: rx.fork(rid, from_step="1"), rx.WorkflowError, r"a whole number >= 0"),
    Refusal(
        lambda rid: rx.fork(rid, word=3), rx.ArgumentError, r"the fork's arguments .* `word` got 3"
    ),
    Refusal(
        lambda rid: rx.fork(rid, nope=1), rx.ArgumentError, r"unexpected keyword argument 'nope'"
    ),
]


@rx.workflow
def two_steps(ctx: rx.WorkflowContext, word: str) -> str:
    return str(ctx.step(counted, "x", word)) + str(ctx.step(counted, "y", word))


@pytest.mark.parametrize("case", REFUSALS, ids=lambda c: c.match[:30])
def test_a_fork_that_cannot_be_made_says_why_and_writes_nothing(
    store: rx.Store, case: Refusal
) -> None:
    run = two_steps.start(word="w")
    run.result(timeout=20)
    before = store.database.read(lambda db: len(db.exec(select(rx.Run)).all()))[0]
    with pytest.raises(case.error, match=case.match) as caught:
        case.fork(run.id)
    assert "\n" not in str(caught.value)
    after = store.database.read(lambda db: len(db.exec(select(rx.Run)).all()))[0]
    assert after == before


def test_an_action_run_is_not_forked(store: rx.Store) -> None:
    run = plain.start()
    run.result(timeout=20)
    with pytest.raises(rx.RunError, match=r"not of a workflow: it has no journal to fork"):
        rx.fork(run.id)


def test_a_fork_of_a_fork_records_its_parent_and_the_timeline_mutation_forks(
    store: rx.Store,
) -> None:
    run = two_steps.start(word="w")
    run.result(timeout=20)
    first = rx.fork(run.id, from_step=1, word="v")
    assert first.result(timeout=20) == "wv"
    second_id = store.call(rx.workflows.fork_step, run_id=first.id, from_step=2)
    second = rx.RunHandle(second_id, store)
    assert second.result(timeout=20) == "wv"
    assert (first.run().forked_from, second.run().forked_from) == (run.id, first.id)
    assert CALLS == {"x": 1, "y": 2}

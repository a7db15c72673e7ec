"""Workflows used the way a new user does: wrong arguments, swallowed errors, restarts
and cancels of parents with children, and what the timeline shows of them."""

from __future__ import annotations

import datetime
import math
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from flow_tools import CALLS, counted, journal, named
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.widgets._timeline import timeline_rows


def children_of(store: rx.Store, parent: str) -> list[rx.Run]:
    return store.database.read(
        lambda db: list(
            db.exec(select(rx.Run).where(rx.Run.function == kid.name, rx.Run.id != parent)).all()
        )
    )[0]


# -- wrong arguments: an ArgumentError naming the value, nothing journaled ---------------------


@dataclass(frozen=True)
class Misuse:
    call: str
    do: Callable[[Any], Any]  # given the context: Any, so that wrong calls type-check
    message: str


def _not_called(url: str) -> str:
    return url


@rx.query
def _a_query(db: rx.Reader) -> int:
    return 1


MISUSES = [
    Misuse(
        "ctx.sleep(math.nan)",
        lambda ctx: ctx.sleep(math.nan),
        "ctx.sleep(nan): the duration is NaN",
    ),
    Misuse(
        "ctx.sleep(math.inf)",
        lambda ctx: ctx.sleep(math.inf),
        "the duration is infinite; to wait until something happens",
    ),
    Misuse(
        "ctx.sleep('5m')",
        lambda ctx: ctx.sleep("5m"),
        "give a datetime.timedelta or a number of seconds, not str",
    ),
    Misuse("ctx.sleep(None)", lambda ctx: ctx.sleep(None), "not NoneType"),
    Misuse(
        "ctx.sleep_until(datetime.date(2030, 1, 1))",
        lambda ctx: ctx.sleep_until(datetime.date(2030, 1, 1)),
        "give a datetime.datetime, not date",
    ),
    Misuse(
        "ctx.wait_for_event('go', timeout=math.nan)",
        lambda ctx: ctx.wait_for_event("go", timeout=math.nan),
        "timeout=nan): the duration is NaN",
    ),
    Misuse(
        "ctx.wait_for_event('go', timeout='1')",
        lambda ctx: ctx.wait_for_event("go", timeout="1"),
        "not str ('1')",
    ),
    Misuse(
        "ctx.wait_for_event(5)",
        lambda ctx: ctx.wait_for_event(5),
        "the name must be a non-empty str, not 5",
    ),
    Misuse(
        "ctx.step(_not_called('u'))",
        lambda ctx: ctx.step(_not_called("u")),
        "Was the function called already",
    ),
    Misuse(
        "ctx.step(_not_called, 'u', retries=-1)",
        lambda ctx: ctx.step(_not_called, "u", retries=-1),
        "retries must be a whole number >= 0",
    ),
    Misuse(
        "ctx.step(_not_called, 'u', backoff=math.nan)",
        lambda ctx: ctx.step(_not_called, "u", backoff=math.nan),
        "backoff must be a finite number",
    ),
    Misuse(
        "ctx.parallel([(), (_not_called, 'u')])",
        lambda ctx: ctx.parallel([(), (_not_called, "u")]),
        "ctx.parallel takes a function",
    ),
    Misuse(
        "ctx.query(_not_called, 'u')",
        lambda ctx: ctx.query(_not_called, "u"),
        "ctx.query takes a function declared with @rx.query",
    ),
    Misuse(
        "ctx.mutation(_a_query)",
        lambda ctx: ctx.mutation(_a_query),
        "ctx.mutation takes a function declared with @rx.mutation",
    ),
    Misuse(
        "ctx.child(_not_called, url='u')",
        lambda ctx: ctx.child(_not_called, url="u"),
        "ctx.child takes a function declared with @rx",
    ),
]


@rx.workflow
def misusing(ctx: rx.WorkflowContext, case: int) -> str:
    ctx.step(counted, "before")
    MISUSES[case].do(ctx)
    return "went on"


@pytest.mark.parametrize("case", MISUSES, ids=[m.call for m in MISUSES])
def test_a_wrong_argument_fails_the_run_with_an_argument_error_and_journals_nothing(
    store: rx.Store, case: Misuse
) -> None:
    run = misusing.start(case=MISUSES.index(case))
    with pytest.raises(rx.RunFailedError) as failed:
        run.result(timeout=10)
    assert "ArgumentError" in str(failed.value)
    assert case.message in str(failed.value)
    where = f"(at {os.path.basename(__file__)}:"
    assert where in str(failed.value), "the error points at the wrong call"
    assert [e.name for e in journal(store, run.id)] == ["counted"]


def test_sleep_until_takes_a_naive_datetime_as_local_time_like_run_at(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    @rx.workflow
    @named("until_noon")
    def until_noon(ctx: rx.WorkflowContext) -> None:
        ctx.sleep_until(datetime.datetime(2100, 1, 1, 12, 0))

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        run = until_noon.start()
        until(lambda: run.status == "sleeping")
        (entry,) = journal(store, run.id)
        wake = datetime.datetime.fromtimestamp(float(entry.output or ""), datetime.UTC)
        assert wake == datetime.datetime(2100, 1, 1, 17, 0, tzinfo=datetime.UTC)
        rx.cancel(run.id)
    finally:
        monkeypatch.undo()
        time.tzset()


# -- errors the code swallows -------------------------------------------------------------------


def test_a_swallowed_divergence_stops_the_run_before_any_later_step(store: rx.Store) -> None:
    def define(first: str) -> Any:
        @rx.workflow
        @named("swallowing")
        def swallowing(ctx: rx.WorkflowContext) -> str:
            try:
                got = str(ctx.step(counted, first, name=first))
            except Exception as exc:  # meant for StepError; catches the divergence too
                got = f"fallback after {type(exc).__name__}"
            ctx.wait_for_event("go")
            ctx.step(counted, "charge", name="charge")
            return got

        return swallowing

    run = define("fetch").start()
    until(lambda: run.status == "waiting")
    define("fetch_v2")  # the cell ran again with the first step renamed
    rx.send_event(run.id, "go")
    with pytest.raises(
        rx.RunFailedError, match=r"NonDeterminismError: .* journaled as step `fetch`"
    ):
        run.result(timeout=10)
    assert CALLS == {"fetch": 1}, "nothing ran past the divergence"


def test_a_swallowed_parking_still_parks_the_run(store: rx.Store) -> None:
    @rx.workflow
    @named("swallows_everything")
    def swallows_everything(ctx: rx.WorkflowContext) -> str:
        try:
            ctx.sleep(0.2)
        except BaseException:  # what a careless cell does
            return "swallowed"
        return "woke"

    assert swallows_everything.start().result(timeout=10) == "woke"


def test_a_parallel_step_whose_output_cannot_be_journaled_says_so(store: rx.Store) -> None:
    def numbers() -> Iterator[int]:
        yield 1

    @rx.workflow
    @named("parallel_generator")
    def parallel_generator(ctx: rx.WorkflowContext) -> Any:
        return ctx.parallel([(counted, "x"), numbers])

    run = parallel_generator.start()
    with pytest.raises(rx.RunFailedError, match=r"step 1 `.*numbers` returned generator"):
        run.result(timeout=10)
    assert [e.name for e in journal(store, run.id)] == ["counted"]


# -- parents and children -------------------------------------------------------------------------


@rx.workflow
def kid(ctx: rx.WorkflowContext, wait: bool = False) -> str:
    CALLS["kid"] += 1
    if wait:
        ctx.wait_for_event("go")
    if CALLS["kid"] == 1 and not wait:
        raise ValueError("the first child fails")
    return "child ok"


@rx.workflow
def parent(ctx: rx.WorkflowContext, wait: bool = False) -> Any:
    return ctx.child(kid, wait=wait)


def test_restarting_a_parent_runs_its_child_again_instead_of_replaying_the_old_one(
    store: rx.Store,
) -> None:
    run = parent.start()
    with pytest.raises(rx.RunFailedError, match="the first child fails"):
        run.result(timeout=10)
    rx.restart(run.id, from_step=0)
    assert run.result(timeout=10) == "child ok"
    assert CALLS["kid"] == 2


def test_cancelling_a_parent_cancels_its_waiting_child(store: rx.Store) -> None:
    run = parent.start(wait=True)
    until(lambda: run.status == "waiting" and len(children_of(store, run.id)) == 1)
    until(lambda: children_of(store, run.id)[0].status == "waiting")
    assert rx.cancel(run.id) == "cancelled"
    assert [c.status for c in children_of(store, run.id)] == ["cancelled"]


# -- control of runs that are not workflows --------------------------------------------------------


@rx.action
def plain(ctx: rx.ActionContext) -> str:
    ctx.wait(30)
    return "done"


def test_events_and_restarts_refuse_a_run_of_an_action(store: rx.Store) -> None:
    run = plain.start()
    with pytest.raises(rx.RunError, match=r"is a run of action .*plain`, not of a workflow"):
        rx.send_event(run.id, "go")
    rx.cancel(run.id)
    run.wait(timeout=10)
    with pytest.raises(rx.RunError, match=r"not of a workflow: run it again with rx\.retry"):
        rx.restart(run.id)
    with pytest.raises(rx.WorkflowError, match="from_step must be a step number >= 0, not True"):
        rx.restart(run.id, from_step=True)


# -- the timeline of runs that ended mid-wait ------------------------------------------------------


@rx.workflow
def parked(ctx: rx.WorkflowContext, days: float) -> None:
    if days:
        ctx.sleep(datetime.timedelta(days=days))
    ctx.wait_for_event("go")


def test_the_timeline_shows_waits_a_cancel_cut_short_as_cancelled(store: rx.Store) -> None:
    waiting, sleeping = parked.start(days=0), parked.start(days=1)
    until(lambda: (waiting.status, sleeping.status) == ("waiting", "sleeping"))
    rx.cancel(waiting.id)
    rx.cancel(sleeping.id)
    for run in (waiting, sleeping):
        (row,) = timeline_rows(run_id=run.id)
        assert row["status"] == "cancelled"
        assert row["finished_at"] == pytest.approx(run.run().finished_at)


def test_a_sleep_past_the_year_9999_does_not_break_the_timeline(store: rx.Store) -> None:
    run = parked.start(days=10**8)
    until(lambda: run.status == "sleeping")
    (row,) = timeline_rows(run_id=run.id)
    assert row["preview"].startswith("until ") and row["status"] == "sleeping"
    assert len(timeline_rows()) == 1
    rx.cancel(run.id)
    assert math.isfinite(timeline_rows(run_id=run.id)[0]["finished_at"])


def _call_the_api() -> None:
    raise PermissionError(f"401 for https://api.example.com/v1?key={os.environ['TOOL_TOKEN']}")


@rx.workflow
def quoting(ctx: rx.WorkflowContext) -> None:
    ctx.step(_call_the_api)


def test_a_secret_quoted_in_a_step_error_is_journaled_redacted(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    secret = "tok-env-0123456789abcdef"
    monkeypatch.setenv("TOOL_TOKEN", secret)
    run = quoting.start()
    with pytest.raises(rx.RunFailedError) as failed:
        run.result(timeout=10)
    assert secret not in str(failed.value) and "key=[redacted]" in str(failed.value)
    [entry] = journal(store, run.id)
    assert entry.error is not None
    assert entry.error.startswith(
        "PermissionError: 401 for https://api.example.com/v1?key=[redacted] (at "
    )
    assert entry.traceback is not None and secret not in entry.traceback

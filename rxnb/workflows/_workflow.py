"""`@rx.workflow`, `rx.send_event` and `rx.restart`.

A workflow is an action whose runs are replayed from their journal: whichever
executor claims a run (the first time, after a durable sleep or wait, or after its
owner died) runs the function from the top, and every journaled step returns its
recorded result instead of running again.
"""

from __future__ import annotations

import functools
import json
from collections.abc import Callable
from typing import Any

from sqlmodel import delete, select

from rxnb.errors import (
    ArgumentError,
    FunctionError,
    ResultError,
    RunError,
    RunNotFoundError,
    WorkflowError,
)
from rxnb.execution import (
    PROGRESSED,
    RUN_ENDED,
    TERMINAL,
    Action,
    ActionContext,
    Run,
    RunStatus,
    cancel_in,
    ties,
)
from rxnb.execution import clock as _clock
from rxnb.reactive import Store, current_store, to_jsonable
from rxnb.store import Writer
from rxnb.workflows._context import WorkflowContext, clock
from rxnb.workflows._model import ChildLink, Event, JournalEntry


def _wake_parent(db: Writer, run: Run) -> None:
    """A run has ended: a parent workflow waiting for it as its child is due now."""
    if not ties.tied(run, ties.CHILD):
        return
    link = db.get(ChildLink, run.id)
    if link is None:
        return
    parent = db.get(Run, link.parent_id)
    if parent is not None:
        _wake(parent)


def _wake(run: Run) -> None:
    """Make a waiting run due now. A running one (about to park, perhaps) gets a due
    time after its claim, which the executor reads as "woken meanwhile" and parks it
    due now: a wake-up between its last look and its parking is not lost."""
    if run.status in (RunStatus.WAITING.value, RunStatus.RUNNING.value):
        run.due_at = clock()


def _cancel_children(db: Writer, run: Run) -> None:
    """A cancelled run's unfinished child workflows are cancelled too (and theirs): no
    one will read their results."""
    if run.status == RunStatus.CANCELLED.value and ties.tied(run, ties.PARENT):
        links = db.exec(select(ChildLink).where(ChildLink.parent_id == run.id)).all()
        _cancel_unfinished(db, [link.child_id for link in links])


def _cancel_unfinished(db: Writer, run_ids: list[str]) -> None:
    for run_id in run_ids:
        child = db.get(Run, run_id)
        if child is not None and RunStatus(child.status) not in TERMINAL:
            cancel_in(db, run_id)


def _journaled_since_start(db: Writer, run: Run) -> bool:
    """A step of `run` was journaled since its start: its crash is the first in a row."""
    if run.started_at is None:
        return False
    found = db.exec(
        select(JournalEntry.seq)
        .where(
            JournalEntry.run_id == run.id,
            JournalEntry.finished_at >= run.started_at,  # type: ignore[operator]
        )
        .limit(1)
    ).first()
    return found is not None


RUN_ENDED.extend([_wake_parent, _cancel_children])
ties.tie(ChildLink, "child_id", ties.CHILD)
ties.tie(ChildLink, "parent_id", ties.PARENT)
ties.GATED.update([_wake_parent, _cancel_children])
PROGRESSED.append(_journaled_since_start)

RESUMES = 10**9
"""A workflow's `max_attempts`: an orphaned run is always resumed from its journal."""


class Workflow(Action[Any, Any]):
    """A durable function: `def f(ctx: rx.WorkflowContext, ...)`, replayed from its journal.

    Its run is failed (not retried) when the function raises: steps have their own
    `retries=`. An orphaned run (its owner died) is resumed by any live executor that
    has it registered.
    """

    kind = "workflow"
    retry_on_raise = False

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        version: str | None = None,
        crash_retries: int | None = None,
        queue: Any = None,
    ) -> None:
        self.version = version
        super().__init__(fn, retries=RESUMES - 1, crash_retries=crash_retries, queue=queue)
        self.fn = _unswallowed(fn)

    def context(self, store: Store, run_id: str, attempt: int) -> ActionContext:
        return WorkflowContext(store, run_id, attempt, workflow=self.name, version=self.version)

    def call_on(self, store: Store, /, *args: Any, **kwargs: Any) -> Any:
        """Run inline, journaling nothing (sleeps block; events need a run)."""
        from rxnb.functions import registry

        checked = self.arguments.bind(args, kwargs)
        latest = registry.latest(self)
        return latest.fn(WorkflowContext(store, None, workflow=self.name), **checked)


def _unswallowed(fn: Callable[..., Any]) -> Callable[..., Any]:
    """`fn`, raising again a divergence or a parking that its code swallowed (an
    `except Exception` around a step): the run stops there, as if it had not."""

    @functools.wraps(fn)
    def run(ctx: Any, /, **args: Any) -> Any:
        try:
            value = fn(ctx, **args)
        except BaseException:
            if getattr(ctx, "_halted", None) is not None:
                raise ctx._halted from None
            raise
        if getattr(ctx, "_halted", None) is not None:
            raise ctx._halted
        return value

    return run


def _check_workflow(run: Run, what: str) -> None:
    """RunError if `run` is known here to be a run of an action, not of a workflow."""
    from rxnb.functions import registry

    function = registry.get(run.function)
    if isinstance(function, Action) and not isinstance(function, Workflow):
        raise RunError(
            f"run {run.id} is a run of action `{run.function}`, not of a workflow: {what}"
        )


def workflow(
    fn: Callable[..., Any] | None = None,
    *,
    version: str | None = None,
    crash_retries: int | None = None,
    queue: Any = None,
) -> Any:
    """Declare a durable workflow: `def f(ctx: rx.WorkflowContext, ...)`.

    `f.start(**args)` starts a run at once and returns its `RunHandle`. Each
    `ctx.step(...)` is journaled; a run that stops (its process killed, a durable
    sleep, a wait for an event) resumes where it stopped, in any process that defines
    the workflow. `version=` is a label recorded for you to tell code versions apart.
    A run whose process dies is resumed up to `crash_retries` times in a row without a
    step journaled in between (RXNB_CRASH_RETRIES, default 3), then fails: a step that
    kills its process each time does not loop for ever.
    """

    def wrap(f: Callable[..., Any]) -> Workflow:
        return Workflow(f, version=version, crash_retries=crash_retries, queue=queue)

    return wrap(fn) if fn is not None else wrap


def send_event_in(db: Writer, run_id: str, name: str, payload: Any = None) -> None:
    """`rx.send_event` inside a mutation's transaction (the event exists iff it commits)."""
    _send_event(db, run_id, name, _encoded(run_id, name, payload))


def _send_event(db: Writer, run_id: str, name: str, payload: str) -> None:
    run = db.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id {run_id!r}")
    if RunStatus(run.status) in TERMINAL:
        raise RunError(
            f"run {run_id} has {run.status}: no one will wait for event {name!r}; "
            "send it to a run that is still going"
        )
    _check_workflow(run, f"it cannot wait for event {name!r}")
    db.add(Event(run_id=run_id, name=name, payload=payload, sent_at=clock()))
    if run.status != RunStatus.WAITING.value or _waits_for(db, run_id, name):
        _wake(run)


def _waits_for(db: Writer, run_id: str, name: str) -> bool:
    """Whether parked run `run_id` waits for event `name`. Another event (or one sent to
    a parent waiting for its child) is kept without waking it: each wake-up is a claim
    and a replay of the whole journal, for a wait that would only park again."""
    pending = db.exec(
        select(JournalEntry.seq).where(
            JournalEntry.run_id == run_id,
            JournalEntry.kind == "event",
            JournalEntry.name == name,
            JournalEntry.finished_at == None,  # noqa: E711
        )
    ).first()
    return pending is not None


def send_event(run_id: str, name: str, payload: Any = None, *, store: Store | None = None) -> None:
    """Send event `name` (with a JSON `payload`) to workflow run `run_id`.

    A run waiting for it (`ctx.wait_for_event(name)`) resumes at once; one that has
    not reached the wait yet gets it when it does.
    """
    encoded = _encoded(run_id, name, payload)
    (store or current_store()).database.write(lambda db: _send_event(db, run_id, name, encoded))


def _encoded(run_id: str, name: str, payload: Any) -> str:
    given: Any = name
    if not isinstance(given, str) or not given:
        raise FunctionError(f"send_event: the event name must be a non-empty str, not {name!r}")
    try:
        return json.dumps(to_jsonable(payload, where="the payload"), allow_nan=False)
    except (ResultError, ValueError) as exc:
        raise ArgumentError(
            f"send_event({run_id!r}, {name!r}, ...): the payload must be JSON (dict, list, "
            f"str, number, bool, None) or a pydantic model: {exc}"
        ) from None


def _restart(db: Writer, run_id: str, from_step: int) -> str:
    run = db.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id {run_id!r}")
    if run.status == RunStatus.RUNNING.value:
        raise RunError(
            f"run {run_id} is running; cancel it (rx.cancel) and restart it once it has stopped"
        )
    _check_workflow(run, "run it again with rx.retry")
    # Children started from the steps dropped are dropped with them: the steps start
    # new ones, and must not find the old ones' links (and results).
    links = db.exec(
        select(ChildLink).where(ChildLink.parent_id == run_id, ChildLink.seq >= from_step)
    ).all()
    _cancel_unfinished(db, [link.child_id for link in links])
    for link in links:
        db.delete(link)
    db.exec(
        delete(JournalEntry).where(
            JournalEntry.run_id == run_id,  # type: ignore[arg-type]
            JournalEntry.seq >= from_step,  # type: ignore[arg-type]
        )
    )
    run.status, run.owner, run.due_at = RunStatus.QUEUED.value, None, clock()
    run.error = run.result = run.finished_at = None
    run.cancel_requested = False
    return run.status


def advance_clock(seconds: float, *, store: Store | None = None) -> None:
    """Move due times' clock forward by `seconds` in this process, and wake its
    executor: a test sees a 30-day durable sleep end at once."""
    from rxnb.execution import executor_for

    _clock.advance(seconds)
    executor_for(store or current_store()).wake()


def restart(run_id: str, *, from_step: int = 0, store: Store | None = None) -> str:
    """Run workflow run `run_id` again from step `from_step`: the journal from there on
    is dropped (steps before it are replayed, not run again); its status after.

    What the dropped steps did is done again: their child workflows are cancelled and
    started anew, and a wait for an event among them waits for a new event (the one
    it consumed went with its journal entry)."""
    step: Any = from_step
    if isinstance(step, bool) or not isinstance(step, int) or step < 0:
        raise WorkflowError(f"restart: from_step must be a step number >= 0, not {from_step!r}")
    return str(
        (store or current_store()).database.write(lambda db: _restart(db, run_id, from_step))
    )

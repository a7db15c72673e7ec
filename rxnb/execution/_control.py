"""Cancel, retry, pause, resume and signal: requests on a run, written to the store,
from any process.

`cancel_in`, `retry_in`, `pause_in`, `resume_in` and `signal_in` are the bodies of
the writes (another layer calls them inside its own transaction); `cancel_run`,
`retry_run`, `pause_run`, `resume_run` and `signal_run` are the mutations behind
`rx.cancel`, `rx.retry`, `rx.pause`, `rx.resume`, `rx.signal` and the runs view's
buttons. Pause and signals follow Convex's advice for control: a column on the run's
row, and a check inside the action's loop (`ActionContext`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from sqlmodel import select

from rxnb.errors import ArgumentError, ResultError, RunError, RunNotFoundError
from rxnb.execution import _clock as clock
from rxnb.execution._model import TERMINAL, Run, RunStatus, ended
from rxnb.functions import mutation
from rxnb.reactive import Store, current_store, to_jsonable
from rxnb.store import Writer


def cancel_in(db: Writer, run_id: str) -> str:
    """Request in `db`'s transaction that run `run_id` stop; its status after.

    A run that is not running (queued, parked) is cancelled at once; a running one
    is flagged, and its executor passes the request on to the action.
    """
    run = db.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id {run_id!r}")
    if RunStatus(run.status) in TERMINAL:
        return run.status
    run.cancel_requested = True
    if run.status != RunStatus.RUNNING.value:
        run.status, run.finished_at = RunStatus.CANCELLED.value, time.time()
        ended(db, run)
    return run.status


def retry_in(db: Writer, run_id: str) -> str:
    """Queue failed or cancelled run `run_id` again, for one more attempt."""
    run = db.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id {run_id!r}")
    if run.status not in (RunStatus.FAILED.value, RunStatus.CANCELLED.value):
        raise RunError(
            f"run {run_id} is {run.status}; only failed or cancelled runs can be retried"
        )
    if run.key is not None:
        other = db.exec(
            select(Run.id).where(
                Run.key == run.key,
                Run.function == run.function,
                Run.id != run.id,
                Run.status.not_in([s.value for s in TERMINAL]),  # type: ignore[attr-defined]
            )
        ).first()
        if other is not None:
            raise RunError(
                f"run {other} with the same key {run.key!r} is unfinished; "
                "follow that one instead of retrying this"
            )
    run.status, run.owner, run.due_at = RunStatus.QUEUED.value, None, clock.now()
    run.cancel_requested, run.finished_at, run.paused = False, None, False
    run.max_attempts, run.crashes = run.attempt + 1, 0
    return run.status


def pause_in(db: Writer, run_id: str) -> str:
    """Pause run `run_id` in `db`'s transaction; its status after.

    A run not running (queued, or a workflow sleeping or waiting) is held `paused`
    until resumed; a running action waits at its next check (`ctx.check_cancelled()`,
    `ctx.wait()`, `ctx.progress()`, between a generation's chunks) and stays
    `running`; a running workflow parks `paused` at its next step, holding no thread.
    A workflow resumed replays its journal, so a sleep or an event wait that has not
    ended parks it again.
    """
    run = _unfinished(db, run_id, "pause")
    run.paused = True
    if run.status != RunStatus.RUNNING.value:
        run.status = RunStatus.PAUSED.value
    return run.status


def resume_in(db: Writer, run_id: str) -> str:
    """Resume paused run `run_id` in `db`'s transaction; its status after (a run not
    paused is left as it is)."""
    run = _unfinished(db, run_id, "resume")
    run.paused = False
    if run.status == RunStatus.PAUSED.value:
        run.status, run.due_at = RunStatus.QUEUED.value, min(run.due_at, clock.now())
    return run.status


def signal_in(db: Writer, run_id: str, name: str, value: Any) -> None:
    """Send control value `value` as `name` to run `run_id` (`ctx.signal(name)`)."""
    if not isinstance(name, str) or not name:  # type: ignore[redundant-expr]
        raise RunError(f"rx.signal: name the signal with a non-empty string, not {name!r}")
    run = _unfinished(db, run_id, f"send it signal {name!r}")
    values = json.loads(run.signals) if run.signals else {}
    try:
        values[name] = to_jsonable(value, where="the value")
        run.signals = json.dumps(values, allow_nan=False)
    except (ResultError, ValueError) as exc:
        raise ArgumentError(
            f"rx.signal({run_id!r}, {name!r}, ...): the value must be JSON (dict, list, "
            f"str, number, bool, None) or a pydantic model: {exc}"
        ) from None


def _unfinished(db: Writer, run_id: str, what: str) -> Run:
    run = db.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id {run_id!r}")
    if RunStatus(run.status) in TERMINAL:
        raise RunError(f"run {run_id} has {run.status}: there is nothing to {what}")
    return run


cancel_run = mutation(cancel_in)
"""The mutation behind `rx.cancel` (and a runs view's Cancel button)."""
retry_run = mutation(retry_in)
"""The mutation behind `rx.retry` (and a runs view's Retry button)."""
pause_run = mutation(pause_in)
"""The mutation behind `rx.pause` (and a runs view's Pause button)."""
resume_run = mutation(resume_in)
"""The mutation behind `rx.resume` (and a runs view's Resume button)."""
signal_run = mutation(signal_in)
"""The mutation behind `rx.signal`."""


def cancel(run_id: str, *, store: Store | None = None) -> str:
    """Request that run `run_id` stop; its status after the request.

    A queued (or parked) run is cancelled at once; a running one sees the request
    through `ctx.cancelled` / `ctx.check_cancelled()`, from any process.
    """
    return str((store or current_store()).call(cancel_run, run_id=run_id))


def retry(run_id: str, *, store: Store | None = None) -> str:
    """Queue a failed or cancelled run again, for one more attempt."""
    return str((store or current_store()).call(retry_run, run_id=run_id))


def pause(run_id: str, *, store: Store | None = None) -> str:
    """Pause run `run_id`, from any process; its status after (see `pause_in`)."""
    return str((store or current_store()).call(pause_run, run_id=run_id))


def resume(run_id: str, *, store: Store | None = None) -> str:
    """Resume paused run `run_id`, from any process; its status after."""
    return str((store or current_store()).call(resume_run, run_id=run_id))


def signal(run_id: str, name: str, value: Any, *, store: Store | None = None) -> None:
    """Send `value` (JSON) as control value `name` to run `run_id`, from any process:
    the action reads the latest with `ctx.signal(name)` (a throttle, say)."""
    (store or current_store()).call(signal_run, run_id=run_id, name=name, value=value)

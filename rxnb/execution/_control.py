"""Cancel and retry: requests on a run, written to the store, from any process.

`cancel_in` and `retry_in` are the bodies of the writes (another layer calls
`cancel_in` inside its own transaction); `cancel_run` and `retry_run` are the
mutations behind `rx.cancel`, `rx.retry` and the runs view's buttons.
"""

from __future__ import annotations

import time

from sqlmodel import select

from rxnb.errors import RunError, RunNotFoundError
from rxnb.execution import _clock as clock
from rxnb.execution._model import TERMINAL, Run, RunStatus, ended
from rxnb.functions import mutation
from rxnb.reactive import Store, current_store
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
    run.cancel_requested, run.finished_at = False, None
    run.max_attempts, run.crashes = run.attempt + 1, 0
    return run.status


cancel_run = mutation(cancel_in)
"""The mutation behind `rx.cancel` (and a runs view's Cancel button)."""
retry_run = mutation(retry_in)
"""The mutation behind `rx.retry` (and a runs view's Retry button)."""


def cancel(run_id: str, *, store: Store | None = None) -> str:
    """Request that run `run_id` stop; its status after the request.

    A queued (or parked) run is cancelled at once; a running one sees the request
    through `ctx.cancelled` / `ctx.check_cancelled()`, from any process.
    """
    return str((store or current_store()).call(cancel_run, run_id=run_id))


def retry(run_id: str, *, store: Store | None = None) -> str:
    """Queue a failed or cancelled run again, for one more attempt."""
    return str((store or current_store()).call(retry_run, run_id=run_id))

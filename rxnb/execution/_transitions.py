"""The writes that move a run between states for an executor: claim due runs, record
how a run ended, fail one that timed out, hand back one whose process is stopping,
give back one claimed but never started.

Each is the body of one write transaction (`Database.write`); the executor decides
when to run them.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, TypeGuard, cast

import sqlalchemy as sa
from sqlmodel import col, func, select

from rxnb.execution import _clock as clock
from rxnb.execution import _ties as ties
from rxnb.execution._context import ActionContext
from rxnb.execution._failures import Failure
from rxnb.execution._model import RUN_ENDED, TERMINAL, Run, RunStatus, ended, requeued
from rxnb.execution._queues import Gate
from rxnb.store import Row, Writer, update_rows

if TYPE_CHECKING:
    from rxnb.execution._actions import Action

log = logging.getLogger("rxnb.execution")

CLAIMABLE = [RunStatus.QUEUED.value, RunStatus.SLEEPING.value, RunStatus.WAITING.value]
"""Statuses an executor claims once `due_at` has come: queued runs, and parked
workflows whose wake time (or event wait timeout) has come; an event makes a waiting
run due at once."""


_RUNS = Run.__table__  # type: ignore[attr-defined]
_LOCK_RUNS = (
    sa.select(_RUNS)
    .where(_RUNS.c.id.in_(sa.bindparam("ids", expanding=True)))
    .order_by(_RUNS.c.id)
    .with_for_update()
)


def _as_run(row: dict[str, Any]) -> Run:
    """`row` as a plain object with a `Run`'s columns as attributes, for the
    transitions written for `Run`s (`_record_end`) to read and set: not an ORM object,
    so nothing is flushed from it (its changes are written with `update_row`), and a
    tenth of the cost of building a `Run`. The `RUN_ENDED` hooks it is passed to are
    the gated ones, which read only `ties` (0 here)."""
    return cast(Run, SimpleNamespace(**row))


def claim(
    db: Writer, names: list[str], owner: str, limit: int = 1
) -> tuple[list[tuple[str, str, dict[str, Any], int, bool]], bool]:
    """Up to `limit` due runs, highest priority then earliest first, that their
    queues' limits let start, marked running for `owner`: (id, function, arguments,
    attempt, whether rows point at it already: `Run.ties`) each; none when nothing is
    due. And whether more may be due: false when it looked at every due run
    (claiming again now would find none).

    Rows are read and written as dicts (`_as_run`, `rxnb.store.update_rows`), not as
    ORM objects: the ORM's load and flush were most of a claim's CPU."""
    now = clock.now()
    due = [
        _RUNS.c.status.in_(CLAIMABLE),
        _RUNS.c.due_at <= now,
        _RUNS.c.function.in_(names),
    ]
    gate: Gate | None = None
    while True:
        rows = [
            dict(row)
            for row in db.connection()
            .execute(
                sa.select(_RUNS)
                .where(*due, *(gate.exclusions() if gate else ()))
                .order_by(_RUNS.c.priority.desc(), _RUNS.c.due_at)
                .limit(limit)
                .with_for_update(skip_locked=True)  # claimers in other processes skip them
            )
            .mappings()
        ]
        queues = {row["queue"] for row in rows if row["queue"] is not None}
        if queues:  # their rows are locked: claimers of a queue take turns
            gate = gate or Gate(now)
            gate.add(db, queues, lock=True)
        if not rows:
            return [], False
        claimed = []
        written: list[tuple[Row, dict[str, Any]]] = []
        for row in rows:
            run = _as_run(row)
            if gate is not None and gate.why_not(run.queue, run.partition) is not None:
                continue  # its queue is full (or its partition busy, or its rate spent)
            try:
                args = Run.arguments(run)
            except ValueError as exc:  # a row written by another program: fail it, not the queue
                run.status, run.finished_at = RunStatus.FAILED.value, now
                run.error = f"its arguments are not a JSON object ({exc}): {run.args[:80]!r}"
                written.append((row, vars(run)))
                continue
            if gate is not None:
                gate.take(run.queue, run.partition)
            run.status = RunStatus.RUNNING.value
            run.owner = owner
            run.attempt += 1
            run.started_at = now
            written.append((row, vars(run)))
            claimed.append((run.id, run.function, args, run.attempt, run.ties != 0))
        update_rows(db, _RUNS, written)
        if claimed:
            if gate is not None:
                gate.save(db)
            return claimed, len(rows) >= limit
        # every one failed or was held back (its queue's exclusions leave it): look again


def _this_start(run: Run | None, ctx: ActionContext, owner: str) -> TypeGuard[Run]:
    """Whether `run` is still the start `ctx` belongs to: running, owned by `owner`,
    at `ctx`'s attempt (not recovered and started again meanwhile)."""
    return (
        run is not None
        and run.owner == owner
        and run.status == RunStatus.RUNNING.value
        and run.attempt == ctx.attempt
    )


def finish(
    db: Writer, ctx: ActionContext, owner: str, action: Action[Any, Any], outcome: tuple[str, Any]
) -> None:
    """Record how a run ended; nothing if it is no longer ours (recovered meanwhile)."""
    _record_end(db, db.get(Run, ctx.run_id), ctx, owner, action, outcome)


def finish_untied(
    db: Writer, ends: Sequence[tuple[ActionContext, Action[Any, Any], tuple[str, Any]]], owner: str
) -> list[int]:
    """`finish` for several runs in one transaction at READ COMMITTED
    (`Database.write(claim=True)`), for runs whose end changes no row but their own:
    their rows are locked (`FOR UPDATE`, in id order so that two batches cannot
    deadlock), which orders each end after every other write to its run, as a
    serializable transaction would. Returns the indexes of the ends it left unwritten:
    runs with rows pointing at them, or every run when a `RUN_ENDED` hook may write for
    an untied run too; `finish` records those.

    The rows are read and written as dicts (`rxnb.store.update_rows`, which records
    the same change an ORM flush does), not as ORM objects: the ORM's load and flush
    were a third of the CPU of a trivial run's end."""
    ids = sorted({ctx.run_id for ctx, _, _ in ends if ctx.run_id is not None})
    locked = db.connection().execute(_LOCK_RUNS, {"ids": ids}).mappings()
    rows = {row["id"]: dict(row) for row in locked}
    every = any(hook not in ties.GATED for hook in RUN_ENDED)
    left = []
    written: list[tuple[Row, dict[str, Any]]] = []
    for i, (ctx, action, outcome) in enumerate(ends):
        row = rows.get(ctx.run_id or "")
        if row is not None and (every or row["ties"] != 0):
            left.append(i)
            continue
        run = None if row is None else _as_run(row)
        _record_end(db, run, ctx, owner, action, outcome)
        if row is not None:
            written.append((row, vars(run)))
    update_rows(db, _RUNS, written)
    return left


def _record_end(
    db: Writer,
    run: Run | None,
    ctx: ActionContext,
    owner: str,
    action: Action[Any, Any],
    outcome: tuple[str, Any],
) -> None:
    if not _this_start(run, ctx, owner):
        if ctx.timed_out is None:  # a timeout failed it already
            log.warning("rxnb: run %s ended here but is no longer owned by %s", ctx.run_id, owner)
        return
    now = time.time()
    kind, value = outcome
    if ctx.timed_out is not None:
        kind, value = "final", Failure(f"TimeoutError: {ctx.timed_out}")
    elif run.cancel_requested or kind == "cancelled":
        run.status, run.finished_at = RunStatus.CANCELLED.value, now
        ended(db, run)
        return
    if kind == "parked":  # resumed by whichever executor claims it when due
        status, due = value
        if run.paused:
            status = RunStatus.PAUSED.value  # resumed by `rx.resume`, replaying its journal
        elif status == RunStatus.PAUSED.value:
            status, due = RunStatus.QUEUED.value, clock.now()  # resumed before it parked
        elif run.started_at is not None and run.due_at >= run.started_at:
            due = clock.now()  # woken while it ran (an event, a child's end): due now
        run.status, run.due_at, run.owner = status, due, None
        run.crashes = 0  # a clean stop: crashes in a row start again
    elif kind == "returned":
        run.status, run.result, run.error = RunStatus.SUCCEEDED.value, json.dumps(value), None
        run.traceback, run.finished_at = None, now
    elif kind == "raised" and run.attempt < run.max_attempts:
        run.status, run.owner, run.error = RunStatus.QUEUED.value, None, value.line
        run.traceback, run.due_at = value.details, now + action.delay(run.attempt)
    else:
        run.status, run.error, run.finished_at = RunStatus.FAILED.value, value.line, now
        run.traceback = value.details
    if RunStatus(run.status) in TERMINAL:
        ended(db, run)


def hand_back(db: Writer, ctx: ActionContext, owner: str, why: str) -> None:
    """The action stopped because its process is stopping (`ctx.handing_over`): queue
    the run again, due now, without spending an attempt; an `at_most_once` run fails
    instead, and one cancelled meanwhile ends cancelled. Nothing if the run is no
    longer this start's."""
    run = db.get(Run, ctx.run_id)
    if not _this_start(run, ctx, owner):
        return
    if run.cancel_requested:
        run.status, run.finished_at = RunStatus.CANCELLED.value, time.time()
        ended(db, run)
    elif run.at_most_once:
        run.status, run.finished_at = RunStatus.FAILED.value, time.time()
        run.error, run.traceback = not_again(why, run.id), None
        ended(db, run)
    else:
        requeue_interrupted(db, run, why)


def requeue_interrupted(db: Writer, run: Run, why: str) -> None:
    """Queue `run`, interrupted by `why` (a hand-over or a crash), again due now; the
    start it lost is not counted against its `retries=`."""
    run.status, run.owner, run.due_at = RunStatus.QUEUED.value, None, clock.now()
    if run.paused:
        run.status = RunStatus.PAUSED.value  # started again on `rx.resume`
    run.max_attempts += 1
    run.interrupted = why
    requeued(db, run, why)


def not_again(why: str, run_id: str) -> str:
    """The error of an `at_most_once` run that `why` interrupted."""
    return (
        f"{why}; not started again (at_most_once=True): it may have run in part. "
        f"Check its effects, then rx.retry({run_id!r}) to run it again"
    )


def fail_now(db: Writer, ctx: ActionContext, owner: str, reason: str) -> None:
    """Fail the run now: it overran its `timeout=` (its thread may still run)."""
    run = db.get(Run, ctx.run_id)
    if not _this_start(run, ctx, owner):
        return
    run.status, run.finished_at = RunStatus.FAILED.value, time.time()
    run.error, run.traceback = f"TimeoutError: {reason}", None
    ended(db, run)


def unclaim(db: Writer, run_id: str, owner: str, attempt: int) -> None:
    """Give back a run claimed but never started (`attempt` is the claim's)."""
    run = db.get(Run, run_id)
    if (
        run is not None
        and run.owner == owner
        and run.attempt == attempt
        and run.status == RunStatus.RUNNING.value
    ):
        run.status, run.owner, run.attempt = RunStatus.QUEUED.value, None, attempt - 1


def due_exists(db: Any, names: list[str]) -> bool:
    return (
        db.exec(
            select(Run.id)
            .where(
                Run.status.in_(CLAIMABLE),  # type: ignore[attr-defined]
                Run.due_at <= clock.now(),
                Run.function.in_(names),  # type: ignore[attr-defined]
            )
            .limit(1)
        ).first()
        is not None
    )


def next_due(db: Any, names: list[str]) -> float | None:
    """When a run of `names` may next be claimed: the earliest due time among runs
    that no queue holds back, or the time a queue's rate lets one start; None when
    only a write can make one claimable (a queue's running run ending, say)."""
    claimable = [
        Run.status.in_(CLAIMABLE),  # type: ignore[attr-defined]
        Run.function.in_(names),  # type: ignore[attr-defined]
    ]
    earliest = db.exec(
        select(Run.queue, func.min(Run.due_at)).where(*claimable).group_by(col(Run.queue))
    ).all()
    times = [float(t) for q, t in earliest if q is None and t is not None]
    queued = {q: float(t) for q, t in earliest if q is not None and t is not None}
    if queued:
        gate = Gate.load(db, queued, clock.now(), lock=False)
        free = db.exec(
            select(func.min(Run.due_at)).where(
                *claimable,
                col(Run.queue).is_not(None),
                *gate.exclusions(),
            )
        ).one()
        if free is not None:
            times.append(float(free))
        for queue, reopens in gate.reopens().items():
            times.append(max(reopens, queued.get(queue, reopens)))
    return min(times) if times else None


def controls(db: Any, run_ids: list[str]) -> list[tuple[str, bool, bool]]:
    """(id, cancel requested, paused) of each of `run_ids`."""
    return [
        (run_id, bool(cancel), bool(paused))
        for run_id, cancel, paused in db.exec(
            select(Run.id, Run.cancel_requested, Run.paused).where(col(Run.id).in_(run_ids))
        ).all()
    ]

"""`rx.fork`: a new run of a workflow that starts from another run's journal.

Steps are numbered as the journal numbers them, from 0, in the order the code reaches
them (every `ctx.step`, `ctx.query`, `ctx.mutation`, `ctx.now()`, sleep, wait, child
and patch takes one number), as `rx.restart(from_step=)`, the timeline and the
divergence errors number them.

Rules:

1. `rx.fork(run_id, from_step=k, **args)` inserts a new run of the same workflow whose
   journal holds a copy of the source run's steps 0 .. k-1 (outputs, errors, times,
   attempts): the fork replays them, it does not run them again; from step k on it
   runs the workflow's current code. `from_step=0` (the default) copies nothing.
2. `k` is at most the number of steps the source has journaled in a row from step 0
   (its journal as it stands: a source still running can be forked).
3. Every copied step must have ended. A sleep is copied with its wake time (the fork
   sleeps until the same instant, if it has not passed); a wait for an event that got
   its event, with the payload (the fork does not wait again, and no event is sent or
   consumed); a child workflow that ended, with its result (the child is not started
   again, and stays its parent's); a mutation, with its result (its writes are not made
   again). A wait or a child still going before step k is refused.
4. The fork's arguments are the source's, each keyword given replacing the one of its
   name, checked against the workflow's current signature.
5. The source run is not changed; the fork records it in `Run.forked_from`. The fork's
   run and journal are written in one transaction: an error writes nothing.
6. The fork is inserted as started once (`attempt` 1): the copied journal is what a
   start of it would have written, and a workflow reads its journal on any start but
   its first (which has none). Its first claim is attempt 2.
7. An agent's turn writes into its thread's messages, which a fork would share with
   the source: fork the thread instead (`rx.agents.fork`) and send the message there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlmodel import select

from rxnb.errors import ArgumentError, RunError, RunNotFoundError, WorkflowError
from rxnb.execution import Run, RunHandle, encode_args, executor_for, insert_run
from rxnb.functions import mutation
from rxnb.reactive import Store, current_store
from rxnb.store import Writer
from rxnb.workflows._context import JOURNAL, clock
from rxnb.workflows._model import COLUMNS, JournalEntry
from rxnb.workflows._workflow import Workflow

TURNS = "rxnb.agents.turn["
"""How the name of an agent's turn workflow begins (rule 7)."""


def fork_in(db: Writer, run_id: str, from_step: int = 0, **arguments: Any) -> str:
    """`rx.fork` inside a transaction: the new run's id (the rules of the module)."""
    return _fork(db, run_id, from_step, arguments)[0]


def _fork(
    db: Writer, run_id: str, from_step: int, arguments: dict[str, Any]
) -> tuple[str, Workflow]:
    _check_step(run_id, from_step)
    source = db.get(Run, run_id)
    if source is None:
        raise RunNotFoundError(
            f"rx.fork: no run has id {run_id!r}; pass the id of a workflow's run "
            "(rx.runs() lists them)"
        )
    workflow = _workflow_of(source)
    journal = db.execute(
        select(*[JOURNAL.c[c] for c in COLUMNS])
        .where(JOURNAL.c.run_id == run_id, JOURNAL.c.seq < from_step)
        .order_by(JOURNAL.c.seq)
    ).all()
    _check_copied(source, from_step, journal)
    args = _merged(source, workflow, arguments)
    fork_id = insert_run(db, workflow, args, clock(), None)
    fork = db.get(Run, fork_id)
    assert fork is not None
    fork.forked_from, fork.attempt = source.id, 1  # rules 5 and 6
    db.flush()
    if journal:
        rows = [{**row._asdict(), "run_id": fork_id} for row in journal]
        db.execute(JournalEntry.__table__.insert(), rows)  # type: ignore[attr-defined]
    return fork_id, workflow


def _check_step(run_id: str, from_step: Any) -> None:
    if isinstance(from_step, bool) or not isinstance(from_step, int) or from_step < 0:
        raise WorkflowError(
            f"rx.fork({run_id!r}, from_step={from_step!r}): give the number of the first "
            "step to run again, a whole number >= 0 (steps are numbered from 0, as the "
            "timeline shows them)"
        )


def _workflow_of(source: Run) -> Workflow:
    """The current definition of `source`'s workflow in this process (rules 4, 7)."""
    from rxnb.functions import registry

    if source.function.startswith(TURNS):
        raise WorkflowError(
            f"rx.fork: run {source.id} is an agent's turn, which writes into its thread: "
            "fork the thread with rx.agents.fork(thread_id, at_message=N) and send the "
            "message there"
        )
    function = registry.get(source.function)
    if function is None:
        raise WorkflowError(
            f"rx.fork: run {source.id} is a run of `{source.function}`, which this process "
            "does not define: run the cell that defines the workflow, then fork"
        )
    if not isinstance(function, Workflow):
        raise RunError(
            f"rx.fork: run {source.id} is a run of {function.kind} `{source.function}`, not "
            "of a workflow: it has no journal to fork; start it again with "
            f"{source.function.rsplit('.', 1)[-1]}.start(...)"
        )
    return function


def _check_copied(source: Run, from_step: int, journal: Sequence[Any]) -> None:
    """Rules 2 and 3: steps 0 .. from_step-1 are all there, and all ended."""
    for expected, row in enumerate(journal):
        if row.seq != expected:  # a step still going among parallel ones
            raise WorkflowError(
                f"rx.fork: run {source.id} has not journaled step {expected} yet; fork "
                f"from_step <= {expected}"
            )
        if row.finished_at is None:
            raise WorkflowError(
                f"rx.fork: step {row.seq} of run {source.id} ({row.kind} `{row.name}`) has "
                f"not ended; fork from_step <= {row.seq}, or once it has ended"
            )
    if len(journal) < from_step:
        n = len(journal)
        has = f"steps 0-{n - 1}" if n > 1 else "step 0" if n == 1 else "no step"
        raise WorkflowError(
            f"rx.fork: from_step={from_step} is beyond the journal of run {source.id}, "
            f"which has {has}; fork from_step <= {n}"
        )


def _merged(source: Run, workflow: Workflow, arguments: dict[str, Any]) -> str:
    """Rule 4: the source's arguments with `arguments` over them, checked and encoded."""
    try:
        given = source.arguments()
    except ValueError as exc:
        raise RunError(
            f"rx.fork: run {source.id}'s stored arguments are not a JSON object ({exc}); "
            "start the workflow anew instead"
        ) from None
    merged = {**given, **arguments}
    try:
        return encode_args(workflow.name, workflow.arguments.bind((), merged))
    except ArgumentError as exc:
        raise ArgumentError(
            f"rx.fork({source.id!r}, ...): the fork's arguments do not fit the workflow: {exc}"
        ) from None


def fork_step_in(db: Writer, run_id: str, from_step: int) -> str:
    """Fork run `run_id` from step `from_step` with its own arguments: the new run's id
    (the timeline's Fork button)."""
    # Its workflow is defined here (rule 4), so this process's executor has it.
    return _fork(db, run_id, from_step, {})[0]


fork_step = mutation(fork_step_in)
"""The mutation behind the timeline's Fork button (`rx.widgets.timeline(fork=True)`)."""


def fork(
    run_id: str, *, from_step: int = 0, store: Store | None = None, **arguments: Any
) -> RunHandle:
    """Start a new run of workflow run `run_id`'s workflow that replays its steps before
    `from_step` (copied from its journal, not run again) and runs the current code from
    there, with its arguments but for the keywords given; the new run's handle.

        child = rx.fork(run.id, from_step=3, topic="new topic")   # steps 0-2 replayed

    Steps are numbered from 0 as the journal and the timeline number them. The source
    run is not changed; the fork records it in `Run.forked_from`. Every copied step must
    have ended; a run still going can be forked from the steps it has journaled.
    """
    target = store or current_store()
    fork_id, workflow = target.database.write(lambda db: _fork(db, run_id, from_step, arguments))
    executor_for(target).register(workflow)
    return RunHandle(fork_id, target)

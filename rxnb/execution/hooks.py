"""Hooks around a run's life for a later layer (the `otel` extra's tracing): told of
each run inserted, and of each run's body as an executor runs it.

Both lists are empty unless a later layer fills them; the code that calls them
checks that first, so they cost nothing when unused. A hook that raises is logged
and never breaks the run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from rxnb.execution._context import ActionContext
from rxnb.execution._model import Run
from rxnb.execution._outcome import outcome

if TYPE_CHECKING:
    from rxnb.execution._actions import Action

log = logging.getLogger("rxnb.runs")

RunEnd = Callable[[tuple[str, Any]], None]
"""Called with how a run's body ended (`outcome`'s tuple: ("returned", json),
("parked", (status, due)), ("cancelled", why), ("raised"/"final", Failure))."""

RUN_INSERTING: list[Callable[[Run], None]] = []
"""Called with each new run (`insert_run`: `start`, `db.schedule`, a child run, a
cron) before it is added, in the thread that starts it: a hook may set its columns
(the tracing layer sets `trace`). In a mutation, it runs again if the body does."""

RUN_EXECUTING: list[Callable[[ActionContext, str, dict[str, Any]], RunEnd]] = []
"""Called with (ctx, function name, arguments) in the pool thread about to run a
claimed run's body; each returns the function called, in that thread, with how the
body ended (a run parked, handed over or resumed is one call per start)."""


def inserting(run: Run) -> None:
    """Tell the `RUN_INSERTING` hooks of `run`."""
    for hook in list(RUN_INSERTING):
        try:
            hook(run)
        except Exception:
            log.exception("rxnb: a run-inserting hook failed")


def executing(
    action: Action[Any, Any], ctx: ActionContext, args: dict[str, Any]
) -> tuple[str, Any]:
    """`outcome(action, ctx, args)`, with the `RUN_EXECUTING` hooks told around it."""
    ends: list[RunEnd] = []
    for hook in list(RUN_EXECUTING):
        try:
            ends.append(hook(ctx, action.name, args))
        except Exception:
            log.exception("rxnb: a run-executing hook failed")
    ended: tuple[str, Any] = ("final", None)
    try:
        ended = outcome(action, ctx, args)
    finally:
        for end in reversed(ends):
            try:
                end(ended)
            except Exception:
                log.exception("rxnb: a run-executing hook failed at the run's end")
    return ended

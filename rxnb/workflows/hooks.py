"""A hook around each workflow step as it runs, for a later layer (the `otel`
extra's tracing). Empty unless that layer fills it: `WorkflowContext` checks that
first, so it costs nothing when unused. A hook that raises is logged, never raised.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from rxnb.execution import ActionContext

log = logging.getLogger("rxnb.workflows")

StepEnd = Callable[[BaseException | None], None]
"""Called with what the step's function raised (None: it returned)."""

STEP_RUNNING: list[Callable[[ActionContext, int, str, int], StepEnd]] = []
"""Called with (ctx, seq, name, attempt) in the thread about to run an attempt of a
step's function (`ctx.step`, each of `ctx.parallel`), not a step replayed from the
journal; each returns the function called, in that thread, once the attempt ends."""


def stepping(
    ctx: ActionContext,
    seq: int,
    name: str,
    attempt: int,
    fn: Callable[..., Any],
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> Any:
    """`fn(*args, **kwargs)`, with the `STEP_RUNNING` hooks told around it."""
    ends: list[StepEnd] = []
    for hook in list(STEP_RUNNING):
        try:
            ends.append(hook(ctx, seq, name, attempt))
        except Exception:
            log.exception("rxnb: a step hook failed")
    raised: BaseException | None = None
    try:
        return fn(*args, **kwargs)
    except BaseException as exc:
        raised = exc
        raise
    finally:
        for end in reversed(ends):
            try:
                end(raised)
            except Exception:
                log.exception("rxnb: a step hook failed at the step's end")

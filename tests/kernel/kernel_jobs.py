"""Actions that the kernel tests and their `rxnb worker` subprocesses both import."""

from __future__ import annotations

import rxnb as rx


@rx.action
def slow(ctx: rx.ActionContext, steps: int = 40, pause: float = 0.1) -> int:
    for step in range(1, steps + 1):
        ctx.check_cancelled()
        ctx.progress(step, steps, f"step {step} of {steps}")
        ctx.wait(pause)
    return steps

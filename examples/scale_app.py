"""The actions of `08_scaling_out.ipynb`, in a module so that `rxnb worker --import
scale_app` runs them: a worker runs only the functions it imports."""

from __future__ import annotations

import os
import time

import rxnb as rx


@rx.action
def crunch(ctx: rx.ActionContext, n: int, seconds: float = 0.2) -> dict[str, float]:
    """Work on item `n` for `seconds` (stops at once if cancelled); who did it, and when."""
    start = time.time()
    ctx.wait(seconds)  # stands in for an LLM call or a batch of rows
    return {"n": n, "pid": os.getpid(), "attempt": ctx.attempt, "start": start, "end": time.time()}

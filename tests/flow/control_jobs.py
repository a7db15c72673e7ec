"""Runs that pause, resume and read signals, for tests/flow/test_pause.py; a worker
process imports this module (the test process does not, so that only it runs them)."""

from __future__ import annotations

import time
from typing import Any

import rxnb as rx


@rx.action
def counts(ctx: rx.ActionContext) -> int:
    """Count (recording progress) until signal "stop"; at the pace of signal "delay"."""
    n = 0
    while ctx.signal("stop") is None:
        n += 1
        ctx.progress(n)
        ctx.wait(float(ctx.signal("delay", 0.01)))
    return n


def slow(i: int) -> dict[str, Any]:
    time.sleep(0.1)
    return {"i": i, "at": time.time()}


@rx.workflow
def steps(ctx: rx.WorkflowContext, n: int) -> list[dict[str, Any]]:
    return [ctx.step(slow, i) for i in range(n)]

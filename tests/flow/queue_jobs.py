"""Actions on queues, imported by the flow tests and by their worker processes.

Each run returns when it started and ended (epoch seconds) and the pid that ran it, so
that a test can check from the results alone how many ran at once, where.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

import rxnb as rx

GATES: dict[str, threading.Event] = {}
"""Gates of `gated_first` in this process, by name (opened by the test)."""

three = rx.Queue("three", concurrency=3)
parts = rx.Queue("parts", per_partition=1)
single = rx.Queue("single", concurrency=1)
rated = rx.Queue("rated", rate=(10, 1.0))


def _span(seconds: float, **extra: Any) -> dict[str, Any]:
    start = time.time()
    time.sleep(seconds)  # the work a run does: it must overlap with others to be counted
    return {"start": start, "end": time.time(), "pid": os.getpid(), **extra}


@rx.action(queue=three)
def on_three(ctx: rx.ActionContext, n: int, seconds: float = 0.05) -> dict[str, Any]:
    return _span(seconds, n=n)


@rx.action(queue="parts")
def on_parts(ctx: rx.ActionContext, n: int, seconds: float = 0.05) -> dict[str, Any]:
    return _span(seconds, n=n)


@rx.action(queue=single)
def on_single(ctx: rx.ActionContext, n: int, gate: str | None = None) -> dict[str, Any]:
    if gate is not None:
        GATES.setdefault(gate, threading.Event()).wait(30)
    return _span(0.0, n=n)


@rx.action(queue=rated)
def on_rated(ctx: rx.ActionContext, n: int) -> dict[str, Any]:
    return _span(0.0, n=n)


def most_at_once(spans: list[dict[str, Any]]) -> int:
    """The most spans that overlapped at any moment."""
    edges = sorted([(s["start"], 1) for s in spans] + [(s["end"], -1) for s in spans])
    running = peak = 0
    for _, step in edges:
        running += step
        peak = max(peak, running)
    return peak


one_at_a_time = rx.Queue("one-at-a-time", concurrency=1)


@rx.workflow(queue=one_at_a_time)
def naps(ctx: rx.WorkflowContext, n: int) -> dict[str, Any]:
    """Runs, sleeps durably (parked: no place in its queue), runs again."""
    start = ctx.step(time.time)
    ctx.sleep(0.5)
    return {"n": n, "start": start, "end": ctx.step(time.time)}

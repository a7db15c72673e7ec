"""Workflows that only subprocesses import, so the test process never claims their runs.

A victim process sets `HANG` before starting runs: the run tagged `tag` then blocks in
step `k`, before or after that step's side effect, until the process is killed. A
process that resumes the runs leaves `HANG` empty, so the same steps go straight
through there.
"""

from __future__ import annotations

import os
import time
from typing import Any

from flow_effects import append_line, next_value

import rxnb as rx

HANG: dict[str, tuple[int, str]] = {}
"""tag -> (step, "before" | "after" its side effect): where that run blocks, here only."""


def _line(log: str, kind: str, tag: str, step: object) -> float:
    now = time.time()
    append_line(log, f"{kind} {tag} {step} {os.getpid()} {now:.6f}")
    return now


def _block(log: str, tag: str, step: int) -> None:
    _line(log, "hang", tag, step)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # until kill -9
        time.sleep(0.05)
    raise TimeoutError(f"nobody killed the process running {tag} at step {step}")


def work(log: str, tag: str, i: int, acc: int, pause: float) -> int:
    """Step `i` of ten_steps: one `effect` line per execution (the counted side effect)."""
    _line(log, "enter", tag, i)
    if HANG.get(tag) == (i, "before"):
        _block(log, tag, i)
    if pause:
        time.sleep(pause)
    _line(log, "effect", tag, i)
    if HANG.get(tag) == (i, "after"):
        _block(log, tag, i)
    return next_value(acc, i)


@rx.workflow
def ten_steps(ctx: rx.WorkflowContext, log: str, tag: str, pause: float = 0.0) -> int:
    acc = len(tag)
    for i in range(10):
        acc = ctx.step(work, log, tag, i, acc, pause, name=f"step{i}")
    return acc


def stamp(log: str, tag: str, label: str) -> float:
    """A step that records when (and in which process) it started."""
    return _line(log, "stamp", tag, label)


@rx.workflow
def nap(ctx: rx.WorkflowContext, log: str, tag: str, seconds: float) -> float:
    ctx.step(stamp, log, tag, "before", name="before")
    ctx.sleep(seconds)
    return float(ctx.step(stamp, log, tag, "after", name="after"))


def hold(log: str, tag: str, gate: str) -> str:
    """A step that goes on only once the file `gate` exists."""
    _line(log, "holding", tag, "hold")
    deadline = time.monotonic() + 60
    while not os.path.exists(gate):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{gate} never appeared")
        time.sleep(0.01)
    return "held"


@rx.workflow
def approval(ctx: rx.WorkflowContext, log: str, tag: str, gate: str = "") -> Any:
    """Ask, (optionally hold at a gate,) wait for the event "approval", then say so."""
    ctx.step(stamp, log, tag, "asked", name="asked")
    if gate:
        ctx.step(hold, log, tag, gate, name="hold")
    verdict = ctx.wait_for_event("approval", timeout=120)
    ctx.step(stamp, log, tag, "resumed", name="resumed")
    return verdict

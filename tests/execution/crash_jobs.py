"""Actions only worker subprocesses import, so the test process never claims their runs.

The stall actions' attempt 1 signals that it runs (a line in `marker`), then loops on
`ctx.check_cancelled()` until its process is killed; a later attempt returns at once.
"""

from __future__ import annotations

import os
import signal
import time

from run_jobs import append_line

import rxnb as rx


def _stall(ctx: rx.ActionContext, marker: str) -> dict[str, int]:
    append_line(marker, f"{ctx.run_id} {os.getpid()} {ctx.attempt}")
    if ctx.attempt == 1:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # until kill -9 (or its executor stops)
            ctx.check_cancelled()
            ctx.wait(0.05)
        raise TimeoutError("nobody killed this process")
    return {"attempt": ctx.attempt, "pid": os.getpid()}


@rx.action(retries=1, backoff=0.0)
def stall_retried(ctx: rx.ActionContext, marker: str) -> dict[str, int]:
    return _stall(ctx, marker)


@rx.action
def stall_once(ctx: rx.ActionContext, marker: str) -> dict[str, int]:
    """No `retries=`: a crash is not an exception it raised, so it is still retried."""
    return _stall(ctx, marker)


@rx.action(at_most_once=True)
def stall_at_most_once(ctx: rx.ActionContext, marker: str) -> dict[str, int]:
    return _stall(ctx, marker)


@rx.action
def finishes(ctx: rx.ActionContext, marker: str) -> str:
    """Takes 1 s and never looks at cancellation; writes a line as it starts and ends."""
    append_line(marker, "started")
    time.sleep(1.0)
    append_line(marker, "ended")
    return "finished"


@rx.action(crash_retries=2)
def kills_its_process(ctx: rx.ActionContext, marker: str) -> None:
    """Kills the process running it, every time (as an out-of-memory kill would)."""
    append_line(marker, f"{ctx.attempt} {os.getpid()}")
    os.kill(os.getpid(), signal.SIGKILL)

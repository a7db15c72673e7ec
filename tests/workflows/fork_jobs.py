"""A five-step workflow for the fork tests, imported only by subprocesses (the test
process never claims its runs). Each execution of a step appends `effect TAG sN PID
TIME` to the log; `RXNB_FORK_VARIANT` (read when a step runs) is the "changed code" of
step 3."""

from __future__ import annotations

import os
import time

from flow_effects import append_line

import rxnb as rx


def effect(log: str, tag: str, n: int) -> str:
    append_line(log, f"effect {tag} s{n} {os.getpid()} {time.time():.6f}")
    if n == 3:
        return f"s3:{os.environ.get('RXNB_FORK_VARIANT', 'v1')}"
    return f"s{n}"


@rx.workflow
def five_steps(ctx: rx.WorkflowContext, log: str, tag: str) -> list[str]:
    return [ctx.step(effect, log, tag, n, name=f"s{n}") for n in range(1, 6)]

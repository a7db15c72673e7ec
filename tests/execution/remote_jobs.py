"""An action that only the subprocess of the remote-cancel test imports and registers."""

from __future__ import annotations

import os
import time

from run_jobs import append_line

import rxnb as rx


@rx.action
def obeys_remotely(ctx: rx.ActionContext, marker: str) -> str:
    """Signal `marker` once running, then loop on check_cancelled until cancelled."""
    append_line(marker, f"{ctx.run_id} {os.getpid()}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        ctx.wait(0.05)
    return "never cancelled"

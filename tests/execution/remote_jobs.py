"""Actions that only the subprocesses of tests import and register (the test process
does not, so only they run them)."""

from __future__ import annotations

import os
import sys
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


@rx.action
def litellm_imported(ctx: rx.ActionContext, hold: str = "", at_least: float = 0.0) -> bool:
    """Whether this process has imported litellm, once the file `hold` exists (if
    given) and `at_least` seconds have passed since the run started (up to 30 s)."""
    started = time.monotonic()
    deadline = started + 30
    while time.monotonic() < deadline and (
        (hold and not os.path.exists(hold)) or time.monotonic() < started + at_least
    ):
        ctx.wait(0.02)
    return "litellm" in sys.modules

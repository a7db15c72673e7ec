"""`scale_jobs.touch`, in a worker whose scheduler stalls once for `STALL_SECONDS`
between the commit of its first claim and starting the runs it claimed, as a GC
pause, a starved CPU, or a workflow context's journal read waiting out an outage
(`WorkflowContext.__init__` reads the store right there) can make it."""

from __future__ import annotations

import threading
import time
from typing import Any

import scale_jobs

import rxnb as rx

STALL_SECONDS = 4.0
"""Longer than the claim age (2 heartbeats) after which a claim not running counts as lost."""

_stalled = threading.Event()
_context = scale_jobs.touch.context


def _stalling_context(store: rx.Store, run_id: str, attempt: int) -> Any:
    if not _stalled.is_set():
        _stalled.set()
        print(f"stalled after claiming {run_id}", flush=True)
        time.sleep(STALL_SECONDS)  # the stall itself, not a wait for anything
    return _context(store, run_id, attempt)


scale_jobs.touch.context = _stalling_context

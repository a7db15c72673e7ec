"""Actions that only the worker subprocesses of `bench/runs.py` import.

The benchmark process queues their runs by writing `rx_runs` rows, so it never
claims one itself: every run is executed by a worker.
"""

from __future__ import annotations

import time

import rxnb as rx


@rx.action
def trivial(ctx: rx.ActionContext, n: int) -> int:
    return n


@rx.action
def stamp_remote(ctx: rx.ActionContext) -> float:
    """The wall-clock time at which the action began."""
    return time.time()

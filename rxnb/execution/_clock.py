"""The clock that due times are set and compared by (`Run.due_at`).

It is the wall clock, unless a test moves it forward (`advance`) to see a month-long
durable sleep end without waiting a month. Heartbeats and leases keep the real clock.
"""

from __future__ import annotations

import time

_offset = [0.0]


def now() -> float:
    """Seconds since the epoch, as due times are compared."""
    return time.time() + _offset[0]


def advance(seconds: float) -> None:
    """Move this process's clock forward by `seconds` (for tests); executors must then
    be woken to look at the queue again (see `rxnb.workflows.advance_clock`)."""
    _offset[0] += seconds

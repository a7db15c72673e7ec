"""What the PostgreSQL scale tests' kernels, workers and subprocesses all import.

`touch` proves how often it ran outside the store: each execution appends one line
(`run_id pid`) to the file named by `RXNB_SCALE_EFFECTS` and fsyncs it before the run
can be recorded as succeeded, so a run executed twice shows up twice even if the
store lost or merged a write.
"""

from __future__ import annotations

import os
import threading
from typing import Any

from models import Counter
from sqlmodel import select

import rxnb as rx

EFFECTS = "RXNB_SCALE_EFFECTS"
"""The environment variable naming the file `touch` appends to."""


@rx.action
def touch(ctx: rx.ActionContext, n: int) -> int:
    line = f"{ctx.run_id} {os.getpid()}\n".encode()
    fd = os.open(os.environ[EFFECTS], os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)  # one write of O_APPEND: lines of many processes never interleave
        os.fsync(fd)
    finally:
        os.close(fd)
    return n


@rx.query
def touch_runs(db: rx.Reader) -> list[dict[str, Any]]:
    """Every run of `touch` with its status, as a table keyed by run id."""
    rows = db.exec(
        select(rx.Run.id, rx.Run.status, rx.Run.attempt)
        .where(rx.Run.function == touch.name)
        .order_by(rx.Run.id)
    ).all()
    return [{"id": i, "status": s, "attempt": a} for i, s, a in rows]


_bodies_lock = threading.Lock()
BODIES = [0]
"""How many times `bump`'s body ran in this process (more than its commits when
serialization failures made the store run it again)."""


@rx.mutation
def bump(db: rx.Writer, counter_id: int) -> int:
    with _bodies_lock:
        BODIES[0] += 1
    row = db.get(Counter, counter_id)
    if row is None:
        row = Counter(id=counter_id, value=0)
        db.add(row)
    row.value += 1
    return row.value

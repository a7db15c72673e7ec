"""The `rx_runs` and `rx_owners` tables: every run's state, and who is running what.

Both are SQLModel tables in the store, so runs are queryable and reactive like any
table (`select(rx.Run)` in a query). Times are epoch seconds (floats) and statuses are
lowercase strings, so SQL and other languages can read them too.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Callable
from typing import Any

from sqlmodel import Field, SQLModel


class RunStatus(str, enum.Enum):
    """Where a run is in its life. Stored as the lowercase value."""

    QUEUED = "queued"
    """Waiting for an executor (its `due_at` may be in the future)."""
    RUNNING = "running"
    """Claimed by an executor (`owner`), which heartbeats while it runs."""
    SLEEPING = "sleeping"
    """A workflow parked until `due_at`, holding no thread."""
    WAITING = "waiting"
    """A workflow parked until an event arrives, holding no thread."""
    SUCCEEDED = "succeeded"
    """Finished; `result` holds its return value as JSON."""
    FAILED = "failed"
    """Finished with `error`, after its last attempt."""
    CANCELLED = "cancelled"
    """Stopped by a cancel request; any result was discarded."""


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class Run(SQLModel, table=True):
    """One run of an @rx.action (or workflow)."""

    __tablename__ = "rx_runs"

    id: str = Field(primary_key=True)
    function: str = Field(index=True)
    """The action's registered name, `module.qualname`."""
    args: str = "{}"
    status: str = Field(default=RunStatus.QUEUED.value, index=True)
    key: str | None = Field(default=None, index=True)
    """Idempotency key: starting with a key returns the unfinished run that has it."""
    attempt: int = 0
    max_attempts: int = 1
    owner: str | None = Field(default=None, index=True)
    due_at: float = Field(index=True)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    result: str | None = None
    error: str | None = None
    progress: str | None = None
    usage: str | None = None
    cost: float | None = None

    def arguments(self) -> dict[str, Any]:
        """The arguments as a dict; ValueError if `args` is not a JSON object."""
        value = json.loads(self.args)
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object")
        return value


class Owner(SQLModel, table=True):
    """A live executor: its process, its heartbeat and the functions it can run."""

    __tablename__ = "rx_owners"

    id: str = Field(primary_key=True)
    host: str
    pid: int
    started_at: float
    heartbeat_at: float = Field(index=True)
    functions: str = "[]"


RUN_ENDED: list[Callable[[Any, Run], None]] = []
"""Called with (db, run) in the transaction that ends a run (a later layer's hook: the
workflows layer wakes a parent waiting for its child)."""


def ended(db: Any, run: Run) -> None:
    """Tell the hooks that `run` has just ended, in the transaction that ended it."""
    for hook in RUN_ENDED:
        hook(db, run)

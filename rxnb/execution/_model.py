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

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from rxnb.store import own_table


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
    PAUSED = "paused"
    """Paused (`rx.pause`) before it started or between workflow steps, holding no
    thread, until `rx.resume`. (A running action that is paused stays `running`,
    `paused` set, waiting at its next check.)"""


TERMINAL = frozenset({RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED})


class Run(SQLModel, table=True):
    """One run of an @rx.action (or workflow).

    Columns added since the first release have defaults in the database as well, so
    that a program inserting runs with plain SQL, naming only the older columns,
    keeps working.
    """

    __tablename__ = "rx_runs"
    __table_args__ = own_table()

    id: str = Field(primary_key=True)
    function: str = Field(index=True)
    """The action's registered name, `module.qualname`."""
    args: str = "{}"
    status: str = Field(default=RunStatus.QUEUED.value, index=True)
    key: str | None = Field(default=None, index=True)
    """Idempotency key: starting with a key returns the unfinished run that has it."""
    attempt: int = 0
    """How many times the run was started (claimed), whatever ended each start."""
    max_attempts: int = 1
    """The last attempt an exception may end in a retry (`retries=` + 1). A start that a
    hand-over or a crash interrupted does not count: the limit moves up one for it."""
    owner: str | None = Field(default=None, index=True)
    due_at: float = Field(index=True)
    created_at: float
    started_at: float | None = None
    finished_at: float | None = None
    cancel_requested: bool = False
    result: str | None = None
    error: str | None = None
    """Why it failed (or why its last attempt did): one line, `Type: message`."""
    traceback: str | None = None
    """The details of `error`: the traceback, where there is one."""
    interrupted: str | None = None
    """Why a start of it stopped before it ended, the last time one did: its process
    stopping ("the kernel restarted": a hand-over) or dying ("its process died")."""
    crashes: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """Starts in a row that ended with their process dying (a workflow that journals a
    step meanwhile starts counting again)."""
    crash_retries: int = Field(default=3, sa_column_kwargs={"server_default": "3"})
    """How many crashes in a row are followed by another start (`crash_retries=`)."""
    at_most_once: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    """Never started again after a start that may have run part of it (a crash, or a
    hand-over the action did not stop for): it fails instead (`at_most_once=True`)."""
    progress: str | None = None
    usage: str | None = None
    cost: float | None = None
    queue: str | None = Field(default=None, index=True)
    """The `rx.Queue` whose limits hold the run's start, if any."""
    partition: str | None = None
    """The partition key it was started with (`per_partition=` limits it)."""
    priority: int = Field(default=0, sa_column_kwargs={"server_default": "0"})
    """Higher starts first among due runs (`start(priority=...)`)."""
    paused: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    """A pause was requested (`rx.pause`) and no resume since."""
    signals: str | None = None
    """Control values sent to the run (`rx.signal`), a JSON object by name."""
    ties: int | None = None
    """Bits of the kinds of rows that point at the run (a child link, generations,
    messages: see `rxnb.execution._ties`), so that its end looks up only those; 0 from
    the start for a run `start` inserts. NULL (a row from before the column, a run
    inserted by hand or with plain SQL) looks up every kind."""
    forked_from: str | None = None
    """The run this one was forked from (`rx.fork`): the journal of that run up to the
    fork's step was copied into this one's, replayed rather than run again."""
    trace: str | None = None
    """With the `otel` extra: the W3C trace context (`traceparent`) of the span that
    started the run, so that the process executing it continues that trace."""

    def arguments(self) -> dict[str, Any]:
        """The arguments as a dict; ValueError if `args` is not a JSON object."""
        value = json.loads(self.args)
        if not isinstance(value, dict):
            raise ValueError(f"a JSON {type(value).__name__}, not an object")
        return value


class Owner(SQLModel, table=True):
    """A live executor: its process, its heartbeat and the functions it can run."""

    __tablename__ = "rx_owners"
    __table_args__ = own_table()

    id: str = Field(primary_key=True)
    host: str
    machine: str | None = None
    """Its kernel's boot id and pid namespace (Linux): whether its pid can be looked at."""
    pid: int
    pid_start: int | None = None
    """When its process started, in clock ticks since boot: a pid reused is told apart."""
    started_at: float
    heartbeat_at: float = Field(index=True)
    functions: str = "[]"
    stopping: str | None = None
    """Why it is handing its runs over (its process stopping): its runs still running
    when the process ends are queued again as hand-overs, not crashes."""


RUN_ENDED: list[Callable[[Any, Run], None]] = []
"""Called with (db, run) in the transaction that ends a run (a later layer's hook: the
workflows layer wakes a parent waiting for its child)."""

RUN_REQUEUED: list[Callable[[Any, Run, str], None]] = []
"""Called with (db, run, why) in the transaction that queues an interrupted run again
(a hand-over or a crash): the llm layer sets its generations' rows back to pending."""

PROGRESSED: list[Callable[[Any, Run], bool]] = []
"""Called with (db, run) when the run's owner died: whether the run made lasting
progress since it was started (the workflows layer: a step journaled), so that the
crash starts the count of crashes in a row again."""


def ended(db: Any, run: Run) -> None:
    """Tell the hooks that `run` has just ended, in the transaction that ended it."""
    for hook in RUN_ENDED:
        hook(db, run)


def requeued(db: Any, run: Run, why: str) -> None:
    """Tell the hooks that interrupted `run` is queued again, in that transaction."""
    for hook in RUN_REQUEUED:
        hook(db, run, why)


def progressed(db: Any, run: Run) -> bool:
    return any(hook(db, run) for hook in PROGRESSED)

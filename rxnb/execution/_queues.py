"""`rx.Queue`: limits on how many runs of a group start, shared by every process.

A queue's limits live in the store (`rx_queues`), so that every process sharing it
holds the same ones: at most `concurrency` of its runs running at once, at most
`per_partition` per partition key, at most `rate[0]` starts in any `rate[1]` seconds.
A run waiting for its queue stays `queued` and holds no thread: the claim passes it
over (`Gate`), and the scheduler wakes when one of the queue's runs stops running
(a write it sees) or at the rate's next start time (a time it waits for). A rate
spaces starts evenly: the queue's row keeps the next start time, which each claim
moves on (no count of past starts is read).

Claims of queued runs serialize on the queue's row (`SELECT ... FOR UPDATE` on
PostgreSQL, where claims run at READ COMMITTED: the counts read after the lock see
every claim committed before it; SQLite has one writer at a time).
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col

from rxnb.errors import ArgumentError
from rxnb.execution._model import Run, RunStatus
from rxnb.reactive import open_stores
from rxnb.store import Writer, own_table


class QueueLimits(SQLModel, table=True):
    """A queue's limits as every process sharing the store sees them (`rx.Queue`)."""

    __tablename__ = "rx_queues"
    __table_args__ = own_table()

    name: str = Field(primary_key=True)
    concurrency: int | None = None
    per_partition: int | None = None
    rate_count: int | None = None
    rate_seconds: float | None = None
    next_start_at: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    """With a rate: the earliest time its next run may start (starts are spaced
    `rate_seconds / rate_count` apart; each claim moves it on)."""
    updated_at: float = 0.0

    def describe(self) -> str:
        parts = []
        if self.concurrency is not None:
            parts.append(f"concurrency={self.concurrency}")
        if self.per_partition is not None:
            parts.append(f"per_partition={self.per_partition}")
        if self.rate_count is not None:
            parts.append(f"rate=({self.rate_count}, {self.rate_seconds:g})")
        return ", ".join(parts) or "no limits"


_DEFINED: dict[str, QueueLimits] = {}
"""The queues this process defined, by name: written to every store it opens."""


class Queue:
    """A named group of runs with limits on how many start, held across processes.

    ```python
    llm = rx.Queue("llm", concurrency=4, per_partition=1, rate=(60, 60.0))

    @rx.action(queue=llm)          # or queue="llm"
    def summarize(ctx, doc_id: int) -> str: ...

    summarize.start(doc_id=1, partition="user-7", priority=10)
    ```

    - `concurrency`: at most this many of its runs running at once, in all processes;
    - `per_partition`: at most this many running per `partition=` key given at start
      (runs started without a partition share none);
    - `rate=(n, seconds)`: at most `n` starts in any `seconds`, spaced evenly
      (`seconds / n` apart), as providers enforce per-minute limits over shorter
      spans too.

    Defining a queue again with other limits changes them for every process. Runs
    waiting for a queue stay `queued`, hold no thread, and say why in `rx.runs()`.
    """

    def __init__(
        self,
        name: str,
        *,
        concurrency: int | None = None,
        per_partition: int | None = None,
        rate: tuple[int, float] | None = None,
    ) -> None:
        if not isinstance(name, str) or not name.strip():  # type: ignore[redundant-expr]
            raise ArgumentError(f"rx.Queue: name it with a non-empty string, not {name!r}")
        _check_limit(name, "concurrency", concurrency)
        _check_limit(name, "per_partition", per_partition)
        count, seconds = _check_rate(name, rate)
        self.name = name
        self.limits = QueueLimits(
            name=name,
            concurrency=concurrency,
            per_partition=per_partition,
            rate_count=count,
            rate_seconds=seconds,
        )
        _DEFINED[name] = self.limits
        for store in open_stores():
            store.database.write(lambda db: save_queue(db, name))

    @property
    def concurrency(self) -> int | None:
        return self.limits.concurrency

    @property
    def per_partition(self) -> int | None:
        return self.limits.per_partition

    @property
    def rate(self) -> tuple[int, float] | None:
        if self.limits.rate_count is None or self.limits.rate_seconds is None:
            return None
        return (self.limits.rate_count, self.limits.rate_seconds)

    def __repr__(self) -> str:
        return f"rx.Queue({self.name!r}, {self.limits.describe()})"


def _check_limit(name: str, what: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ArgumentError(
            f"rx.Queue({name!r}, {what}={value!r}): use a whole number of runs, 1 or more "
            "(or leave it out for no limit)"
        )


def _check_rate(name: str, rate: Any) -> tuple[int | None, float | None]:
    if rate is None:
        return None, None
    ok = isinstance(rate, tuple | list) and len(rate) == 2
    count, seconds = rate if ok else (None, None)
    ok = (
        ok
        and isinstance(count, int)
        and not isinstance(count, bool)
        and count >= 1
        and isinstance(seconds, int | float)
        and not isinstance(seconds, bool)
        and math.isfinite(seconds)
        and seconds > 0
    )
    if not ok:
        raise ArgumentError(
            f"rx.Queue({name!r}, rate={rate!r}): give (starts, seconds), e.g. rate=(60, 60.0) "
            "for at most 60 starts a minute"
        )
    return int(count), float(seconds)  # type: ignore[arg-type]


def save_queue(db: Writer, name: str) -> None:
    """Write this process's definition of queue `name` to `db`'s store."""
    mine = _DEFINED[name]
    row = db.get(QueueLimits, name)
    if row is None:
        row = QueueLimits(name=name)
        db.add(row)
    row.concurrency, row.per_partition = mine.concurrency, mine.per_partition
    row.rate_count, row.rate_seconds = mine.rate_count, mine.rate_seconds
    row.updated_at = time.time()


def save_defined(store: Any) -> None:
    """Write every queue this process defined to `store` (opened after they were)."""
    if _DEFINED:

        def write(db: Writer) -> None:
            for name in list(_DEFINED):
                save_queue(db, name)

        store.database.write(write)


def queue_name(queue: Any, where: str) -> str | None:
    """The name of `queue=` (a `rx.Queue`, its name, or None)."""
    if queue is None or (isinstance(queue, str) and queue):
        return queue
    if isinstance(queue, Queue):
        return queue.name
    raise ArgumentError(f"{where}: queue= takes an rx.Queue or its name, not {queue!r}")


def require_queue(db: Writer, name: str, function: str) -> None:
    """ArgumentError unless queue `name` is defined (here or in the store)."""
    if db.get(QueueLimits, name) is not None:
        return
    if name in _DEFINED:
        save_queue(db, name)
        return
    raise ArgumentError(
        f"`{function}` runs on queue {name!r}, which is not defined: define it first, e.g. "
        f"rx.Queue({name!r}, concurrency=4)"
    )


@dataclass
class Limits:
    """A queue's limits as one claim reads them (its `rx_queues` row)."""

    name: str
    concurrency: int | None
    per_partition: int | None
    rate_count: int | None
    rate_seconds: float | None
    next_start_at: float


_STATE = (
    sa.text(
        "SELECT q.name, q.concurrency, q.per_partition, q.rate_count, q.rate_seconds, "
        "q.next_start_at, r.partition, count(r.id) AS running FROM rx_queues q "
        "LEFT JOIN rx_runs r ON r.queue = q.name AND r.status = :running "
        "WHERE q.name IN :names GROUP BY q.name, r.partition"
    )
    .bindparams(sa.bindparam("names", expanding=True))
    .columns(sa.column("name"))
)
"""Queues' limits and their running runs by partition, in one statement. Textual:
claims run it for every queued run, and building and compiling the same select each
time cost twice as much as running it (`bench/flow.py`, F1). A textual *select*
(`.columns`) is a read to the store's write tracking, not a write to every table."""

_LOCK = (
    sa.text("SELECT name FROM rx_queues WHERE name IN :names ORDER BY name FOR UPDATE")
    .bindparams(sa.bindparam("names", expanding=True))
    .columns(sa.column("name"))
)

_MOVE = (
    sa.update(QueueLimits.__table__)  # type: ignore[attr-defined]
    .where(sa.column("name") == sa.bindparam("queue"))
    .values(next_start_at=sa.bindparam("at"))
)


@dataclass
class Gate:
    """What the queues' limits allow now: the queues and partitions that are full,
    and counts to admit more runs against (one claim transaction's view)."""

    now: float
    limits: dict[str, Limits] = field(default_factory=dict)
    running: dict[str, int] = field(default_factory=dict)
    partitions: dict[tuple[str, str], int] = field(default_factory=dict)
    loaded: set[str] = field(default_factory=set)
    moved: set[str] = field(default_factory=set)
    """Queues whose next start time this claim moved (`save` writes them)."""

    @classmethod
    def load(cls, db: Any, names: Iterable[str], now: float, lock: bool) -> Gate:
        """The state of queues `names`; `lock` (a claim) locks their rows first."""
        gate = cls(now)
        gate.add(db, names, lock)
        return gate

    def add(self, db: Any, names: Iterable[str], lock: bool) -> None:
        """Load the state of those of queues `names` not loaded yet."""
        wanted = sorted(set(names) - self.loaded)
        if not wanted:
            return
        self.loaded.update(wanted)
        connection = db.connection()
        if lock and connection.dialect.name != "sqlite":  # SQLite has one writer already
            connection.execute(_LOCK, {"names": wanted}).all()
        found = connection.execute(
            _STATE, {"names": wanted, "running": RunStatus.RUNNING.value}
        ).all()
        for name, concurrency, per, count, seconds, next_at, partition, running in found:
            self.limits[name] = Limits(name, concurrency, per, count, seconds, next_at or 0.0)
            self.running[name] = self.running.get(name, 0) + running
            if partition is not None:
                self.partitions[(name, partition)] = running

    def save(self, db: Any) -> None:
        """Write the next start times this claim moved (`take`)."""
        for name in self.moved:
            db.connection().execute(_MOVE, {"at": self.limits[name].next_start_at, "queue": name})

    def why_not(self, queue: str | None, partition: str | None) -> str | None:
        """Why a run of `queue` (and `partition`) cannot start now; None if it can."""
        row = self.limits.get(queue) if queue is not None else None
        if row is None:
            return None
        name = row.name
        running = self.running.get(name, 0)
        if row.concurrency is not None and running >= row.concurrency:
            return f"queue {name}: {running}/{row.concurrency} running"
        if row.rate_count is not None and row.next_start_at > self.now:
            return f"queue {name}: rate {row.rate_count} per {row.rate_seconds:g} s"
        if row.per_partition is not None and partition is not None:
            busy = self.partitions.get((name, partition), 0)
            if busy >= row.per_partition:
                return f"queue {queue}: partition {partition} busy"
        return None

    def reopens(self) -> dict[str, float]:
        """When each queue held back by its rate alone may start a run next."""
        return {
            name: row.next_start_at
            for name, row in self.limits.items()
            if row.rate_count is not None
            and row.next_start_at > self.now
            and (row.concurrency is None or self.running.get(name, 0) < row.concurrency)
        }

    def take(self, queue: str | None, partition: str | None) -> None:
        """Count a run of `queue` (and `partition`) admitted (a claim: the queue's
        next start time moves on, written with the claim)."""
        row = self.limits.get(queue) if queue is not None else None
        if row is None:
            return
        name = row.name
        self.running[name] = self.running.get(name, 0) + 1
        if row.rate_count is not None and row.rate_seconds is not None:
            spacing = row.rate_seconds / row.rate_count
            row.next_start_at = max(self.now, row.next_start_at) + spacing
            self.moved.add(name)
        if partition is not None:
            key = (name, partition)
            self.partitions[key] = self.partitions.get(key, 0) + 1

    def exclusions(self) -> list[Any]:
        """SQL conditions that pass over runs which cannot start now."""
        full = [q for q in self.limits if self.why_not(q, None) is not None]
        out: list[Any] = []
        if full:
            out.append(sa.or_(col(Run.queue).is_(None), col(Run.queue).not_in(full)))
        busy: dict[str, list[str]] = {}
        for (queue, partition), count in self.partitions.items():
            per = self.limits[queue].per_partition
            if queue not in full and per is not None and count >= per:
                busy.setdefault(queue, []).append(partition)
        for queue, partitions in busy.items():
            out.append(
                sa.not_(
                    sa.and_(
                        col(Run.queue) == queue,
                        sa.func.coalesce(Run.partition, "").in_(partitions),
                    )
                )
            )
        return out


def waits(db: Any, runs: Sequence[Run], now: float) -> dict[str, str]:
    """Why each queued run of `runs` that is held by its queue waits, by run id."""
    held = [r for r in runs if r.queue is not None and r.status == RunStatus.QUEUED.value]
    if not held:
        return {}
    gate = Gate.load(db, {r.queue for r in held if r.queue}, now, lock=False)
    out = {}
    for run in held:
        why = gate.why_not(run.queue, run.partition) if run.due_at <= now else None
        if why is not None:
            out[run.id] = why
    return out

"""Retention: finished runs, and what is stored with them, deleted once old enough.

`rx.retention(days=7)` stores the setting in the store (`rx_maintenance`), so every
process sharing it agrees; with no setting, everything is kept (the default: rxnb
cannot know what a notebook's history is worth to its owner). A pass (`rx.prune()`,
or each store's background thread: shortly after the store opens or the setting is
made, then every `PRUNE_EVERY` seconds) applies these rules, cited by number:

1. A run is deleted only if it finished (succeeded, failed, cancelled: `TERMINAL`)
   and its `finished_at` is older than the retention. A run queued, running,
   sleeping, waiting or paused is never touched, however old.
2. A run linked to a parent run (a child workflow, `rx_children`) is kept while its
   parent run exists: a parent replaying its child step reads the child's row. Once
   the parent is deleted, the child follows in a later batch of the same pass.
3. Rows keyed by a run id in the tables registered with `delete_with_runs` (the
   workflow journal, events and child links, the generations) are deleted with their
   run, in the same transaction: none is left pointing at a run that is gone.
4. Runs go in batches of `BATCH`, one short transaction each, so that writers of
   other processes wait at most one batch.
5. One process at a time: a pass takes a lease (the `retention` row of
   `rx_maintenance`, written in a write transaction, expiring after `LEASE_SECONDS`
   and renewed by every batch); a process that finds it held by another skips the
   pass. A holder that died mid-pass leaves a lease that expires.
6. Not deleted: agent threads and messages (what people wrote and read; a message's
   `run_id` may then name a run that is gone), the results people compare and score
   (`rx.llm.compare`'s columns, `rx.evals` results, `%%ai` cells), the rows of user
   tables, a cron's
   row (its `last_run_id` may then be gone: its next tick fires), and the change log,
   which each store's change feed trims by itself to what other processes may still
   read (`RXNB_CHANGE_RETENTION`, 10 minutes; a process away longer re-runs all).
7. Every pass, the background one too whether a retention is set or not, also runs
   the `PASS_TASKS` (`rx.files` deletes the files no row names any more).

Space freed by deletes is reused by the database; `store.vacuum()` gives it back.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from rxnb.errors import ArgumentError, StoreClosedError
from rxnb.execution._model import TERMINAL, Run
from rxnb.reactive import Store, current_store, on_open
from rxnb.store import Writer, own_table

log = logging.getLogger("rxnb.execution")

BATCH: Final = 500
"""Runs deleted per transaction (rule 4)."""
LEASE_SECONDS = 300.0
"""How long a pass's lease lasts unless a batch renews it (rule 5)."""
PRUNE_EVERY = float(os.environ.get("RXNB_PRUNE_EVERY", "3600"))
"""Seconds between background passes of one store."""
FIRST_DELAY = float(os.environ.get("RXNB_PRUNE_DELAY", "30"))
"""Seconds from a store's opening (or a new setting) to its first background pass."""
DAY: Final = 86400.0
LEASE: Final = "retention"

FINISHED: Final = sorted(s.value for s in TERMINAL)

RUN_KEYED: list[sa.Column[Any]] = []
"""Columns naming a run whose rows are deleted with it (rule 3); a later layer's
registration (`delete_with_runs`), since this layer does not import those tables."""
PARENT_LINKS: list[tuple[sa.Column[Any], sa.Column[Any]]] = []
"""(child, parent) columns of tables linking a run to its parent run (rule 2)."""
PASS_TASKS: list[Callable[[Store], dict[str, int]]] = []
"""Other housekeeping run by every pass, retention set or not (a later module's
registration: `rx.files` collects unreferenced files); each returns rows deleted."""


def delete_with_runs(*columns: Any) -> None:
    """Rows whose `column` names a pruned run are deleted with it (rule 3)."""
    for column in columns:
        if not any(column is c for c in RUN_KEYED):
            RUN_KEYED.append(column)


def keep_while_parent(child: Any, parent: Any) -> None:
    """A run named by `child` is kept while the run its row's `parent` names exists."""
    if not any(child is c for c, _ in PARENT_LINKS):
        PARENT_LINKS.append((child, parent))


class Maintenance(SQLModel, table=True):
    """One housekeeping task of the store: its setting, and who is doing it now."""

    __tablename__ = "rx_maintenance"
    __table_args__ = own_table()

    name: str = Field(primary_key=True)
    """The task: `retention`."""
    settings: str = "{}"
    """JSON: `{"days": 7}`; no `days`: keep everything."""
    holder: str | None = None
    """The process whose pass holds the lease (rule 5), until `lease_until`."""
    lease_until: float = 0.0
    last_pass_at: float | None = None
    """When the last pass ended."""
    last_deleted: str | None = None
    """JSON: rows the last pass deleted, per table."""


@dataclass(frozen=True)
class Retention:
    """What the store keeps: finished runs for `days` days (None: everything)."""

    days: float | None


@dataclass(frozen=True)
class Pruned:
    """What one pass did: rows deleted per table, in how many batches (transactions),
    and why it did nothing, or stopped early (`skipped`)."""

    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    skipped: str | None = None

    @property
    def runs(self) -> int:
        return self.deleted.get(Run.__tablename__, 0)


_UNSET: Any = object()


def retention(days: float | None = _UNSET, *, store: Store | None = None) -> Retention:
    """What the store keeps of finished runs; with `days`, set it for every process.

    `rx.retention(days=7)` deletes finished runs (and their journals, events and
    generations) 7 days after they finished; `days=None` keeps everything (the
    default). A pass runs in the background shortly after, then every hour; call
    `rx.prune()` to run one now.
    """
    checked = None if days is _UNSET else _check_days(days, "rx.retention")
    target = store or current_store()
    if days is _UNSET:
        return read_retention(target)
    settings = json.dumps({} if checked is None else {"days": checked})

    def put(db: Writer) -> None:
        row = db.get(Maintenance, LEASE) or Maintenance(name=LEASE)
        row.settings = settings
        db.add(row)

    target.database.write(put)
    pruner = _pruners.get(target)
    if pruner is not None and checked is not None:
        pruner.soon()
    return Retention(checked)


def read_retention(store: Store) -> Retention:
    row = store.database.read(lambda db: db.get(Maintenance, LEASE))[0]
    days = json.loads(row.settings).get("days") if row is not None else None
    return Retention(float(days) if days is not None else None)


def prune(*, days: float | None = None, batch: int = BATCH, store: Store | None = None) -> Pruned:
    """Run one retention pass now (see the rules of this module); what it deleted.

    It applies the store's `rx.retention`, or `days` if given (for this pass only).
    With neither, or while another process is pruning, it deletes nothing and says
    why in `skipped`.
    """
    days = _check_days(days, "rx.prune")
    if type(batch) is not int or batch < 1:  # a bool is an int, but not a batch size
        raise ArgumentError(f"rx.prune(batch={batch!r}): batch must be a whole number >= 1")
    target = store or current_store()
    days = days if days is not None else read_retention(target).days
    if days is None:
        return Pruned(skipped="no retention is set; call rx.retention(days=...) first")
    return prune_store(target, days, batch)


def _check_days(days: Any, where: str) -> float | None:
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, (int, float)):
        raise ArgumentError(
            f"{where}(days={days!r}): days must be a number of days (e.g. days=7), "
            f"not {type(days).__name__}; days=None keeps everything"
        )
    if not math.isfinite(days) or days <= 0:
        raise ArgumentError(
            f"{where}(days={days!r}): days must be a positive, finite number of days "
            "(e.g. days=7 or days=0.5); days=None keeps everything"
        )
    return float(days)


def prune_store(
    store: Store, days: float, batch: int = BATCH, stop: threading.Event | None = None
) -> Pruned:
    """One pass over `store` deleting runs finished more than `days` days ago."""
    database = store.database
    holder = f"pid {os.getpid()} on {socket.gethostname()} ({database.origin[:8]})"
    cutoff = time.time() - days * DAY
    with _pass_lock(store):  # this process's passes of one store take turns
        other = database.write(lambda db: _take_lease(db, holder))
        if other is not None:  # rule 5
            return Pruned(skipped=f"another process is pruning this store: {other}")
        deleted = dict.fromkeys([Run.__tablename__, *_keyed_tables()], 0)
        batches = 0
        lost = None
        try:
            while stop is None or not stop.is_set():
                counts = database.write(lambda db: _delete_batch(db, holder, cutoff, batch))
                if counts is None:
                    lost = "its lease expired and another process took it over"
                    break
                if not counts[Run.__tablename__]:
                    break
                batches += 1
                for table, n in counts.items():
                    deleted[table] = deleted.get(table, 0) + n
        finally:
            if not database.closed:
                database.write(lambda db: _release(db, holder, deleted))
    if batches:
        log.info("rxnb: retention deleted %s in %d batches", deleted, batches)
    for table, n in run_tasks(store).items():
        if n:  # a table that a task found nothing in is not listed
            deleted[table] = deleted.get(table, 0) + n
    return Pruned(deleted, batches, lost)


def run_tasks(store: Store) -> dict[str, int]:
    """Run the `PASS_TASKS`; rows each deleted, per table."""
    deleted: dict[str, int] = {}
    for task in list(PASS_TASKS):
        for table, n in task(store).items():
            deleted[table] = deleted.get(table, 0) + n
    return deleted


def _keyed_tables() -> list[str]:
    return list(dict.fromkeys(c.table.name for c in RUN_KEYED))


def _take_lease(db: Writer, holder: str) -> str | None:
    """Rule 5: take the lease, or return who holds it."""
    now = time.time()
    row = db.get(Maintenance, LEASE)
    if row is None:
        row = Maintenance(name=LEASE)
    elif row.holder not in (None, holder) and row.lease_until > now:
        return row.holder
    row.holder, row.lease_until = holder, now + LEASE_SECONDS
    db.add(row)
    return None


def _release(db: Writer, holder: str, deleted: dict[str, int]) -> None:
    row = db.get(Maintenance, LEASE)
    if row is None or row.holder != holder:
        return
    row.holder, row.lease_until = None, 0.0
    row.last_pass_at, row.last_deleted = time.time(), json.dumps(deleted)


def _delete_batch(db: Writer, holder: str, cutoff: float, limit: int) -> dict[str, int] | None:
    """One batch (rule 4), in one transaction: rows deleted per table, or None if the
    lease is no longer this pass's."""
    lease = db.get(Maintenance, LEASE)
    if lease is None or lease.holder != holder:
        return None
    lease.lease_until = time.time() + LEASE_SECONDS
    runs = Run.__table__  # type: ignore[attr-defined]
    finished = sa.and_(runs.c.status.in_(FINISHED), runs.c.finished_at < cutoff)  # rule 1
    query = sa.select(runs.c.id).where(finished)
    for child, parent in PARENT_LINKS:  # rule 2
        parent_run = runs.alias("parent_run")
        query = query.where(
            ~sa.exists().where(child == runs.c.id).where(parent_run.c.id == parent).correlate(runs)
        )
    ids = list(db.execute(query.limit(limit)).scalars())
    counts = {Run.__tablename__: 0}
    if not ids:
        return counts
    for column in RUN_KEYED:  # rule 3
        name = column.table.name
        result = db.execute(sa.delete(column.table).where(column.in_(ids)))
        counts[name] = counts.get(name, 0) + max(result.rowcount, 0)  # type: ignore[attr-defined]
    # The same conditions again: a belt to the braces of the query above.
    result = db.execute(sa.delete(runs).where(runs.c.id.in_(ids), finished))
    counts[Run.__tablename__] = max(result.rowcount, 0)  # type: ignore[attr-defined]
    return counts


_locks_guard = threading.Lock()
_locks: dict[int, threading.Lock] = {}


def _pass_lock(store: Store) -> threading.Lock:
    with _locks_guard:
        return _locks.setdefault(id(store.database), threading.Lock())


class Pruner:
    """A store's background retention: a light thread that runs a pass shortly after
    the store opens with a retention set (or one is set here), then every
    `PRUNE_EVERY` seconds; stopped when the store closes."""

    def __init__(self, store: Store) -> None:
        self._store = store
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._next = time.monotonic() + PRUNE_EVERY
        self._thread = threading.Thread(target=self._loop, name="rxnb-retention", daemon=True)
        self._thread.start()

    def soon(self) -> None:
        """Run a pass `FIRST_DELAY` seconds from now (a retention was just set)."""
        self._next = min(self._next, time.monotonic() + FIRST_DELAY)
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def _loop(self) -> None:
        try:
            if read_retention(self._store).days is not None:
                self.soon()
        except Exception:  # the store closing as it opens; or read at the next pass
            if self._stop.is_set():
                return
        while True:
            self._wake.wait(max(0.0, self._next - time.monotonic()))
            if self._stop.is_set():
                return
            if self._wake.is_set():
                self._wake.clear()
                continue  # `_next` moved: wait for it
            self._next = time.monotonic() + PRUNE_EVERY
            try:
                days = read_retention(self._store).days
                if days is not None:
                    prune_store(self._store, days, stop=self._stop)
                else:
                    run_tasks(self._store)
            except StoreClosedError:
                return
            except Exception:
                if self._stop.is_set():
                    return
                log.exception("rxnb: a retention pass of %r failed; next in an hour", self._store)


_pruners: dict[Store, Pruner] = {}


def _start_pruner(store: Store) -> None:
    pruner = Pruner(store)
    _pruners[store] = pruner

    def stop() -> None:
        _pruners.pop(store, None)
        pruner.stop()
        with _locks_guard:
            _locks.pop(id(store.database), None)

    store.add_close_callback(stop)


on_open(_start_pruner)

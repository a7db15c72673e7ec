"""`@rx.cron`: actions started on a schedule, one run per tick across all processes.

A cron is an @rx.action plus a row of `rx_crons` (its schedule and next tick). Every
process that defines the cron and has the store open runs a `CronTimer` for that
store, and each timer fires due ticks; a tick is one write transaction (`tick`), so of
processes racing for the same tick one wins and the others find it taken.
"""

from __future__ import annotations

import datetime as dt
import inspect
import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlmodel import Field, SQLModel, select

from rxnb.errors import FunctionError
from rxnb.execution import _clock as clock
from rxnb.execution._actions import Action, insert_run
from rxnb.execution._arguments import encode_args
from rxnb.execution._context import ActionContext
from rxnb.execution._cron_parse import CronSchedule, IntervalSchedule, Schedule, parse_schedule
from rxnb.execution._executor import executor_for
from rxnb.execution._model import TERMINAL, Run
from rxnb.functions import registry
from rxnb.reactive import Store, current_store, on_open, open_stores
from rxnb.store import EVERYTHING, Write, Writer, own_table

log = logging.getLogger("rxnb.crons")

P = ParamSpec("P")
R = TypeVar("R")

MAX_WAIT = 60.0
"""Longest a timer sleeps without looking at the store: its sleep runs on the monotonic
clock, which stands still while a laptop is suspended, so a tick is never later than
this after the wall clock reached it."""


class Cron(SQLModel, table=True):
    """A cron's schedule and where it is: one row per cron, named like its action.

    The row is shared by every process that defines the cron; a process that does not
    define it never fires it (its code is not there), whatever the row says."""

    __tablename__ = "rx_crons"
    __table_args__ = own_table()

    name: str = Field(primary_key=True)
    """The action's registered name, `module.qualname`."""
    schedule: str
    """A cron string ("*/5 * * * *") or an interval ("every 300s")."""
    tz: str = "UTC"
    next_at: float
    """The next tick, epoch seconds: the first process to see it come fires it."""
    last_tick_at: float | None = None
    """When the last tick that started a run was due."""
    last_run_id: str | None = None
    """The run the last tick started: while it is unfinished, ticks are skipped."""
    skipped: int = 0
    """Ticks skipped because the run before was still unfinished."""
    last_skipped_at: float | None = None
    created_at: float
    updated_at: float


@dataclass(frozen=True)
class CronInfo:
    """One cron as `rx.crons()` lists it."""

    name: str
    schedule: str
    tz: str
    next_time: dt.datetime
    """The next tick, in the cron's timezone."""
    last_run_id: str | None
    last_status: str | None
    """The status of the last run a tick started (None: none yet, or it was deleted)."""
    skipped: int
    last_skipped_time: dt.datetime | None
    defined_here: bool
    """Whether this process defines it (and so fires its ticks while the store is open)."""


class CronAction(Action[P, R]):
    """An @rx.action started by its schedule (`@rx.cron`); `start()` still works."""

    kind = "cron"

    def __init__(
        self, fn: Callable[Concatenate[ActionContext, P], R], schedule: Schedule, **options: Any
    ) -> None:
        self.schedule = schedule
        _check_no_arguments(fn)
        super().__init__(fn, **options)
        _define(self)

    def __repr__(self) -> str:
        return f"<rx.cron {self.name} {self.schedule.text} {self.schedule.tz}>"

    def remove(self) -> bool:
        """Stop this cron (`rx.remove_cron`): whether the current store had it."""
        return remove_cron(self)


def _check_no_arguments(fn: Callable[..., Any]) -> None:
    """A tick passes no arguments: every parameter after `ctx` needs a default."""
    try:
        after_ctx = list(inspect.signature(fn).parameters.values())[1:]
    except (TypeError, ValueError):
        return  # not a function: Action says so
    required = [
        p.name
        for p in after_ctx
        if p.default is p.empty and p.kind not in (p.VAR_POSITIONAL, p.VAR_KEYWORD)
    ]
    if required:
        name = getattr(fn, "__name__", "f")
        raise FunctionError(
            f"cron `{name}` is started with no arguments, but `{required[0]}` has no "
            f"default; give it one, or take ctx alone: `def {name}(ctx: rx.ActionContext)`"
        )


def tick(db: Writer, cron: CronAction[Any, Any]) -> float | None:
    """Fire `cron`'s tick if it is due, in `db`'s transaction; its next tick after (None
    if its row is gone: removed).

    1. a tick fires once: it moves `next_at` past now in the same transaction, and
       missed ticks (nobody ran) are not replayed, one run stands for them all;
    2. a tick while the run the last one started is unfinished is skipped, and counted;
    3. the stored schedule rules: the last definition written wins in every process.
    """
    row = db.get(Cron, cron.name)
    if row is None:
        return None
    now = clock.now()
    if row.next_at > now:
        return row.next_at
    due = row.next_at
    row.next_at = parse_schedule(row.schedule, row.tz).next_after(now)  # rules 1 and 3
    row.updated_at = now
    last = db.get(Run, row.last_run_id) if row.last_run_id else None
    if last is not None and last.status not in TERMINAL:  # rule 2
        row.skipped += 1
        row.last_skipped_at = now
        log.info(
            "rxnb: cron %s skipped a tick: run %s is still %s", cron.name, last.id, last.status
        )
    else:
        row.last_run_id = insert_run(db, cron, encode_args(cron.name, {}), now, None)
        row.last_tick_at = due
    db.add(row)
    return row.next_at


def _upsert(db: Writer, cron: CronAction[Any, Any]) -> None:
    """Write `cron`'s definition: a new schedule replaces the stored one and starts from
    the next tick after now; the same schedule keeps its next tick (a restarted worker
    does not move it)."""
    now = clock.now()
    text, tz = cron.schedule.text, cron.schedule.tz
    row = db.get(Cron, cron.name)
    if row is None:
        row = Cron(
            name=cron.name, schedule=text, tz=tz, next_at=0.0, created_at=now, updated_at=now
        )
    elif row.schedule == text and row.tz == tz:
        return
    row.schedule, row.tz, row.updated_at = text, tz, now
    row.next_at = cron.schedule.next_after(now)
    db.add(row)


class CronTimer:
    """Fires the ticks of the crons this process defines, for one store.

    Responsibilities:
    1. keep this process's crons' rows written (`define`) and forget crons removed,
       here or in another process (their row is gone);
    2. sleep until the earliest next tick (never polling on an interval), waking when a
       cron is defined here or any process writes `rx_crons`;
    3. fire each due tick in its own transaction (`tick`).
    """

    def __init__(self, store: Store) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._crons: dict[str, CronAction[Any, Any]] = {}
        self._wake = threading.Event()
        self.stopped = threading.Event()
        store.add_write_listener(self._on_writes)
        store.add_close_callback(self.stop)
        self._thread = threading.Thread(target=self._loop, name="rxnb-crons", daemon=True)
        self._thread.start()

    def define(self, cron: CronAction[Any, Any]) -> None:
        """Fire `cron`'s ticks from now on (its latest definition); write its row."""
        self.store.database.write(lambda db: _upsert(db, cron))
        executor_for(self.store).register(cron)  # runs are claimed where ticks fire
        with self._lock:
            self._crons[cron.name] = cron
        self._wake.set()

    def forget(self, name: str) -> bool:
        """Fire no more ticks of `name` here; whether it was defined."""
        with self._lock:
            known = self._crons.pop(name, None) is not None
        self._wake.set()
        return known

    def names(self) -> set[str]:
        with self._lock:
            return set(self._crons)

    def stop(self) -> None:
        self.stopped.set()
        self._wake.set()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(5.0)

    def _on_writes(self, writes: Sequence[Write]) -> None:
        if any(w.table in (Cron.__tablename__, EVERYTHING) for w in writes):
            self._wake.set()

    def _loop(self) -> None:
        while not self.stopped.is_set():
            self._wake.clear()
            try:
                wait = self._fire_due()
            except Exception:
                if self.stopped.is_set() or self.store.closed:
                    return
                log.exception("rxnb: the cron timer failed; retrying in 1 s")
                wait = 1.0
            self._wake.wait(wait)

    def _fire_due(self) -> float | None:
        """Fire the due ticks; seconds until the next one (None: no cron here)."""
        with self._lock:
            crons = dict(self._crons)
        if not crons:
            return None
        names = list(crons)
        rows = self.store.database.read(
            lambda db: dict(
                db.exec(select(Cron.name, Cron.next_at).where(Cron.name.in_(names))).all()  # type: ignore[attr-defined]
            )
        )[0]
        earliest: float | None = None
        for name, cron in crons.items():
            next_at: float | None = rows.get(name)
            if next_at is not None and _superseded(cron):
                remove_cron(cron, store=self.store)  # the cell now defines a plain action
                continue
            if next_at is not None and next_at <= clock.now() and not self.stopped.is_set():
                next_at = self.store.database.write(lambda db, c=cron: tick(db, c))  # type: ignore[misc]
            if next_at is None:  # removed by another process: stop firing it here too
                self._forget_if(name, cron)
                continue
            earliest = next_at if earliest is None else min(earliest, next_at)
        if earliest is None:
            return None
        return min(MAX_WAIT, max(0.0, earliest - clock.now()))

    def _forget_if(self, name: str, cron: CronAction[Any, Any]) -> None:
        """Forget `name` unless it was defined again meanwhile (a new row is coming)."""
        with self._lock:
            if self._crons.get(name) is cron:
                del self._crons[name]


def _superseded(cron: CronAction[Any, Any]) -> bool:
    """Whether the cron's name now belongs to a function that is not a cron (its cell
    was re-run without `@rx.cron`): removing the definition stops it."""
    latest = registry.get(cron.name)
    return latest is not None and not isinstance(latest, CronAction)


_lock = threading.Lock()
_defined: dict[str, CronAction[Any, Any]] = {}
"""The crons this process defines, by name: each open store's timer fires them."""


def timer_for(store: Store) -> CronTimer:
    """The store's cron timer in this process, started on first use."""
    with _lock:
        timer: CronTimer | None = getattr(store, "_rx_cron_timer", None)
        if timer is None:
            timer = CronTimer(store)
            store._rx_cron_timer = timer  # type: ignore[attr-defined]
    return timer


def _define(cron: CronAction[Any, Any]) -> None:
    """Defined (or redefined) after rx.open(): the stores an action is registered with
    (the current one, and any with a timer already) fire it from now on."""
    with _lock:
        _defined[cron.name] = cron
    stores = open_stores()
    for store in stores:
        if getattr(store, "_rx_cron_timer", None) is not None or store is stores[-1]:
            timer_for(store).define(cron)


def _store_opened(store: Store) -> None:
    """A store opened after crons were defined fires them too (an `rxnb worker`)."""
    with _lock:
        crons = list(_defined.values())
    for cron in crons:
        timer_for(store).define(cron)


on_open(_store_opened)


def remove_cron(cron: str | Action[..., Any], *, store: Store | None = None) -> bool:
    """Stop cron `cron` (an action or its name): this process fires it no more, and its
    row is deleted from `store` (the current one), so no process does. A run it started
    goes on. Whether the store had it. Defining it again starts it again."""
    name = cron if isinstance(cron, str) else cron.name
    target = store or current_store()
    with _lock:
        _defined.pop(name, None)
    for each in open_stores():
        timer: CronTimer | None = getattr(each, "_rx_cron_timer", None)
        if timer is not None:
            timer.forget(name)

    def delete(db: Writer) -> bool:
        row = db.get(Cron, name)
        if row is not None:
            db.delete(row)
        return row is not None

    return bool(target.database.write(delete))


def crons(*, store: Store | None = None) -> list[CronInfo]:
    """The store's crons (defined by any process), by name: schedule, next tick, last
    run and its status, ticks skipped while it still ran."""
    target = store or current_store()

    def read(db: Any) -> list[tuple[Cron, str | None]]:
        rows = db.exec(select(Cron).order_by(Cron.name)).all()
        ids = [r.last_run_id for r in rows if r.last_run_id]
        ran = select(Run.id, Run.status).where(Run.id.in_(ids))  # type: ignore[attr-defined]
        found = db.exec(ran).all() if ids else []
        status = dict(found)
        return [(r, status.get(r.last_run_id)) for r in rows]

    here: set[str] = set()
    timer: CronTimer | None = getattr(target, "_rx_cron_timer", None)
    if timer is not None:
        here = timer.names()
    listed = []
    for row, last_status in target.database.read(read)[0]:
        zone = _zone(row.tz)
        listed.append(
            CronInfo(
                name=row.name,
                schedule=row.schedule,
                tz=row.tz,
                next_time=dt.datetime.fromtimestamp(row.next_at, zone),
                last_run_id=row.last_run_id,
                last_status=last_status,
                skipped=row.skipped,
                last_skipped_time=(
                    None
                    if row.last_skipped_at is None
                    else dt.datetime.fromtimestamp(row.last_skipped_at, zone)
                ),
                defined_here=row.name in here,
            )
        )
    return listed


def _zone(name: str) -> dt.tzinfo:
    try:
        return CronSchedule("* * * * *", name).zone
    except FunctionError:  # a zone this machine lacks: show UTC rather than fail
        return dt.timezone.utc


def cron(
    schedule: str | None = None,
    *,
    every: dt.timedelta | float | None = None,
    tz: str | None = None,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    crash_retries: int | None = None,
    at_most_once: bool = False,
) -> Callable[[Callable[..., Any]], CronAction[Any, Any]]:
    """Declare an action started on a schedule: `@rx.cron("*/5 * * * *")` (a 5-field
    cron string, in UTC or `tz="Europe/Paris"`) or `@rx.cron(every=timedelta(minutes=5))`
    (or seconds; ticks fall on whole multiples of it since the epoch).

    Every process that defines it and has the store open fires its ticks, and each tick
    starts exactly one run across them all; a tick that comes while the run before
    still runs is skipped (counted in `rx.crons()`). Ticks missed while no process ran
    are not replayed: one run stands for them. `retries=`, `backoff=`, `timeout=`,
    `crash_retries=`, `at_most_once=` are @rx.action's. `f.remove()` (or
    `rx.remove_cron(f)`) stops it; redefining it with another schedule replaces it.
    """
    if callable(schedule):
        raise FunctionError(
            "@rx.cron needs a schedule: @rx.cron('*/5 * * * *') or "
            "@rx.cron(every=timedelta(minutes=5))"
        )
    parsed: Schedule
    if (schedule is None) == (every is None):
        raise FunctionError(
            f"@rx.cron takes a cron string or every=, not {'both' if every else 'neither'}; "
            "use e.g. @rx.cron('*/5 * * * *') or @rx.cron(every=timedelta(minutes=5))"
        )
    if every is not None:
        if tz is not None:
            raise FunctionError(
                f"@rx.cron(every=..., tz={tz!r}): an interval counts seconds and has no "
                "timezone; use a cron string for wall-clock times, e.g. "
                f"@rx.cron('0 9 * * *', tz={tz!r})"
            )
        seconds = every.total_seconds() if isinstance(every, dt.timedelta) else every
        if isinstance(seconds, bool) or not isinstance(seconds, (int, float)):
            raise FunctionError(
                f"@rx.cron(every={every!r}): give a timedelta or a number of seconds"
            )
        parsed = IntervalSchedule(float(seconds))
    else:
        if not isinstance(schedule, str):
            raise FunctionError(
                f"@rx.cron({schedule!r}): a cron string is a str, e.g. '*/5 * * * *'"
            )
        parsed = CronSchedule(schedule, tz or "UTC")
    options = {
        "retries": retries,
        "backoff": backoff,
        "timeout": timeout,
        "crash_retries": crash_retries,
        "at_most_once": at_most_once,
    }

    def wrap(fn: Callable[..., Any]) -> CronAction[Any, Any]:
        return CronAction(fn, parsed, **options)

    return wrap

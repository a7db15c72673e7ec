"""`Executor`: the one pool per store and process that claims and runs queued runs."""

from __future__ import annotations

import functools
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from sqlmodel import func, select

from rxnb.errors import StoreUnavailableError
from rxnb.execution import _clock as clock
from rxnb.execution._context import TIMED_OUT, ActionContext
from rxnb.execution._heartbeat import Heartbeat
from rxnb.execution._model import Owner, Run
from rxnb.execution._outcome import describe, outcome
from rxnb.execution._owners import HOST, delete_owner
from rxnb.execution._transitions import (
    CLAIMABLE,
    claim,
    due_exists,
    fail_now,
    finish,
    requested_cancels,
    unclaim,
)
from rxnb.reactive import Store
from rxnb.store import EVERYTHING, RowWrite, Write, Writer

if TYPE_CHECKING:
    from rxnb.execution._actions import Action

log = logging.getLogger("rxnb.runs")

STOPPED = "the executor stopped"
"""The reason given to runs still going when their executor stops (see `Executor.stop`)."""

MAX_WAIT = 3600.0
"""Longest the scheduler sleeps before looking at the queue again."""


def worker_count() -> int:
    return max(1, int(os.environ.get("RXNB_WORKERS", "8")))


class Executor:
    """Runs the actions of one store in this process.

    Responsibilities:
    1. claim due queued runs of the functions this process has registered, as many
       as it has free slots in one write transaction, so that processes sharing a
       store share one queue and each run is claimed once;
    2. run them on a bounded thread pool (`RXNB_WORKERS`, default 8);
    3. wake when a write to `rx_runs` (here or in another process, through the change
       feed) may have left it work, and at the next due time exactly; never poll on a
       fixed interval;
    4. heartbeat (`Heartbeat`): renew its owner row every second, and recover orphans:
       running runs whose owner's heartbeat is older than the lease, or whose owner on
       this host has exited, are queued again if they have attempts left, else failed
       ("owner process died"; a run whose executor stopped, its store closed, says so);
    5. pass cancel requests to the runs it is running;
    6. give back to the queue runs recorded as claimed here that it is not running
       (a claim that committed while its connection broke), and keep the outcome of a
       run until the database, away for a while, takes it.
    """

    def __init__(self, store: Store, workers: int | None = None) -> None:
        self.store = store
        self.id = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers = workers or worker_count()
        self.claims = os.environ.get("RXNB_EXECUTE", "1") != "0"
        """False (RXNB_EXECUTE=0): this process queues runs but leaves them to workers."""
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        """Notified each time a run of this executor has ended and been recorded."""
        self._wake = threading.Event()
        self.stopped = threading.Event()
        self._functions: dict[str, Action[Any, Any]] = {}
        self._running: dict[str, tuple[ActionContext, int]] = {}
        self.claiming = threading.Lock()
        """Held from a claim's write until its runs are in `_running`: rule 6 looks for
        lost claims only between claims, never at runs claimed but not yet started."""
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rxnb-run")
        now = time.time()
        owner = Owner(id=self.id, host=HOST, pid=os.getpid(), started_at=now, heartbeat_at=now)
        store.database.write(lambda db: db.add(owner))
        store.add_write_listener(self._on_writes)
        store.add_close_callback(self.stop)
        self._scheduler = threading.Thread(
            target=self._schedule_loop, name="rxnb-scheduler", daemon=True
        )
        self.heartbeat = Heartbeat(self)
        self.recover_orphans()
        self._scheduler.start()
        self.heartbeat.start()

    # -- registration and wake-ups ------------------------------------------------------

    def register(self, action: Action[Any, Any]) -> None:
        """Claim runs of `action` from now on (its latest definition runs)."""
        with self._lock:
            known = action.name in self._functions
            self._functions[action.name] = action
            names = sorted(self._functions)
        if not known:
            self.heartbeat.write_owner(functions=names)
        self._wake.set()

    def functions(self) -> list[str]:
        with self._lock:
            return sorted(self._functions)

    def running_ids(self) -> set[str]:
        """The runs this executor is running now."""
        with self._lock:
            return set(self._running)

    def wake(self) -> None:
        """Look at the queue again now (after the due-time clock moved, say)."""
        self._wake.set()

    def recover_orphans(self, leases: bool = True) -> int:
        """Recover runs whose owner is gone (rule 4); how many were recovered."""
        return self.heartbeat.recover_orphans(leases)

    def _on_writes(self, writes: Sequence[Write]) -> None:
        if any(self._may_give_work(w) for w in writes):
            self._wake.set()

    def _may_give_work(self, write: Write) -> bool:
        """Whether `write` may leave the scheduler something to do: a claimable run of
        a function registered here (rule 1), or a cancel of a run running here (rule
        5). Other owners' claims, progress and ends wake nothing: with several
        processes on one store they are most writes, and each wake costs reads."""
        if write.table == EVERYTHING:
            return True
        if write.table != Run.__tablename__:
            return False
        if not isinstance(write, RowWrite):
            return True  # a statement on rx_runs: any row may have changed
        new = write.new
        if new is None:
            return False  # a deleted run leaves nothing to do
        # An image lacking a value (too large to log) counts as a match.
        status, function = new.get("status"), new.get("function")
        claimable = not isinstance(status, str) or status in CLAIMABLE
        with self._lock:
            if claimable and (not isinstance(function, str) or function in self._functions):
                return True
            running = bool(write.key) and write.key[0] in self._running
        return running and new.get("cancel_requested") is not False

    def stop(self, timeout: float = 5.0) -> None:
        """Stop claiming, and give the runs in progress `timeout` seconds to end and be
        recorded (a worker stopped by SIGTERM finishes its short runs rather than
        leaving them to be failed or run again). Longer ones are asked to stop (their
        pool threads would otherwise hold the process open at exit) and are abandoned
        to orphan recovery."""
        if self.stopped.is_set():
            return
        self.stopped.set()
        self._wake.set()
        deadline = time.monotonic() + timeout
        if self._scheduler.is_alive() and threading.current_thread() is not self._scheduler:
            self._scheduler.join(timeout)  # no claim can race the pool's shutdown
        if not getattr(_current, "executing", False):  # an action closing its own store
            with self._ended:
                self._ended.wait_for(
                    lambda: not self._running, max(0.0, deadline - time.monotonic())
                )
        with self._lock:
            abandoned = [ctx for ctx, _ in self._running.values()]
        for ctx in abandoned:
            ctx._request_cancel(STOPPED)
        self._pool.shutdown(wait=False, cancel_futures=True)
        if not self.store.closed:
            try:
                self.store.database.write(lambda db: delete_owner(db, self.id))
            except Exception:
                log.exception("rxnb: could not remove owner %s", self.id)

    # -- the scheduler thread -----------------------------------------------------------

    def _schedule_loop(self) -> None:
        while not self.stopped.is_set():
            self._wake.clear()
            try:
                self._deliver_cancels()
                look_first = True  # after a claim, more are likely due: claim straight away
                while self._free_slots() > 0 and self._start_some(look_first):
                    look_first = False
                next_due = self._next_due() if self._free_slots() > 0 else None
            except Exception:
                if self.stopped.is_set() or self.store.closed:
                    return
                log.exception("rxnb: the run scheduler failed; retrying in 1 s")
                next_due = clock.now() + 1.0
            # A run due in years (or at a time no clock can wait for) is looked at again
            # within the hour: waits are capped, so none can overflow the platform timer.
            timeout = None if next_due is None else min(MAX_WAIT, max(0.0, next_due - clock.now()))
            self._wake.wait(timeout)

    def _free_slots(self) -> int:
        with self._lock:
            return self.workers - len(self._running)

    def _start_some(self, look_first: bool = True) -> bool:
        """Claim as many due runs as there are free slots, in one transaction (one
        commit and one notification for a burst, not one per run), and start them."""
        names = self.functions() if self.claims else []
        if not names or self.stopped.is_set():
            return False
        # A read first: a wake-up often finds nothing due here (another owner claimed
        # it first), and a read takes no write lock.
        if look_first and not self.store.database.read(lambda db: due_exists(db, names))[0]:
            return False
        with self.claiming:
            return self._claim_and_start(names)

    def _claim_and_start(self, names: list[str]) -> bool:
        """The claim of `_start_some` and the start of its runs (under `claiming`)."""
        slots = max(1, self._free_slots())
        claimed = self.store.database.write(lambda db: claim(db, names, self.id, slots), claim=True)
        for i, (run_id, function, args, attempt) in enumerate(claimed):
            with self._lock:
                action = self._functions[function]
            ctx = action.context(self.store, run_id, attempt)
            with self._lock:
                self._running[run_id] = (ctx, attempt)
            try:
                self._pool.submit(self._execute, action, ctx, args)
            except RuntimeError:  # the interpreter is exiting: give the runs back, untouched
                with self._lock:
                    self._running.pop(run_id, None)
                self.stopped.set()
                for back_id, _, _, back_attempt in claimed[i:]:
                    self.store.database.write(
                        functools.partial(
                            unclaim, run_id=back_id, owner=self.id, attempt=back_attempt
                        )
                    )
                return False
        return bool(claimed)

    def _next_due(self) -> float | None:
        names = self.functions() if self.claims else []
        if not names:
            return None

        def earliest(db: Any) -> float | None:
            value = db.exec(
                select(func.min(Run.due_at)).where(
                    Run.status.in_(CLAIMABLE),  # type: ignore[attr-defined]
                    Run.function.in_(names),  # type: ignore[attr-defined]
                )
            ).one()
            return float(value) if value is not None else None

        return self.store.database.read(earliest)[0]

    def _deliver_cancels(self) -> None:
        mine = list(self.running_ids())
        if not mine:
            return
        for run_id in self.store.database.read(lambda db: requested_cancels(db, mine))[0]:
            with self._lock:
                entry = self._running.get(run_id)
            if entry is not None:
                entry[0]._request_cancel("the run was cancelled")

    # -- running one run (pool threads) ---------------------------------------------------

    def _execute(self, action: Action[Any, Any], ctx: ActionContext, args: dict[str, Any]) -> None:
        _current.executing = True
        timer = None
        if action.timeout is not None:
            timer = threading.Timer(action.timeout, self._time_out, (ctx, action.timeout))
            timer.daemon = True
            timer.start()
        try:
            ended = outcome(action, ctx, args)
            if timer is not None:
                timer.cancel()
            if ended[0] == "cancelled" and ctx._reason == STOPPED:
                return  # not a user's cancel: the run is left to orphan recovery
            try:
                self._record(lambda db: finish(db, ctx, self.id, action, ended))
            except Exception as exc:
                if self.store.closed:
                    log.info("rxnb: run %s ended after its store closed", ctx.run_id)
                    return
                # e.g. a result json cannot write (an int of 5,000 digits): fail it
                failed = ("final", f"could not store the outcome: {describe(exc)}")
                self.store.database.write(lambda db: finish(db, ctx, self.id, action, failed))
        except Exception:
            log.exception("rxnb: could not record the end of run %s", ctx.run_id)
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._running.pop(ctx.run_id or "", None)
                self._ended.notify_all()
            self._wake.set()

    def _record(self, fn: Callable[[Writer], None]) -> None:
        """Write a run's end, waiting out a database that is away (rule 6): a run
        that did its work is not run again for want of a connection."""
        while True:
            try:
                self.store.database.write(fn)
                return
            except StoreUnavailableError:
                if self.store.closed or self.stopped.is_set():
                    raise
                log.warning("rxnb: still waiting for the database to record a run's end")

    def _time_out(self, ctx: ActionContext, seconds: float) -> None:
        """The action overran `timeout=`: ask it to stop, and fail the run now (its slot
        stays taken until the body returns; a thread cannot be stopped from outside)."""
        reason = f"{TIMED_OUT} after {seconds:g} s"
        ctx._request_cancel(reason)
        try:
            self.store.database.write(lambda db: fail_now(db, ctx, self.id, reason))
        except Exception:
            log.exception("rxnb: could not record the timeout of run %s", ctx.run_id)


_current = threading.local()
"""`executing` is true on a pool thread (see `Executor.stop`)."""

_executors_lock = threading.Lock()


def executor_for(store: Store) -> Executor:
    """The store's executor in this process, started on first use (one per store)."""
    with _executors_lock:
        executor: Executor | None = getattr(store, "_rx_executor", None)
        if executor is None:
            executor = Executor(store)
            store._rx_executor = executor  # type: ignore[attr-defined]
    return executor

"""`Executor`: the one pool per store and process that claims and runs queued runs."""

from __future__ import annotations

import contextlib
import functools
import logging
import math
import os
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from rxnb.errors import RxnbError, StoreUnavailableError
from rxnb.execution import _clock as clock
from rxnb.execution import _lifecycle as lifecycle
from rxnb.execution._context import TIMED_OUT, ActionContext
from rxnb.execution._failures import Failure
from rxnb.execution._heartbeat import Heartbeat
from rxnb.execution._model import Owner, Run, RunStatus
from rxnb.execution._outcome import outcome
from rxnb.execution._owners import HOST, new_owner
from rxnb.execution._transitions import (
    CLAIMABLE,
    claim,
    controls,
    due_exists,
    fail_now,
    finish,
    finish_untied,
    hand_back,
    next_due,
    unclaim,
)
from rxnb.execution.hooks import RUN_EXECUTING, executing
from rxnb.reactive import Store
from rxnb.store import EVERYTHING, RowWrite, Write, Writer

if TYPE_CHECKING:
    from rxnb.execution._actions import Action

log = logging.getLogger("rxnb.runs")

CLOSED = "its store was closed"
"""Why runs are handed over when their store is closed (`Executor.stop`'s default)."""


def handover_seconds() -> float:
    """How long a stopping executor waits for its actions to stop (RXNB_HANDOVER_SECONDS):
    well within the 5 s Jupyter gives a kernel to shut down before killing it."""
    text = os.environ.get("RXNB_HANDOVER_SECONDS", "1")
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 <= value <= MAX_HANDOVER:
        raise RxnbError(
            f"RXNB_HANDOVER_SECONDS={text!r}: set it to the seconds a stopping process waits "
            f"for its actions to stop, from 0 to {MAX_HANDOVER:g} (1 by default)"
        )
    return value


MAX_HANDOVER = 60.0
"""A kernel has 5 s to shut down; a worker may be given longer, not unbounded."""


MAX_WAIT = 3600.0
"""Longest the scheduler sleeps before looking at the queue again."""
CONTROLS_EVERY = 1.0
"""Seconds between two looks at the controls of the runs running here when no write
said one changed: a cancel that lands while its run is claimed but not yet in
`_running`, or one written with plain SQL, is seen by the next look."""


_DUE_NOW = object()
"""`_may_give_work`: a run this process queued, due now and claimable here."""


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
    5. pass cancel, pause and resume requests to the runs it is running;
    6. give back to the queue runs recorded as claimed here that it is not running
       (a claim that committed while its connection broke), and keep the outcome of a
       run until the database, away for a while, takes it;
    7. hand over when it stops (its store closed, its process stopping: see
       `rxnb.execution._lifecycle`): stop claiming, ask its actions to stop at their
       next check (`ctx.handing_over`), and queue their runs again without spending
       an attempt; runs that do not stop in time are handed over when the process
       ends (`Owner.stopping`), never counted as crashes.
    """

    def __init__(self, store: Store, workers: int | None = None) -> None:
        self.store = store
        self.id = f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.workers = workers or worker_count()
        self.grace = handover_seconds()  # a misspelt setting fails here, not at exit
        self.claims = os.environ.get("RXNB_EXECUTE", "1") != "0"
        """False (RXNB_EXECUTE=0): this process queues runs but leaves them to workers."""
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)
        """Notified each time a run of this executor has ended and been recorded."""
        self._wake = threading.Event()
        self._seen_all = False
        """The last look at the queue saw every due run (it did not stop for want of a
        free slot), and no write, registration or `wake()` has come since: a run ending
        here then leaves nothing new to claim (only a due time can)."""
        self._controls_due = False
        """A write may have cancelled, paused or resumed a run running here."""
        self._due_here = False
        """A commit of this process queued a run that is due and claimable here: the
        next look claims at once, without reading first whether one is due."""
        self._next_known: float | None = None
        self._next_stale = 1
        """`_next_due`'s last answer, and whether it must be read again (non-zero: a
        count of what made it stale, so that a read that raced one is not kept)."""
        self._next_lock = threading.Lock()
        self._controls_next = 0.0
        self.stopped = threading.Event()
        self._stop_lock = threading.Lock()
        self._sign_lock = threading.Lock()
        self._left_at_sign_off: int | None = None
        """Runs still running here when a stopping executor signed off (None: not yet)."""
        self._ends: list[_End] = []
        """Ends waiting to be recorded together (`_record_end`)."""
        self._ends_writing = False
        self._ends_done = threading.Condition(threading.Lock())
        """Notified each time a batch of ends has been recorded (or given back)."""
        self._functions: dict[str, Action[Any, Any]] = {}
        self._running: dict[str, tuple[ActionContext, int]] = {}
        self.claiming = threading.Lock()
        """Held from a claim's write until its runs are in `_running`: rule 6 looks for
        lost claims only between claims, never at runs claimed but not yet started."""
        self._pool = ThreadPoolExecutor(self.workers, thread_name_prefix="rxnb-run")
        now = time.time()
        owner = new_owner(self.id, now)
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
        lifecycle.watch(self)

    # -- registration and wake-ups ------------------------------------------------------

    def register(self, action: Action[Any, Any]) -> None:
        """Claim runs of `action` from now on (its latest definition runs)."""
        with self._lock:
            known = action.name in self._functions
            self._functions[action.name] = action
            names = sorted(self._functions)
        if not known:  # its runs may be waiting: look (a new definition changes none)
            self.heartbeat.write_owner(functions=names)
            self._seen_all = False
            self._stale_next()
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
        self._seen_all = False
        self._stale_next()
        self._wake.set()

    def wait_idle(self, timeout: float | None = None) -> bool:
        """Wait until no run is running here; whether none is."""
        with self._ended:
            return self._ended.wait_for(lambda: not self._running, timeout)

    def recover_orphans(self, leases: bool = True) -> int:
        """Recover runs whose owner is gone (rule 4); how many were recovered."""
        return self.heartbeat.recover_orphans(leases)

    def _on_writes(self, writes: Sequence[Write]) -> None:
        # Every write is looked at (no short cut): each control among them is noted.
        gives = [self._may_give_work(w) for w in writes]
        if any(gives):
            self._seen_all = False
            if any(give is not _DUE_NOW for give in gives):
                self._stale_next()  # a run queued due now leaves the next due time
            self._wake.set()

    def _may_give_work(self, write: Write) -> bool | object:
        """Whether `write` may leave the scheduler something to do: a claimable run of
        a function registered here (rule 1), or a cancel of a run running here (rule
        5). Other owners' claims, progress and ends wake nothing: with several
        processes on one store they are most writes, and each wake costs reads. A
        write that may control a run here sets `_controls_due`: the scheduler reads
        the controls of its runs only then, or every `CONTROLS_EVERY` seconds."""
        if write.table == EVERYTHING:
            self._controls_due = True
            return True
        if write.table != Run.__tablename__:
            return False
        if not isinstance(write, RowWrite):
            self._controls_due = True
            return True  # a statement on rx_runs: any row may have changed
        new = write.new
        if new is None:
            return False  # a deleted run leaves nothing to do
        # An image lacking a value (too large to log) counts as a match.
        status, function = new.get("status"), new.get("function")
        claimable = not isinstance(status, str) or status in CLAIMABLE
        if new.get("queue") is not None and status != RunStatus.RUNNING.value:
            return True  # a run of a queue stopped running: its queue may take another
        with self._lock:
            if claimable and (not isinstance(function, str) or function in self._functions):
                due_at = new.get("due_at")
                if (
                    isinstance(due_at, float)
                    and due_at <= clock.now()
                    and new.get("queue") is None
                    and not self.store.from_elsewhere()  # another process may claim it first
                ):
                    self._due_here = True
                    return _DUE_NOW
                return True
            entry = self._running.get(write.key[0]) if write.key else None
        if entry is None:
            return False
        # A cancel, a pause or a resume of a run running here (not its own progress).
        if new.get("cancel_requested") is not False or new.get("paused") != entry[0]._paused:
            self._controls_due = True
            return True
        return False

    def stop(self, reason: str = CLOSED, grace: float | None = None) -> None:
        """Hand over (rule 7) because of `reason` ("the kernel restarted"): stop
        claiming, ask the runs in progress to stop for a hand-over, and give them
        `grace` seconds (`handover_seconds()`) to stop, or to end, and be recorded.
        Those still running then are left to be handed over when this process ends
        (the owner row says it is stopping, and why); with none left, the owner row
        goes."""
        with self._stop_lock:
            if self.stopped.is_set():
                return
            self.stopped.set()
        self._wake.set()
        deadline = time.monotonic() + (self.grace if grace is None else grace)
        if self._scheduler.is_alive() and threading.current_thread() is not self._scheduler:
            self._scheduler.join(max(0.0, deadline - time.monotonic()))  # no claim races it
        with self._lock:
            running = [ctx for ctx, _ in self._running.values()]
        for ctx in running:
            ctx._request_handover(reason)
        mine = getattr(_current, "ctx", None)  # an action closing its own store
        with self._ended:
            self._ended.wait_for(
                lambda: not (set(self._running) - {getattr(mine, "run_id", None)}),
                max(0.0, deadline - time.monotonic()),
            )
        self._pool.shutdown(wait=False, cancel_futures=True)
        self.heartbeat.join(max(0.1, deadline - time.monotonic()))  # it re-adds the owner row
        self._sign_off(reason)

    def _sign_off(self, reason: str) -> None:
        """Remove the owner row, or, with runs still running here, say why it stops
        (a run that ends later removes it then: `_signed_off_last`)."""
        if self.store.closed:
            return
        with self._sign_lock:
            with self._lock:
                left = len(self._running)

            def write(db: Writer) -> None:
                owner = db.get(Owner, self.id)
                if owner is not None and left:
                    owner.stopping = reason
                elif owner is not None:
                    db.delete(owner)

            try:
                self.store.database.write(write)
                self._left_at_sign_off = left
            except Exception:
                log.exception("rxnb: could not record that %s stopped", self.id)

    def _signed_off_last(self) -> None:
        """The last run of an executor that signed off with runs left has ended: its
        owner row goes (best effort: orphan recovery removes it otherwise)."""
        with self._sign_lock:
            if not self._left_at_sign_off or self.store.closed:
                return
            with contextlib.suppress(Exception):
                self.store.database.write(lambda db: _delete_owner(db, self.id))
                self._left_at_sign_off = 0

    # -- the scheduler thread -----------------------------------------------------------

    def _schedule_loop(self) -> None:
        look_at_queue, next_due = True, None
        while not self.stopped.is_set():
            self._wake.clear()
            try:
                if self._controls_due or time.monotonic() >= self._controls_next:
                    self._controls_due = False  # before the read: a later write sets it again
                    self._controls_next = time.monotonic() + CONTROLS_EVERY
                    self._deliver_controls()
                if look_at_queue:
                    self._seen_all = True  # before the reads: a later write clears it
                    # After a claim, more are likely due: claim at once. So too when this
                    # process just queued a due run (the read first spares the write lock
                    # a wake-up that finds nothing due, as when another owner took it).
                    look_first = not self._due_here
                    self._due_here = False
                    while True:
                        if self._free_slots() <= 0:
                            self._seen_all = False  # stopped for want of a slot
                            break
                        if not self._start_some(look_first):
                            break
                        look_first = False
                    next_due = self._next_due() if self._free_slots() > 0 else None
            except Exception:
                if self.stopped.is_set() or self.store.closed:
                    return
                log.exception("rxnb: the run scheduler failed; retrying in 1 s")
                next_due = clock.now() + 1.0
            # A run due in years (or at a time no clock can wait for) is looked at again
            # within the hour: waits are capped, so none can overflow the platform timer.
            due_in = None if next_due is None else min(MAX_WAIT, max(0.0, next_due - clock.now()))
            timeout = due_in
            if self._free_slots() < self.workers:  # runs here: the next look at their controls
                until_controls = max(0.0, self._controls_next - time.monotonic())
                timeout = until_controls if timeout is None else min(timeout, until_controls)
            # Only a write, a run ending here or the next due time can change what the
            # queue holds: a wake-up for the controls alone reads nothing else, nor does
            # a run ending here when the last look saw every due run (`_seen_all`).
            woken = self._wake.wait(timeout)
            due = due_in is not None and timeout == due_in
            look_at_queue = due or (woken and not self._seen_all)

    def _free_slots(self) -> int:
        with self._lock:
            return self.workers - len(self._running)

    def _start_some(self, look_first: bool = True) -> bool:
        """Claim as many due runs as there are free slots, in one transaction (one
        commit and one notification for a burst, not one per run), and start them;
        whether more may be due (the claim filled every slot it had)."""
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
        """The claim of `_start_some` and the start of its runs (under `claiming`);
        whether more may be due. A claim that saw fewer due runs than slots saw the
        whole queue: claiming again at once would find none (a run queued since wakes
        the scheduler again)."""
        slots = max(1, self._free_slots())
        claimed, more = self.store.database.write(
            lambda db: claim(db, names, self.id, slots), claim=True
        )
        for i, (run_id, function, args, attempt, tied) in enumerate(claimed):
            with self._lock:
                action = self._functions[function]
            ctx = action.context(self.store, run_id, attempt)
            ctx._tied = tied
            with self._lock:
                self._running[run_id] = (ctx, attempt)
            try:
                self._pool.submit(self._execute, action, ctx, args)
            except RuntimeError:  # the interpreter is exiting: give the runs back, untouched
                with self._lock:
                    self._running.pop(run_id, None)
                self.stopped.set()
                for back_id, _, _, back_attempt, _ in claimed[i:]:
                    self.store.database.write(
                        functools.partial(
                            unclaim, run_id=back_id, owner=self.id, attempt=back_attempt
                        )
                    )
                return False
        return more

    def _next_due(self) -> float | None:
        """When a run may next be due here. Read again only when a write or a new
        function may have changed it, or once it has come: claims take only runs due
        by now, and a run queued here due now is claimed, not waited for."""
        known = self._next_known
        if not self._next_stale and (known is None or known > clock.now()):
            return known
        names = self.functions() if self.claims else []
        if not names:
            return None
        stale = self._next_stale
        found = self.store.database.read(lambda db: next_due(db, names))[0]
        with self._next_lock:
            if self._next_stale == stale:  # nothing made it stale while it was read
                self._next_known, self._next_stale = found, 0
        return found

    def _stale_next(self) -> None:
        with self._next_lock:
            self._next_stale += 1

    def _deliver_controls(self) -> None:
        """Pass cancel, pause and resume requests to the runs running here (rule 5)."""
        mine = list(self.running_ids())
        if not mine:
            return
        for run_id, cancel, paused in self.store.database.read(lambda db: controls(db, mine))[0]:
            with self._lock:
                entry = self._running.get(run_id)
            if entry is None:
                continue
            if cancel:
                entry[0]._request_cancel("the run was cancelled")
            entry[0]._set_paused(paused)

    # -- running one run (pool threads) ---------------------------------------------------

    def _execute(self, action: Action[Any, Any], ctx: ActionContext, args: dict[str, Any]) -> None:
        _current.ctx = ctx
        timer = None
        if action.timeout is not None:
            timer = threading.Timer(action.timeout, self._time_out, (ctx, action.timeout))
            timer.daemon = True
            timer.start()
        try:
            ended = (
                outcome(action, ctx, args) if not RUN_EXECUTING else executing(action, ctx, args)
            )
            if timer is not None:
                timer.cancel()
            why = ctx._handover if ctx._cancel.is_set() else None
            cut_short = ended[0] == "returned" and ctx._saw_stop
            if why is not None and (ended[0] not in ("returned", "parked") or cut_short):
                # Stopped for the hand-over (returning early once it saw it, or raising),
                # or broken by it (a library shutting down with the process): not the
                # action's failure, nor a user's cancel, nor its result.
                self._record(lambda db: hand_back(db, ctx, self.id, why))
                return
            try:
                self._record_end(ctx, action, ended)
            except Exception as exc:
                if self.store.closed:
                    log.info("rxnb: run %s ended after its store closed", ctx.run_id)
                    return
                # e.g. a result json cannot write (an int of 5,000 digits): fail it
                failed = ("final", Failure.of(exc, "could not store the outcome: "))
                self.store.database.write(lambda db: finish(db, ctx, self.id, action, failed))
        except Exception:
            if self.store.closed:  # recovery hands it over: its owner row says why it stopped
                log.info("rxnb: run %s stopped after its store closed", ctx.run_id)
            else:
                log.exception("rxnb: could not record the end of run %s", ctx.run_id)
        finally:
            if timer is not None:
                timer.cancel()
            with self._lock:
                self._running.pop(ctx.run_id or "", None)
                self._ended.notify_all()
                last = self.stopped.is_set() and not self._running
            self._wake.set()
            if last:
                self._signed_off_last()

    def _record_end(
        self, ctx: ActionContext, action: Action[Any, Any], ended: tuple[str, Any]
    ) -> None:
        """Record how a run ended. Ends that change no row but their run's own are
        written together (group commit): the first pool thread to arrive writes every
        end waiting then in one transaction at READ COMMITTED, each run's row locked,
        and the others wait for it, so that a burst of short runs costs a few commits,
        not one each. An end the batch leaves (rows point at its run) or cannot write (an
        outcome that cannot be stored) is recorded alone, serializable; so is, at once,
        the end of a run that rows pointed at when it was claimed (a batch would leave
        it: an agent's turn, a chat reply)."""
        if ctx._tied:
            self._record(lambda db: finish(db, ctx, self.id, action, ended))
            return
        end = _End(ctx, action, ended)
        with self._ends_done:
            self._ends.append(end)
            while end.left is None and self._ends_writing:
                self._ends_done.wait()
            batch: list[_End] = []
            if end.left is None:
                self._ends_writing = True
                batch, self._ends = self._ends, []
        if batch:
            self._write_ends(batch)
        if end.left:
            self._record(lambda db: finish(db, ctx, self.id, action, ended))

    def _write_ends(self, batch: list[_End]) -> None:
        """One transaction of `_record_end` for `batch`; each end learns whether it is
        `left` to record alone."""
        ends = [(end.ctx, end.action, end.ended) for end in batch]
        left: set[int] = set(range(len(batch)))
        try:
            written: list[list[int]] = []
            self._record(lambda db: written.append(finish_untied(db, ends, self.id)), claim=True)
            left = set(written[-1])
        except Exception:  # each is tried alone, to fail (or wait) on its own
            log.debug("rxnb: %d run ends could not be recorded together", len(batch), exc_info=True)
        finally:
            with self._ends_done:
                for i, end in enumerate(batch):
                    end.left = i in left
                self._ends_writing = False
                self._ends_done.notify_all()

    def _record(self, fn: Callable[[Writer], None], claim: bool = False) -> None:
        """Write a run's end, waiting out a database that is away (rule 6): a run
        that did its work is not run again for want of a connection."""
        while True:
            try:
                self.store.database.write(fn, claim=claim)
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


class _End:
    """A run's end waiting in `Executor._record_end`."""

    __slots__ = ("action", "ctx", "ended", "left")

    def __init__(self, ctx: ActionContext, action: Action[Any, Any], ended: tuple[str, Any]):
        self.ctx, self.action, self.ended = ctx, action, ended
        self.left: bool | None = None
        """None while waiting; then False (recorded with others) or True (record it alone)."""


def _delete_owner(db: Writer, owner_id: str) -> None:
    owner = db.get(Owner, owner_id)
    if owner is not None:
        db.delete(owner)


_current = threading.local()
"""`ctx` is the context of the run a pool thread runs (see `Executor.stop`)."""

_executors_lock = threading.Lock()


def executor_for(store: Store) -> Executor:
    """The store's executor in this process, started on first use (one per store)."""
    with _executors_lock:
        executor: Executor | None = getattr(store, "_rx_executor", None)
        if executor is None:
            executor = Executor(store)
            store._rx_executor = executor  # type: ignore[attr-defined]
    return executor

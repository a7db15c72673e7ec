"""`ActionContext`: what an action receives, to use the store and see cancellation."""

from __future__ import annotations

import json
import threading
import time
from typing import TYPE_CHECKING, Any

from rxnb.errors import Cancelled
from rxnb.reactive import to_jsonable

if TYPE_CHECKING:
    from rxnb.reactive import Store


TIMED_OUT = "timed out"
"""How the reason of a run stopped for overrunning its `timeout=` begins."""


class Parked(BaseException):
    """Raised inside a run to give its thread back until `due_at` (a workflow's durable
    sleep or wait): the executor records the run as `status` (sleeping or waiting), due
    at `due_at`, and any executor resumes it then. A BaseException, so that user code's
    `except Exception` cannot swallow it."""

    def __init__(self, status: str, due_at: float) -> None:
        super().__init__(f"parked ({status}) until {due_at}")
        self.status, self.due_at = status, due_at


class ActionContext:
    """The first argument of every @rx.action.

    - `ctx.query(fn, **args)` / `ctx.mutation(fn, **args)` run store functions against
      the run's store;
    - `ctx.cancelled` tells whether a cancel was requested; `ctx.check_cancelled()`
      raises `rx.Cancelled` (a BaseException) if so;
    - `ctx.progress(done, total, message)` records progress on the run, which every
      view of the run shows;
    - `ctx.run_id` is the run's id (None when the action is called inline);
    - `ctx.handing_over` says why the run is being handed over (its process is
      stopping: `ctx.cancelled` is true too, and the run is queued again, not
      cancelled), else None;
    - a paused run (`rx.pause`) waits at its next `check_cancelled()`, `wait()` or
      `progress()` until it is resumed (or cancelled); `ctx.paused` tells;
    - `ctx.signal(name, default)` reads a control value sent with `rx.signal`.
    """

    def __init__(self, store: Store, run_id: str | None, attempt: int = 1) -> None:
        self.store = store
        self.run_id = run_id
        self.attempt = attempt
        self._cancel = threading.Event()
        self._reason = ""
        self._handover: str | None = None
        self._saw_stop = False
        """Whether the action looked at a stop request once there was one (a hand-over
        it saw and returned from was cut short: its result is not taken)."""
        self._last_progress = 0.0
        self._tied = False
        """Whether rows pointed at the run when it was claimed (`Run.ties`): its end is
        then recorded alone, not tried in a batch first (`Executor._record_end`)."""
        self._paused = False
        self._go = threading.Event()
        """Set unless paused (and set on a stop request, to release a paused wait)."""
        self._go.set()

    @property
    def cancelled(self) -> bool:
        return self._saw(self._cancel.is_set())

    def _saw(self, stopped: bool) -> bool:
        self._saw_stop = self._saw_stop or stopped
        return stopped

    @property
    def timed_out(self) -> str | None:
        """Why the run was stopped, if it overran its action's `timeout=` (the run then
        fails, rather than being cancelled); else None."""
        reason = self._reason if self._cancel.is_set() else ""
        return reason if reason.startswith(TIMED_OUT) else None

    @property
    def handing_over(self) -> str | None:
        """Why the run is being handed over to another start (its process is stopping:
        "the kernel restarted", "the worker stopped"), else None. The action is asked
        to stop as for a cancel; the run is then queued again, its attempt not spent."""
        return self._handover if self._saw(self._cancel.is_set()) else None

    def check_cancelled(self) -> None:
        """Raise `rx.Cancelled` if the run was cancelled (or timed out); wait first
        while the run is paused."""
        self.wait_while_paused()
        if self._saw(self._cancel.is_set()):
            raise Cancelled(self._reason or "the run was cancelled")

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on cancel; True if cancelled. A paused
        run waits until it is resumed first."""
        self.wait_while_paused()
        return self._saw(self._cancel.wait(seconds))

    def wait_for_stop(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on a stop request (cancel, timeout,
        hand-over); True if one came. Unlike `wait`, a pause does not hold it: for
        rxnb's own waits (a rate limit's) inside code that handles pauses itself."""
        return self._saw(self._cancel.wait(seconds))

    @property
    def paused(self) -> bool:
        """Whether the run is paused (`rx.pause`), with no resume since."""
        return self._paused and not self._cancel.is_set()

    def wait_while_paused(self) -> bool:
        """If the run is paused: block until it is resumed or stopped (cancelled,
        handed over); whether it waited. A workflow parks instead (between steps)."""
        return self.hold_while_paused()

    def hold_while_paused(self) -> bool:
        """Block while the run is paused, holding the thread, whatever the kind of run
        (a generation in a workflow's step waits here); whether it waited."""
        if self._go.is_set():
            return False
        self._go.wait()
        return True

    def signal(self, name: str, default: Any = None) -> Any:
        """The latest value sent to this run as `name` with `rx.signal`, else `default`
        (read from the store at each call: any process may send one)."""
        if self.run_id is None:
            return default
        from rxnb.execution._model import Run

        run_id = self.run_id
        row = self.store.database.read(lambda db: db.get(Run, run_id))[0]
        values = json.loads(row.signals) if row is not None and row.signals else {}
        return values.get(name, default)

    def _set_paused(self, paused: bool) -> None:
        self._paused = paused
        if paused and not self._cancel.is_set():
            self._go.clear()
        else:
            self._go.set()

    def query(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self.store.call(fn, *args, **kwargs)

    def mutation(self, fn: Any, /, *args: Any, **kwargs: Any) -> Any:
        return self.store.call(fn, *args, **kwargs)

    def progress(
        self,
        done: float | None = None,
        total: float | None = None,
        message: str | None = None,
    ) -> None:
        """Record progress on the run (a store write, so every view sees it); wait
        there while the run is paused."""
        if self.run_id is None:
            return
        self.wait_while_paused()
        value = to_jsonable(
            {"done": done, "total": total, "message": message, "at": time.time()},
            where="ctx.progress",
        )
        from rxnb.execution._model import Run

        run_id = self.run_id

        def write(db: Any) -> None:
            run = db.get(Run, run_id)
            if run is not None:
                run.progress = json.dumps(value)

        self.store.database.write(write)

    def _request_cancel(self, reason: str) -> None:
        self._reason = self._reason or reason
        self._cancel.set()
        self._go.set()  # a paused wait ends: the run stops

    def _request_handover(self, reason: str) -> None:
        """Ask the action to stop for a hand-over (see `handing_over`)."""
        if not self._cancel.is_set():
            self._handover = reason
        self._request_cancel(f"handed over: {reason}")

    def __repr__(self) -> str:
        return f"<rx.ActionContext run {self.run_id} attempt {self.attempt}>"

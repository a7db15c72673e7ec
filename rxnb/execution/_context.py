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
      cancelled), else None.
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
        """Raise `rx.Cancelled` if the run was cancelled (or timed out)."""
        if self._saw(self._cancel.is_set()):
            raise Cancelled(self._reason or "the run was cancelled")

    def wait(self, seconds: float) -> bool:
        """Sleep up to `seconds`, waking at once on cancel; True if cancelled."""
        return self._saw(self._cancel.wait(seconds))

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
        """Record progress on the run (a store write, so every view sees it)."""
        if self.run_id is None:
            return
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

    def _request_handover(self, reason: str) -> None:
        """Ask the action to stop for a hand-over (see `handing_over`)."""
        if not self._cancel.is_set():
            self._handover = reason
        self._request_cancel(f"handed over: {reason}")

    def __repr__(self) -> str:
        return f"<rx.ActionContext run {self.run_id} attempt {self.attempt}>"

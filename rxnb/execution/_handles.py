"""`RunHandle`: a run, from any process: its status, its result, a way to cancel it.

`RunHandle.follow` shows the run live in a notebook; the widgets layer provides that
view (`set_follower`), since this layer knows no widget.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from rxnb.errors import (
    ArgumentError,
    RunCancelledError,
    RunFailedError,
    RunNotFoundError,
    RxnbError,
)
from rxnb.execution._control import cancel, pause, resume
from rxnb.execution._failures import one_line
from rxnb.execution._model import TERMINAL, Run, RunStatus
from rxnb.execution._owners import can_run
from rxnb.reactive import Store
from rxnb.store import EVERYTHING, UNKNOWN, Reader, RowWrite, Write

Follower = Callable[["RunHandle", "float | None"], "str | None"]

_follower: list[Follower] = []


def set_follower(fn: Follower) -> None:
    """Make `fn(handle, timeout)` what `RunHandle.follow` calls (the widgets layer's)."""
    _follower[:] = [fn]


class RunHandle:
    """A run, from any process: its status, its result, a way to cancel it."""

    def __init__(self, run_id: str, store: Store) -> None:
        self.id = run_id
        self.store = store

    def __repr__(self) -> str:
        return f"<rx.RunHandle {self.id} {self.status}>"

    def run(self) -> Run:
        """The run's row as stored now."""
        row = self.store.database.read(lambda db: db.get(Run, self.id))[0]
        if row is None:
            raise RunNotFoundError(f"no run has id {self.id!r} in {self.store.url}")
        return row

    @property
    def status(self) -> str:
        return self.run().status

    def cancel(self) -> str:
        return cancel(self.id, store=self.store)

    def pause(self) -> str:
        """Pause the run (`rx.pause`); its status after."""
        return pause(self.id, store=self.store)

    def resume(self) -> str:
        """Resume the paused run (`rx.resume`); its status after."""
        return resume(self.id, store=self.store)

    def follow(self, timeout: float | None = None) -> str | None:
        """Show the run live in this cell's output until it ends; its final status.

        Interrupting the cell (the kernel's stop button) stops following only: the
        run goes on, and None is returned.
        """
        if not _follower:
            raise RxnbError("RunHandle.follow needs rxnb's widgets: `import rxnb` first")
        return _follower[0](self, timeout)

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run has ended; its final status. TimeoutError at `timeout`."""
        self.run()  # RunNotFoundError rather than waiting for a run that does not exist
        done = threading.Event()
        final: list[str] = []

        def seen(row: dict[str, Any] | None) -> None:
            if row is not None and RunStatus(row["status"]) in TERMINAL:
                final.append(row["status"])
                done.set()

        sub = self.store.subscribe(RunState(self.id), {"run_id": self.id}, seen)
        try:
            if not done.wait(timeout):
                raise TimeoutError(
                    f"run {self.id} still {self.status} after {timeout} s{self._hint()}"
                )
        finally:
            sub.close()
        return final[0]

    def _hint(self) -> str:
        """Why a run that is not running may never start: no one can run it."""
        try:
            row = self.run()
            if (
                row.status == RunStatus.RUNNING.value
                or self.store.database.read(lambda db: can_run(db, row.function))[0]
            ):
                return ""
        except RxnbError:  # the store is closing: the timeout says enough
            return ""
        return (
            f"; no live executor has `{row.function}` registered: run the cell that "
            "defines it in a kernel with this store open, or start `rxnb worker --import "
            "MODULE` with a module that defines it"
        )

    def result(self, timeout: float | None = None) -> Any:
        """The run's return value once it succeeded (RunFailedError, RunCancelledError)."""
        self.wait(timeout)
        row = self.run()
        if row.status == RunStatus.SUCCEEDED.value:
            return None if row.result is None else json.loads(row.result)
        if row.status == RunStatus.CANCELLED.value:
            raise RunCancelledError(f"run {self.id} ({row.function}) was cancelled")
        raise RunFailedError(f"run {self.id} ({row.function}) failed: {row.error}")


class RunState:
    """Run `run_id`'s status and attempt (what `RunHandle.wait` follows), subscribable.

    A write of the run's row brings the new values with it (`patch`): following a run
    reads nothing as it streams its usage and progress into that row."""

    name = "rxnb.run_state"

    def __init__(self, run_id: str) -> None:
        self.run_id = run_id

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        if dict(args) != {"run_id": self.run_id}:
            raise ArgumentError(f"a run's state takes run_id={self.run_id!r}, not {args!r}")
        return {"run_id": self.run_id}

    def run(self, reader: Reader, args: Mapping[str, Any]) -> dict[str, Any] | None:
        row = reader.get(Run, self.run_id)
        return None if row is None else {"status": row.status, "attempt": row.attempt}

    def patch(self, result: Any, writes: Sequence[Write]) -> dict[str, Any] | None:
        """The state the last write of the run's row left, or None to read it."""
        for write in reversed(writes):
            if write.table not in (_RUNS, EVERYTHING):
                continue  # the commit's writes of other tables: the run's row is not in them
            if not isinstance(write, RowWrite):
                return None
            if write.key != (self.run_id,):
                continue
            new = write.new
            if new is None or UNKNOWN in (new.get("status", UNKNOWN), new.get("attempt", UNKNOWN)):
                return None
            return {"status": new["status"], "attempt": new["attempt"]}
        return None


_RUNS = Run.__table__.fullname  # type: ignore[attr-defined]


def run_note(run: Run, registered: set[str], waits: dict[str, str] | None = None) -> str:
    """What a runs view says of `run` beside its status, on one line: its error, why
    it cannot start (`waits`: what holds queued runs back, `rx.execution.waits`), or
    why it was started again."""
    if run.paused and run.status == RunStatus.RUNNING.value:
        return "paused: waits at its next check until resumed"
    if run.status == RunStatus.PAUSED.value:
        return "paused until resumed"
    if waits and run.id in waits:
        return f"waiting: {waits[run.id]}"
    unfinished = run.status in (RunStatus.QUEUED.value, RunStatus.RUNNING.value)
    if run.status == RunStatus.QUEUED.value and run.function not in registered:
        waiting = f"no executor has registered `{run.function}`"
        return f"interrupted ({run.interrupted}); {waiting}" if run.interrupted else waiting
    if unfinished and run.interrupted and run.error is None:
        if run.status == RunStatus.RUNNING.value:
            return f"resumed after {run.interrupted} (attempt {run.attempt})"
        return f"interrupted ({run.interrupted}); queued again"
    return one_line(run.error or "")

"""`rx.runs()`: a live table of the store's runs, with Cancel, Pause, Resume and Retry
buttons."""

from __future__ import annotations

import json
import queue
import sys
import time
from collections.abc import Callable
from typing import Any

from sqlmodel import select

from rxnb.execution import (
    TERMINAL,
    Owner,
    Run,
    RunHandle,
    RunStatus,
    cancel_run,
    clock,
    pause_run,
    resume_run,
    retry_run,
    run_note,
    waits,
)
from rxnb.functions import query
from rxnb.llm import Generation, target_row
from rxnb.store import Reader
from rxnb.widgets._live import LiveWidget
from rxnb.workflows import RESUMES

GOING = [
    RunStatus.QUEUED.value,
    RunStatus.RUNNING.value,
    RunStatus.SLEEPING.value,
    RunStatus.WAITING.value,
]
"""Statuses with a Pause button."""
UNFINISHED = [*GOING, RunStatus.PAUSED.value]
"""Statuses with a Cancel button ("cancelling", a running run asked to stop, has none;
"paused" is also shown for a running action waiting at its check)."""

VIEW = {
    "actions": [
        {
            "name": "cancel",
            "label": "Cancel",
            "column": "id",
            "arg": "run_id",
            "when": {"column": "status", "in": UNFINISHED},
        },
        {
            "name": "pause",
            "label": "Pause",
            "column": "id",
            "arg": "run_id",
            "when": {"column": "status", "in": GOING},
        },
        {
            "name": "resume",
            "label": "Resume",
            "column": "id",
            "arg": "run_id",
            "when": {"column": "status", "in": [RunStatus.PAUSED.value]},
        },
        {
            "name": "retry",
            "label": "Retry",
            "column": "id",
            "arg": "run_id",
            "when": {"column": "status", "in": [RunStatus.FAILED.value, RunStatus.CANCELLED.value]},
        },
    ],
    "formats": {
        "status": "status",
        "progress": "progress",
        "elapsed": "elapsed",
        "created": "time",
        "id": "code",
        "owner": "code",
        "note": "error",
    },
    "hidden": ["details"],
}


def _loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


@query
def runs_table(db: Reader, limit: int = 100, run_id: str | None = None) -> list[dict[str, Any]]:
    """The newest runs (or one run) as rows for the runs view."""
    statement = select(Run)
    if run_id is not None:
        statement = statement.where(Run.id == run_id)
    rows = db.exec(statement.order_by(Run.created_at.desc()).limit(limit)).all()  # type: ignore[attr-defined]
    owners = db.exec(select(Owner)).all()
    registered = {name for owner in owners for name in json.loads(owner.functions)}
    held = waits(db, rows, clock.now())
    out = []
    for run in rows:
        note = run_note(run, registered, held)
        cancelling = run.status == RunStatus.RUNNING.value and run.cancel_requested
        paused = run.status == RunStatus.RUNNING.value and run.paused
        out.append(
            {
                "id": run.id,
                "function": run.function.rsplit(".", 1)[-1],
                "status": "cancelling" if cancelling else "paused" if paused else run.status,
                # A workflow is resumed as often as it takes: its count has no limit.
                "attempt": str(run.attempt)
                if run.max_attempts >= RESUMES
                else f"{run.attempt}/{run.max_attempts}",
                "created": run.created_at,
                "elapsed": [run.started_at, run.finished_at],
                "progress": _loads(run.progress),
                "owner": run.owner,
                "usage": _loads(run.usage),
                "note": note,
                "details": run.traceback if note == run.error else None,
            }
        )
    return out


def runs(limit: int = 100) -> LiveWidget:
    """A live table of the newest `limit` runs of the current store, from every process."""
    return LiveWidget(
        runs_table,
        {"limit": limit},
        bind={
            "cancel": cancel_run,
            "retry": retry_run,
            "pause": pause_run,
            "resume": resume_run,
        },
        view=VIEW,
    )


@query
def run_text(db: Reader, run_id: str) -> dict[str, Any]:
    """A run's status and, if it streams into a row (`rx.llm.stream_into`), that text."""
    run = db.get(Run, run_id)
    generation = db.exec(
        select(Generation)
        .where(Generation.run_id == run_id)
        .order_by(Generation.id.desc())  # type: ignore[union-attr]
        .limit(1)
    ).first()
    text = None
    if generation is not None:
        row = target_row(db, generation.target, generation.row_key)  # a UUID key too
        text = getattr(row, generation.field, None) if row is not None else None
    return {"status": None if run is None else run.status, "text": text}


def follow(handle: RunHandle, timeout: float | None = None) -> str | None:
    """Show `handle`'s run live until it ends (see `RunHandle.follow`).

    In a notebook the run's row shows live (status, Cancel) and a generation's text
    shows as it reaches the store, in one output that the kernel updates in place, so
    a saved or exported notebook (nbclient, nbconvert) holds the whole text as one
    block; outside a kernel the text is printed as it grows. Interrupting stops
    following only.
    """
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover - IPython is a dependency of the widgets
        shell = None
    show = _print
    if shell is not None and getattr(shell, "kernel", None) is not None:
        from IPython.display import display

        widget = LiveWidget(
            runs_table,
            {"run_id": handle.id},
            store=handle.store,
            bind={"cancel": cancel_run},
            view=VIEW,
        )
        display(widget)  # type: ignore[no-untyped-call]
        show = _TextOutput().show
    try:
        return _follow_text(handle, timeout, show)
    except KeyboardInterrupt:
        print(f"\nstopped following run {handle.id}; it goes on (rx.cancel to stop it)")
        return None


class _TextOutput:
    """One text output of the cell, displayed at the first text and updated in place
    (an `update_display_data` per change, which every saved copy keeps as one block,
    where printed fragments are kept one stream output each)."""

    def __init__(self) -> None:
        self._handle: Any = None

    def show(self, text: str, shown: str) -> None:
        from IPython.display import display

        if self._handle is None:
            self._handle = display({"text/plain": text}, raw=True, display_id=True)  # type: ignore[no-untyped-call]
        else:
            self._handle.update({"text/plain": text}, raw=True)


def _print(text: str, shown: str) -> None:
    """Print what `text` adds to `shown` (all of it, on a new line, if it was rewritten)."""
    grown = text.startswith(shown)
    sys.stdout.write(text[len(shown) :] if grown else "\n" + text)
    sys.stdout.flush()


def _follow_text(handle: RunHandle, timeout: float | None, show: Callable[[str, str], None]) -> str:
    """Show the run's text with `show(text, shown)` as it grows, until the run ends;
    its final status."""
    handle.run()  # RunNotFoundError rather than following a run that does not exist
    updates: queue.Queue[dict[str, Any]] = queue.Queue()
    sub = handle.store.subscribe(run_text, {"run_id": handle.id}, updates.put)
    deadline = None if timeout is None else time.monotonic() + timeout
    shown = ""
    try:
        while True:
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                raise TimeoutError(f"run {handle.id} still {handle.status} after {timeout} s")
            try:
                state = updates.get(timeout=left)
            except queue.Empty:
                continue
            text = state["text"] or ""
            if text != shown:
                show(text, shown)
                shown = text
            status = state["status"]
            if status is not None and RunStatus(status) in TERMINAL:
                if show is _print and shown and not shown.endswith("\n"):
                    sys.stdout.write("\n")
                return str(status)
    finally:
        sub.close()

"""`rx.runs()`: a live table of the store's runs, with Cancel and Retry buttons."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import select

from rxnb.functions import query
from rxnb.runs import Owner, Run, RunHandle, RunStatus, cancel_run, retry_run
from rxnb.store import Reader
from rxnb.widgets._live import LiveWidget

UNFINISHED = [
    RunStatus.QUEUED.value,
    RunStatus.RUNNING.value,
    RunStatus.SLEEPING.value,
    RunStatus.WAITING.value,
]
"""Statuses with a Cancel button ("cancelling", a running run asked to stop, has none)."""

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
    },
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
    out = []
    for run in rows:
        note = run.error or ""
        if run.status == RunStatus.QUEUED.value and run.function not in registered:
            note = f"no executor has registered `{run.function}`"
        cancelling = run.status == RunStatus.RUNNING.value and run.cancel_requested
        out.append(
            {
                "id": run.id,
                "function": run.function.rsplit(".", 1)[-1],
                "status": "cancelling" if cancelling else run.status,
                "attempt": f"{run.attempt}/{run.max_attempts}",
                "created": run.created_at,
                "elapsed": [run.started_at, run.finished_at],
                "progress": _loads(run.progress),
                "owner": run.owner,
                "usage": _loads(run.usage),
                "note": note,
            }
        )
    return out


def runs(limit: int = 100) -> LiveWidget:
    """A live table of the newest `limit` runs of the current store, from every process."""
    return LiveWidget(
        runs_table, {"limit": limit}, bind={"cancel": cancel_run, "retry": retry_run}, view=VIEW
    )


def follow(handle: RunHandle, timeout: float | None = None) -> str | None:
    """Show `handle`'s run live until it ends (see `RunHandle.follow`)."""
    from IPython.display import display

    widget = LiveWidget(
        runs_table,
        {"run_id": handle.id},
        store=handle.store,
        bind={"cancel": cancel_run},
        view=VIEW,
    )
    display(widget)  # type: ignore[no-untyped-call]
    try:
        return handle.wait(timeout)
    except KeyboardInterrupt:
        print(f"stopped following run {handle.id}; it goes on (rx.cancel to stop it)")
        return None

"""`rx.widgets.timeline(run_id=None)`: a workflow's steps as a live chart of bars."""

from __future__ import annotations

import datetime
from typing import Any

from sqlmodel import select

from rxnb.execution import Run
from rxnb.functions import query
from rxnb.store import Reader
from rxnb.widgets._live import LiveWidget
from rxnb.workflows import JournalEntry, fork_step

PREVIEW = 120
"""Characters of a step's output (or error) shown beside its bar."""

VIEW = {
    "timeline": {
        "run": "run_id",
        "label": "name",
        "seq": "seq",
        "kind": "kind",
        "status": "status",
        "start": "started_at",
        "end": "finished_at",
        "attempts": "attempts",
        "preview": "preview",
    }
}


def _status(entry: JournalEntry, run: Run | None, last: bool) -> str:
    """done | failed | running | waiting | sleeping (the run's parked state, on the step
    it is parked at: the last one journaled) | cancelled (a wait or sleep that the run's
    end cut short)."""
    if entry.error is not None and entry.error != "timed out":
        return "failed"
    if _cut_short(entry, run):
        return "cancelled" if run is not None and run.status == "cancelled" else "failed"
    parked = run is not None and last and run.status in ("waiting", "sleeping")
    if entry.finished_at is None or (entry.kind == "sleep" and parked):
        return run.status if parked and run is not None else "running"
    return "done"


def _cut_short(entry: JournalEntry, run: Run | None) -> bool:
    """Whether the run ended (cancelled, failed) while this step was still going."""
    if run is None or run.finished_at is None or run.status == "succeeded":
        return False
    if entry.kind == "sleep":
        return _wake(entry) > run.finished_at
    return entry.finished_at is None


def _wake(entry: JournalEntry) -> float:
    try:
        return float(entry.output or "0")
    except ValueError:
        return 0.0


def _until(wake: float) -> str:
    try:
        return "until " + datetime.datetime.fromtimestamp(wake, datetime.UTC).isoformat(
            " ", "seconds"
        )
    except (OverflowError, ValueError, OSError):  # past the year 9999
        return f"until {wake:.0f} s after 1970"


@query
def timeline_rows(db: Reader, run_id: str | None = None, limit: int = 20) -> list[dict[str, Any]]:
    """The journal of one workflow run (or of the newest `limit` runs), as timeline rows."""
    if run_id is not None:
        run_ids = [run_id]
    else:
        # The newest runs with a journal, chosen by the database: not every run's id
        # in Python (and in one IN list) to keep `limit` of them.
        journaled = select(JournalEntry.run_id).distinct()
        newest = db.exec(
            select(Run.id)
            .where(Run.id.in_(journaled))  # type: ignore[attr-defined]
            .order_by(Run.created_at.desc(), Run.id.desc())  # type: ignore[attr-defined]
            .limit(limit)
        ).all()
        run_ids = list(reversed(newest))
    entries = db.exec(
        select(JournalEntry)
        .where(JournalEntry.run_id.in_(run_ids))  # type: ignore[attr-defined]
        .order_by(JournalEntry.run_id, JournalEntry.seq)  # type: ignore[arg-type]
    ).all()
    runs_by_id = {r.id: r for r in db.exec(select(Run).where(Run.id.in_(run_ids))).all()}  # type: ignore[attr-defined]
    order = {rid: i for i, rid in enumerate(run_ids)}
    rows = []
    last: dict[str, int] = {}
    for entry in entries:
        last[entry.run_id] = max(last.get(entry.run_id, -1), entry.seq)
    for entry in sorted(entries, key=lambda e: (order.get(e.run_id, 0), e.seq)):
        status = _status(entry, runs_by_id.get(entry.run_id), entry.seq == last[entry.run_id])
        shown = entry.error if entry.error is not None else entry.output
        end = entry.finished_at
        if entry.kind == "sleep" and entry.output is not None:
            shown = _until(_wake(entry))
            # Asleep: going (drawn up to now); woken: a bar up to its wake time.
            end = None if status == "sleeping" else _wake(entry)
        run = runs_by_id.get(entry.run_id)
        if run is not None and _cut_short(entry, run):
            end = run.finished_at  # drawn up to the run's end, not to a wake never reached
        rows.append(
            {
                "id": f"{entry.run_id}:{entry.seq}",
                "run_id": entry.run_id,
                "seq": entry.seq,
                "name": entry.name.rsplit(".", 1)[-1],
                "kind": entry.kind,
                "status": status,
                "started_at": entry.started_at,
                "finished_at": end,
                "attempts": entry.attempts,
                "preview": (shown or "")[:PREVIEW],
            }
        )
    return rows


def timeline(run_id: str | None = None, limit: int = 20, *, fork: bool = False) -> LiveWidget:
    """A live chart of the steps of workflow run `run_id` (or of the newest runs).

    `fork=True` gives each step a Fork button, bound to `rx.workflows.fork_step` alone:
    a click forks the step's run from that step (`rx.fork(run_id, from_step=seq)`, with
    the run's own arguments); the view shows the new run's id, and with `run_id=None`
    its steps, among the newest runs'.
    """
    bind = {"fork": fork_step} if fork else None
    return LiveWidget(timeline_rows, {"run_id": run_id, "limit": limit}, bind=bind, view=VIEW)

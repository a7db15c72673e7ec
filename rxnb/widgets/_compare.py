"""`rx.widgets.compare(a, b)`: two workflow runs' steps side by side, differences marked.

Rules (a row per journal step number, then one for the runs' results):

1. Steps are matched by number (`seq`, from 0): a fork's step k is its source's step k.
2. A step is `same` when both runs journaled it with the same kind, name, output and
   error; `changed` when both did and any of those differ; `only in a` / `only in b`
   when one run has not journaled it (it stopped earlier, is still going, or took
   another path).
3. The `result` row compares the runs' status, result and error the same way.
4. The view is a live query: a run still going fills its column as it journals.
   Every cell is text (the table view's rule), its output cut to `PREVIEW` characters
   (the comparison is of the whole output).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from rxnb.errors import RunError, RunNotFoundError
from rxnb.execution import Run
from rxnb.functions import query
from rxnb.reactive import current_store
from rxnb.store import Reader
from rxnb.widgets._live import LiveWidget
from rxnb.workflows import JournalEntry

PREVIEW = 200
"""Characters of a step's output (or error) shown in its cell."""

SAME, CHANGED, ONLY_A, ONLY_B = "same", "changed", "only in a", "only in b"

VIEW = {"formats": {"diff": "status", "step": "code"}, "hidden": ["id"]}
"""The diff column is a badge (`data-status` = the mark), styled in js/widget.css."""


def _shown(output: str | None, error: str | None, waiting: bool) -> str:
    if error is not None:
        text = f"error: {error}"
    elif waiting:
        text = "(not ended)"
    else:
        text = "null" if output is None else output
    return text if len(text) <= PREVIEW else text[: PREVIEW - 1] + "…"


def _mark(left: tuple[Any, ...] | None, right: tuple[Any, ...] | None) -> str:
    """Rule 2."""
    if left is None:
        return ONLY_B
    if right is None:
        return ONLY_A
    return SAME if left == right else CHANGED


def _journal(db: Reader, run_id: str) -> dict[int, JournalEntry]:
    entries = db.exec(select(JournalEntry).where(JournalEntry.run_id == run_id)).all()
    return {entry.seq: entry for entry in entries}


@query
def compare_rows(db: Reader, a: str, b: str) -> list[dict[str, Any]]:
    """Runs `a` and `b` step by step (the module's rules), then their results."""
    left, right = _journal(db, a), _journal(db, b)
    rows = []
    for seq in sorted(set(left) | set(right)):
        x, y = left.get(seq), right.get(seq)
        names = [e.name.rsplit(".", 1)[-1] for e in (x, y) if e is not None]
        key = [None if e is None else (e.kind, e.name, e.output, e.error) for e in (x, y)]
        rows.append(
            {
                "id": str(seq),
                "step": seq,
                "name": names[0] if len(set(names)) == 1 else " / ".join(names),
                "a": "" if x is None else _shown(x.output, x.error, x.finished_at is None),
                "b": "" if y is None else _shown(y.output, y.error, y.finished_at is None),
                "diff": _mark(key[0], key[1]),
            }
        )
    runs = {r.id: r for r in db.exec(select(Run).where(Run.id.in_([a, b]))).all()}  # type: ignore[attr-defined]
    ends = [runs.get(a), runs.get(b)]
    rows.append(
        {
            "id": "result",
            "step": "result",
            "name": " / ".join(dict.fromkeys(r.status for r in ends if r is not None)),
            "a": "" if ends[0] is None else _shown(ends[0].result, ends[0].error, False),
            "b": "" if ends[1] is None else _shown(ends[1].result, ends[1].error, False),
            "diff": _mark(*[None if r is None else (r.status, r.result, r.error) for r in ends]),
        }
    )
    return rows


def _id(run: Any) -> str:
    """A run id, from the id itself or anything with `.id` (a `RunHandle`, a `Run`)."""
    value = getattr(run, "id", run)
    if not isinstance(value, str) or not value:
        raise RunError(f"rx.widgets.compare: give two run ids (or run handles), not {run!r:.60}")
    return value


def compare(a: Any, b: Any) -> LiveWidget:
    """A live table of workflow runs `a` and `b` (ids or handles) step by step: each
    step's output in each run, side by side, marked `same`, `changed`, `only in a` or
    `only in b`; a last row compares their results.

        rx.widgets.compare(run.id, child.id)   # e.g. a run and its fork (rx.fork)
    """
    ids = [_id(a), _id(b)]
    store = current_store()
    found = store.database.read(lambda db: [db.get(Run, run_id) for run_id in ids])[0]
    for run_id, run in zip(ids, found, strict=True):
        if run is None:
            raise RunNotFoundError(
                f"rx.widgets.compare: no run has id {run_id!r}; pass the ids (or handles) "
                "of two runs in this store (rx.runs() lists them)"
            )
    return LiveWidget(compare_rows, {"a": ids[0], "b": ids[1]}, store=store, view=VIEW)

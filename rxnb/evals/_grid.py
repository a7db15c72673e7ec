"""The live grid of an eval (js/evals.ts): a row per case, a column per model, and a
summary row per model (mean of each score, cost, failures).

The query's rows are the eval's results, one per case x model (`kind` "case"), then
one per model (`kind` "summary"); the payload's `evals` field names which row fields
the view reads. A reader without a kernel sees the rows as a table (the snapshot).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlmodel import select

from rxnb.evals._model import Eval, EvalResult
from rxnb.functions import query
from rxnb.store import Reader
from rxnb.widgets import LiveWidget

PREVIEW = 400
"""Characters of an input or expected value the grid shows."""

VIEW = {
    "evals": {
        "kind": "kind",
        "case": "case",
        "model": "model",
        "input": "input",
        "expected": "expected",
        "output": "output",
        "status": "status",
        "scores": "scores",
        "notes": "notes",
        "cost": "cost",
        "error": "error",
    },
    "formats": {"status": "status", "error": "error"},
}

ENDED = ("done", "failed", "cancelled")


def _preview(text: str | None) -> str:
    if text is None:
        return ""
    value = json.loads(text)
    shown = value if isinstance(value, str) else json.dumps(value)
    return shown if len(shown) <= PREVIEW else shown[:PREVIEW] + "…"


def summarize(rows: Sequence[EvalResult]) -> dict[str | None, dict[str, Any]]:
    """Per model: `cases`, `done`, `failed`, the mean of each score over the rows that
    have it (`scores`), and the total `cost`."""
    out: dict[str | None, dict[str, Any]] = {}
    sums: dict[str | None, dict[str, list[float]]] = {}
    for row in rows:
        entry = out.setdefault(
            row.model, {"cases": 0, "done": 0, "failed": 0, "scores": {}, "cost": 0.0}
        )
        entry["cases"] += 1
        entry["done"] += row.status in ENDED
        entry["failed"] += row.status == "failed"
        entry["cost"] += row.cost or 0.0
        for name, value in (json.loads(row.scores) if row.scores else {}).items():
            bucket = sums.setdefault(row.model, {}).setdefault(name, [])
            if value is not None:
                bucket.append(float(value))
    for model, by_name in sums.items():
        out[model]["scores"] = {
            name: (round(sum(v) / len(v), 4) if v else None) for name, v in by_name.items()
        }
    return out


@query
def eval_grid(db: Reader, eval_id: str) -> list[dict[str, Any]]:
    """An eval's results, then a summary row per model, as the grid reads them."""
    ev = db.get(Eval, eval_id)
    rows = db.exec(
        select(EvalResult)
        .where(EvalResult.eval_id == eval_id)
        .order_by(EvalResult.case_index, EvalResult.id)  # type: ignore[arg-type]
    ).all()
    out: list[dict[str, Any]] = []
    for row in rows:
        out.append(
            {
                "id": f"{row.case_index}:{row.model}",
                "kind": "case",
                "case": row.case_index + 1,
                "model": row.model,
                "input": _preview(row.input),
                "expected": _preview(row.expected),
                "output": row.output,
                "status": row.status,
                "scores": json.loads(row.scores) if row.scores else None,
                "notes": json.loads(row.notes) if row.notes else None,
                "cost": row.cost,
                "error": row.error,
            }
        )
    names = json.loads(ev.models) if ev is not None else []
    summary = summarize(rows)
    for model in names:
        entry = summary.get(model)
        if entry is None:
            continue
        out.append(
            {
                "id": f"summary:{model}",
                "kind": "summary",
                "case": None,
                "model": model,
                "input": "",
                "expected": "",
                "output": f"{entry['done']}/{entry['cases']} done, {entry['failed']} failed",
                "status": "done" if entry["done"] == entry["cases"] else "running",
                "scores": entry["scores"],
                "notes": None,
                "cost": round(entry["cost"], 8),
                "error": None,
            }
        )
    return out


def grid(report: Any) -> LiveWidget:
    """The live grid of `report` (an `rx.evals.Report`: what displaying it shows),
    headed by the eval's name."""
    stored = report.store.database.read(lambda db: db.get(Eval, report.id))[0]
    return LiveWidget(
        eval_grid,
        {"eval_id": report.id},
        store=report.store,
        view=VIEW,
        heading=None if stored is None else f"rx.evals · {stored.name}",
    )

"""The live view of `rx.llm.compare`: a column per model (js/models.ts).

The rows are the comparison's columns (`rx_comparison_columns`), one per model; the
payload's `models` field names which row fields the view reads. A reader without a
kernel sees them as a table (the snapshot), each model's text as inert markdown.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from rxnb.functions import query
from rxnb.llm import Comparison, ComparisonColumn, LiveComparison
from rxnb.store import Reader
from rxnb.widgets._live import LiveWidget

VIEW = {
    "models": {
        "model": "model",
        "status": "status",
        "text": "text",
        "tokens": "tokens",
        "started": "started_at",
        "first_token": "first_token_at",
        "finished": "finished_at",
        "cost": "cost",
        "error": "error",
    },
    "formats": {"status": "status", "error": "error"},
    "hidden": ["id", "started_at", "first_token_at", "finished_at"],
}


@query
def comparison_columns(db: Reader, comparison_id: str) -> list[dict[str, Any]]:
    """A comparison's columns, in the order of its models, as the models view reads them."""
    columns = db.exec(
        select(ComparisonColumn)
        .where(ComparisonColumn.comparison_id == comparison_id)
        .order_by(ComparisonColumn.position)  # type: ignore[arg-type]
    ).all()
    rows = []
    for column in columns:
        latency = (
            None
            if column.first_token_at is None or column.started_at is None
            else round(column.first_token_at - column.started_at, 3)
        )
        total = (
            None
            if column.finished_at is None or column.started_at is None
            else round(column.finished_at - column.started_at, 3)
        )
        tokens = None
        if column.completion_tokens is not None:
            tokens = column.completion_tokens + (column.prompt_tokens or 0)
        rows.append(
            {
                "id": column.id,
                "model": column.model,
                "status": column.status,
                "text": column.text,
                "tokens": tokens,
                "latency": latency,
                "total": total,
                "cost": column.cost,
                "error": column.error,
                "started_at": column.started_at,
                "first_token_at": column.first_token_at,
                "finished_at": column.finished_at,
            }
        )
    return rows


def models_view() -> dict[str, Any]:
    """The view spec of the models view, for a `LiveWidget` of a query that returns
    rows as `comparison_columns` does (a `%%ai` cell's)."""
    return dict(VIEW)


def comparison_view(comparison: LiveComparison) -> LiveWidget:
    """The live widget of `comparison` (what displaying it shows), headed by its title."""
    stored = comparison.store.database.read(lambda db: db.get(Comparison, comparison.id))[0]
    return LiveWidget(
        comparison_columns,
        {"comparison_id": comparison.id},
        store=comparison.store,
        view=VIEW,
        heading=None if stored is None else f"rx.llm.compare · {stored.title}",
    )

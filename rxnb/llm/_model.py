"""The `rx_generations` table: which run streamed into which row, and what it cost.

`stream_into` writes one row when a generation starts and finishes it in the same
transaction as the target row's final text and status. Views read it to show tokens
and cost per message (`rx.chat`), to find the run to cancel for a message, and to
follow a run's text (`RunHandle.follow`).
"""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import Field, SQLModel


class Generation(SQLModel, table=True):
    """One streamed completion into one field of one row."""

    __tablename__ = "rx_generations"

    id: int | None = Field(default=None, primary_key=True)
    run_id: str | None = Field(default=None, index=True)
    target: str = Field(index=True)
    """The table of the row streamed into."""
    row_key: str = Field(index=True)
    """That row's primary key, as JSON (`5`, `"a1"`)."""
    field: str
    model: str
    attempt: int = 1
    """The run's attempt that made it; a retry's generation has attempt 2 and up."""
    offset: int = 0
    """Length of the field's text when it started (its own text comes after)."""
    replaced: str | None = None
    """A failed attempt's text, once a retry of the run took its place in the row."""
    status: str = "streaming"
    """streaming | done | cancelled | failed, like the row's."""
    started_at: float
    finished_at: float | None = None
    usage: str | None = None
    """JSON: prompt/completion/total tokens, `estimated`, `rate_limited`."""
    cost: float | None = None
    error: str | None = None
    tool_calls: str | None = None
    """JSON list of `{"id", "name", "arguments"}` the model asked for, if any."""

    def usage_json(self) -> dict[str, Any] | None:
        """Usage with its cost, as views show it."""
        if self.usage is None:
            return None
        value: dict[str, Any] = json.loads(self.usage)
        value["cost"] = self.cost
        return value


def target_model(table: str) -> Any:
    """The SQLModel class mapped to `table`, or None."""
    for mapper in SQLModel._sa_registry.mappers:
        if getattr(mapper.local_table, "name", None) == table:
            return mapper.class_
    return None

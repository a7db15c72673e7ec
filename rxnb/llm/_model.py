"""The `rx_generations` table: which run streamed into which row, and what it cost.

`stream_into` writes one row when a generation starts and finishes it in the same
transaction as the target row's final text and status. Views read it to show tokens
and cost per message (`rx.chat`), to find the run to cancel for a message, and to
follow a run's text (`RunHandle.follow`).

A run that ends while a generation of it is still `streaming` (its process died, or
its store closed midway, and orphan recovery failed or cancelled it) ends that
generation too, and its row's `pending`/`streaming` status, with the run's reason:
otherwise a chat would show the reply streaming forever. A run queued again after a
hand-over or a crash ends its `streaming` generations as `interrupted` (why, in
`error`) and sets their rows back to `pending`, until its next start streams into
them again. These hooks are installed when `rxnb.llm` is first imported (`import
rxnb` does), in the process that ends or queues the run.
"""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from pydantic import TypeAdapter
from sqlmodel import Field, SQLModel, select

from rxnb.execution import RUN_ENDED, RUN_REQUEUED, Run, RunStatus, one_line, ties
from rxnb.reactive import to_jsonable
from rxnb.store import own_table


class Generation(SQLModel, table=True):
    """One streamed completion into one field of one row."""

    __tablename__ = "rx_generations"
    __table_args__ = own_table()

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
    """An earlier attempt's text, once a retry of the run took its place in the row."""
    status: str = "streaming"
    """streaming | done | cancelled | failed, like the row's; or interrupted: its run
    was handed over or its process died, and a later start streams into the row again."""
    started_at: float
    finished_at: float | None = None
    usage: str | None = None
    """JSON: prompt/completion/total tokens, `estimated`, `rate_limited`."""
    cost: float | None = None
    error: str | None = None
    """Why it failed, one line (`Type: message`); why it was interrupted."""
    traceback: str | None = None
    """The details of `error`, where there are some."""
    tool_calls: str | None = None
    """JSON list of `{"id", "name", "arguments"}` the model asked for, if any."""
    cached: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})
    """Answered from the LLM cache (`rx.llm.configure(cache=True)`): no provider call."""
    waiting: str | None = None
    """While it waits for a budget or a model limit (its row `waiting`), why: "rate
    limit openai/*: 500 requests/min", "budget reached ($2.10 of $2.00 today)"."""

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


def key_json(value: Any) -> str:
    """A primary key value as `Generation.row_key` holds it (a UUID as its string)."""
    return json.dumps(to_jsonable(value, where="a primary key"))


def target_row(db: Any, table: str, row_key: str) -> Any:
    """The row of `table` whose primary key `key_json` gave `row_key`, or None."""
    model = target_model(table)
    if model is None:
        return None
    try:
        value = json.loads(row_key)
        mapper = sa.inspect(model)
        names = [mapper.get_property_by_column(c).key for c in mapper.primary_key]
        values = value if len(names) > 1 else [value]
        fields = getattr(model, "model_fields", {})
        key = [
            TypeAdapter(fields[n].annotation).validate_python(v) if n in fields else v
            for n, v in zip(names, values, strict=True)
        ]
    except (ValueError, TypeError):  # not a key of this table (ValidationError included)
        return None
    return db.get(model, key[0] if len(key) == 1 else tuple(key))


def end_generations(db: Any, run: Run) -> None:
    """`run` has ended: any generation of it still `streaming`, or `interrupted` and
    waiting for a start that will not come, ends with it (see the module's docstring),
    as `cancelled` if the run was, else `failed`."""
    if not ties.tied(run, ties.GENERATIONS):
        return
    left = db.exec(
        select(Generation).where(
            Generation.run_id == run.id,
            Generation.status.in_(["streaming", "interrupted"]),  # type: ignore[attr-defined]
            Generation.replaced == None,  # noqa: E711 - SQL IS NULL: not restreamed since
        )
    ).all()
    status = "cancelled" if run.status == RunStatus.CANCELLED.value else "failed"
    for generation in left:
        interrupted = generation.error if generation.status == "interrupted" else None
        generation.status, generation.finished_at = status, time.time()
        generation.error = one_line(
            f"interrupted ({interrupted}); then the run ended {run.status}"
            if interrupted
            else generation.error
            or (
                f"the run ended ({run.status}: {run.error})"
                if run.error
                else f"the run ended ({run.status}) before its generation did"
            )
        )
        generation.waiting = None
        set_row_status(db, generation, ("pending", "streaming", "waiting"), status)


def interrupt_generations(db: Any, run: Run, why: str) -> None:
    """`run` was interrupted and is queued again: its generations still `streaming`
    are `interrupted` (`why`), their rows `pending` until the next start streams."""
    left = db.exec(
        select(Generation).where(Generation.run_id == run.id, Generation.status == "streaming")
    ).all()
    for generation in left:
        generation.status, generation.finished_at = "interrupted", time.time()
        generation.error, generation.waiting = why, None
        set_row_status(db, generation, ("streaming", "waiting"), "pending")


def set_row_status(db: Any, generation: Generation, only: tuple[str, ...], status: str) -> None:
    """Set the `status` of the row `generation` streamed into, if it is one of `only`.

    The process doing it (one recovering a dead owner's runs, or cancelling one) may
    not define the row's SQLModel class: the table is then read from the database
    and updated by its primary key."""
    if target_model(generation.target) is not None:
        row = target_row(db, generation.target, generation.row_key)
        if row is not None and getattr(row, "status", None) in only:
            row.status = status
        return
    try:
        table = sa.Table(generation.target, sa.MetaData(), autoload_with=db.connection())
        key = json.loads(generation.row_key)
    except (sa.exc.NoSuchTableError, ValueError):
        return
    values = key if isinstance(key, list) else [key]
    columns = list(table.primary_key.columns)
    if "status" not in table.c or len(columns) != len(values):
        return
    db.execute(
        sa.update(table)
        .where(*(c == v for c, v in zip(columns, values, strict=True)))
        .where(table.c.status.in_(only))
        .values(status=status)
    )


ties.tie(Generation, "run_id", ties.GENERATIONS)
ties.GATED.add(end_generations)
if end_generations not in RUN_ENDED:
    RUN_ENDED.append(end_generations)
if interrupt_generations not in RUN_REQUEUED:
    RUN_REQUEUED.append(interrupt_generations)

"""The writes of one `stream_into` into its row (the rules are `rxnb.llm._stream`'s):
the row's text and status, and its generation in `rx_generations` started and ended
with them; a cached answer's in one transaction (`whole`)."""

from __future__ import annotations

import json
import time
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from rxnb.errors import RxnbError
from rxnb.execution import ActionContext, Run, error_details, error_line, one_line
from rxnb.llm._model import Generation, key_json
from rxnb.llm._usage import Usage, add_to_run
from rxnb.store import Writer

PAUSED_REASON = "paused until rx.resume"
"""Rule 12: why a paused generation waits, as its row's note or its run's progress."""
PENDING = "pending"
"""The row's status while its run waits to stream again (after a hand-over)."""
WAITING = "waiting"
"""The row's status while its generation waits at the gate (rule 11)."""
PAUSED = "paused"
"""The row's status while a pause of its run holds it (rule 12)."""
HELD = ("streaming", WAITING, PAUSED)


class RowWriter:
    """The writes of one `stream_into`, each one transaction: a piece of text appended
    and a status set, the generation started (first write) or finished (a status)."""

    def __init__(
        self,
        ctx: ActionContext,
        model_class: Any,
        row_id: Any,
        field: str,
        model: str,
        usage: Usage,
    ) -> None:
        self.ctx, self.model_class, self.row_id = ctx, model_class, row_id
        self.field, self.model, self.usage = field, model, usage
        self.has_status = "status" in model_class.model_fields
        self.generation: int | None = None

    def write(
        self, piece: str, status: str | None, error: BaseException | str | None = None
    ) -> str | None:
        """Rule 2: a row deleted meanwhile still gets its generation finished, as
        failed; RxnbError saying so (unless `error` is already being reported).
        The status written: rule 9, `done` becomes `cancelled` if the run's cancel is
        in the store."""
        row_id, gone = self.row_id, self.gone()
        started = self.generation

        def body(db: Writer) -> tuple[bool, int | None, str | None]:
            # A mutation body may run twice (a serialization retry): it reads
            # `started`, and the generation's id is kept only once committed.
            final = "cancelled" if status == "done" and self._cancel_stored(db) else status
            row = db.get(self.model_class, row_id)
            if row is None:
                if started is not None and final is not None:
                    finish_generation(db, started, "failed", self.usage, error or gone)
                return False, started, final
            if piece:
                setattr(row, self.field, (getattr(row, self.field) or "") + piece)
            if final is not None and self.has_status:
                row.status = final
            if started is None:
                return True, start_generation(db, self.ctx, row, self.field, self.model), final
            if final is not None:
                finish_generation(db, started, final, self.usage, error)
            return True, started, final

        found, self.generation, final = self.ctx.store.database.write(body)
        if not found and error is None:
            raise gone
        return final

    def gone(self) -> RxnbError:
        """The error saying the row is not there (any more)."""
        name, row_id = self.model_class.__name__, self.row_id
        return RxnbError(
            f"stream_into: the {name} row with id {row_id!r} was deleted while its text "
            "streamed in; the generation stopped"
            if self.generation is not None
            else f"stream_into: no {name} row with id {row_id!r}; create the row first (in "
            "the mutation that schedules the generation, say) and pass its primary key"
        )

    def whole(self, text: str) -> str | None:
        """A cached answer (rule 4 of `rxnb.llm._cache`) in one transaction: `text`
        the row's, its status final, its generation started and ended, the usage
        added to the run's. The status written (`done`, or `cancelled` if the run's
        cancel is in the store); None if the row is gone (nothing written)."""

        def body(db: Writer) -> tuple[str, int] | None:
            row = db.get(self.model_class, self.row_id)
            if row is None:
                return None
            final = "cancelled" if self._cancel_stored(db) else "done"
            generation = start_generation(db, self.ctx, row, self.field, self.model)
            if final == "done":
                setattr(row, self.field, (getattr(row, self.field) or "") + text)
            if self.has_status:
                row.status = final
            finish_generation(db, generation, final, self.usage, None)
            add_to_run(db, self.ctx.run_id, self.usage)
            return final, generation

        written = self.ctx.store.database.write(body)
        if written is None:
            return None
        final, self.generation = written
        return final

    def waiting(self, reason: str | None, status: str = "waiting") -> None:
        """Rule 11: the row `waiting` (or `status`) and its generation saying why
        (`reason`), or `streaming` again (None); only while the row streams or waits."""
        generation_id = self.generation

        def body(db: Writer) -> None:
            row = db.get(self.model_class, self.row_id)
            if row is not None and self.has_status and row.status in HELD:
                row.status = "streaming" if reason is None else status
            generation = db.get(Generation, generation_id) if generation_id is not None else None
            if generation is not None and generation.status == "streaming":
                generation.waiting = reason

        self.ctx.store.database.write(body)

    def paused(self, held: bool) -> None:
        """Rule 12: the row `paused` while a pause holds it, then `streaming` again."""
        self.waiting(PAUSED_REASON if held else None, PAUSED)

    def _cancel_stored(self, db: Writer) -> bool:
        """Rule 9: whether the run's cancel is in the store (read in the transaction
        that ends the row, so that a cancel commits either before it or after)."""
        if self.ctx.run_id is None:
            return False
        run = db.get(Run, self.ctx.run_id)
        return run is not None and run.cancel_requested


def start_generation(db: Writer, ctx: ActionContext, row: Any, field: str, model: str) -> int:
    """Record a generation into `row`; rule 6: a retry of a run replaces the text of
    its earlier attempts (each kept in its generation, `replaced`), whether they
    failed, were cancelled, or finished before the attempt failed."""
    table, key = type(row).__tablename__, key_json(_row_key(row))
    text = getattr(row, field) or ""
    if ctx.run_id is not None and ctx.attempt > 1:
        earlier = db.exec(
            select(Generation)
            .where(
                Generation.run_id == ctx.run_id,
                Generation.target == table,
                Generation.row_key == key,
                Generation.field == field,
                Generation.attempt < ctx.attempt,
                Generation.replaced == None,  # noqa: E711 - SQL IS NULL
            )
            .order_by(Generation.id)  # type: ignore[arg-type]
        ).all()
        if earlier:
            ends = [g.offset for g in earlier[1:]] + [len(text)]
            for old, end in zip(earlier, ends, strict=True):
                old.replaced = text[old.offset : max(old.offset, end)]
                if old.status == "streaming":  # its attempt died midway
                    old.status, old.finished_at = "failed", time.time()
                    old.error = old.error or f"attempt {old.attempt} ended before it did"
            text = text[: earlier[0].offset]
            setattr(row, field, text)
    generation = Generation(
        run_id=ctx.run_id,
        target=table,
        row_key=key,
        field=field,
        model=model,
        attempt=ctx.attempt,
        offset=len(text),
        started_at=time.time(),
    )
    db.add(generation)
    db.flush()
    assert generation.id is not None
    return generation.id


def _row_key(row: Any) -> Any:
    """The row's primary key value (a list for a composite key)."""
    identity = sa.inspect(row).identity
    if identity is None:
        raise RxnbError(f"stream_into: the {type(row).__name__} row has no primary key yet")
    return identity[0] if len(identity) == 1 else list(identity)


def finish_generation(
    db: Writer, generation_id: int, status: str, usage: Usage, error: BaseException | str | None
) -> None:
    """End a generation as its row's `status` says (a row back to `pending`: the
    generation was interrupted, rule 10); `error` is why, an exception or a line."""
    row = db.get(Generation, generation_id)
    if row is None:
        return
    row.status = "interrupted" if status == PENDING else status
    row.finished_at, row.waiting = time.time(), None
    row.usage, row.cost = json.dumps(usage.as_json()), usage.cost
    row.cached = usage.cached
    if isinstance(error, str):
        row.error = one_line(error)
    elif error is not None:
        row.error, row.traceback = error_line(error, where=False), error_details(error)
    if usage.tool_calls:
        row.tool_calls = json.dumps(usage.tool_calls)

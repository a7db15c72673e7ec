"""Which rows of later layers point at a run, recorded on the run (`Run.ties`), so
that a run ending skips the lookups of rows it never had.

A later layer registers a model with `tie(Model, "run_id", bit)`; every write that
adds such a row (or sets its run column) sets `bit` on that run's `ties`, in the same
transaction, and that layer's `RUN_ENDED` hook asks `tied(run, bit)` before it looks.
`ties` is NULL on a run that rxnb did not create with it (a store from before the
column, a run inserted with plain SQL): every hook then looks, as before.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from rxnb.execution._model import Run
from rxnb.store import Row, Writer, on_row_written

CHILD = 1
"""The run is a child workflow's (a `ChildLink` names it): its end wakes its parent."""
GENERATIONS = 2
"""`rx.llm` generations were streamed by the run."""
MESSAGES = 4
"""Agent messages belong to the run (a turn's)."""
PARENT = 8
"""The run started child workflows (`ChildLink`s name it): its cancel cancels them."""

_TIES: dict[type[Any], list[tuple[str, int]]] = {}

GATED: set[Callable[..., Any]] = set()
"""The `RUN_ENDED` hooks that do nothing for a run whose `ties` is 0: a run ending
with only such hooks changes no row but its own (see `_transitions.finish_untied`)."""


def tie(model: type[Any], column: str, bit: int) -> None:
    """Rows of `model` whose `column` names a run set `bit` on that run's `ties`
    (written through the ORM, or as rows: `rxnb.store.insert_row`, `update_row`)."""
    _TIES.setdefault(model, []).append((column, bit))

    def mark_row(db: Writer, row: Row, old: Row | None) -> None:
        run_id = row.get(column)
        if run_id is not None and (old is None or old.get(column) != run_id):
            _set(db, run_id, bit)

    on_row_written(model.__table__, mark_row)


def tied(run: Run, bit: int) -> bool:
    """Whether `run` may have rows of `bit`'s kind (always, when it was not recorded)."""
    return run.ties is None or bool(run.ties & bit)


def _mark(session: Session, flush_context: Any, instances: Any) -> None:
    """Before a flush: set the bits of the runs the session's new or changed rows name."""
    if not _TIES:
        return
    marks: dict[str, int] = {}
    new = session.new
    for obj in (*new, *session.dirty):
        ties = _TIES.get(type(obj))
        if not ties:
            continue
        state = None if obj in new else sa.inspect(obj)
        for column, bit in ties:
            if state is not None and not state.attrs[column].history.has_changes():
                continue  # a changed row whose run it names was marked when it was set
            run_id = getattr(obj, column, None)
            if run_id is not None:
                marks[run_id] = marks.get(run_id, 0) | bit
    for run_id, bits in marks.items():
        _set(session, run_id, bits)


def _set(session: Session, run_id: str, bits: int) -> None:
    """Set `bits` on run `run_id`'s `ties`, in `session`'s transaction."""
    run = session.identity_map.get(session.identity_key(Run, run_id))
    if run is None:
        run = next((r for r in session.new if isinstance(r, Run) and r.id == run_id), None)
    if isinstance(run, Run) and run in session.new:
        if run.ties is not None:
            run.ties |= bits
            if isinstance(session, Writer):
                session.after_commit(lambda: _remember(run_id, run.ties or 0))
        return
    if _known.get(run_id, 0) & bits != bits:
        session.connection().execute(_SET_BITS, {"run": run_id, "bits": bits})
        if isinstance(session, Writer):
            session.after_commit(lambda: _remember(run_id, bits))
    if isinstance(run, Run) and run.ties is not None:
        sa.orm.attributes.set_committed_value(run, "ties", run.ties | bits)


_known: dict[str, int] = {}
"""Bits this process has committed on runs' `ties`. Bits are only ever set, so a
write that would set them again skips its statement: an agent's turn adds a message
at each step, and each would otherwise update the run's row to no effect."""
_KNOWN_MAX = 10_000


def _remember(run_id: str, bits: int) -> None:
    if len(_known) >= _KNOWN_MAX:
        _known.clear()
    _known[run_id] = _known.get(run_id, 0) | bits


_RUNS = Run.__table__  # type: ignore[attr-defined]
_SET_BITS = (
    sa.update(_RUNS)
    .where(_RUNS.c.id == sa.bindparam("run"), _RUNS.c.ties.is_not(None))
    .where(_RUNS.c.ties.op("&")(sa.bindparam("bits")) != sa.bindparam("bits"))
    .values(ties=_RUNS.c.ties.op("|")(sa.bindparam("bits")))
)


sa.event.listen(Writer, "before_flush", _mark)

"""Runs that end at once are recorded together: the first pool thread to arrive writes
every end waiting in one transaction. A batch whose transaction fails, or a run with
rows pointing at it, still has each end recorded as it would be alone."""

from __future__ import annotations

import threading
from typing import Any

import pytest
import sqlalchemy as sa

import rxnb as rx
from rxnb.execution import _executor
from rxnb.llm import Generation

MEET = threading.Barrier(6, timeout=30)
"""The runs of a test end at the same moment: their ends wait for one another."""


@rx.action
def meet(ctx: rx.ActionContext, kind: str) -> Any:
    if kind == "tied":  # a generation names the run: its end must end it too
        ctx.store.database.write(
            lambda db: db.add(
                Generation(
                    run_id=ctx.run_id, target="t", row_key="1", field="f", model="m", started_at=0
                )
            )
        )
    MEET.wait()
    if kind == "huge":
        return 10**5000  # more digits than json may write: the result cannot be stored
    if kind == "raises":
        raise ValueError("no")
    return kind


class Batches(list[int]):
    """The number of ends each batch transaction was given."""

    fail_next = False
    """The next batch of more than one end fails (as a database error would)."""


@pytest.fixture
def batches(monkeypatch: pytest.MonkeyPatch) -> Batches:
    sizes = Batches()
    real = _executor.finish_untied

    def counted(db: rx.Writer, ends: list[Any], owner: str) -> list[int]:
        sizes.append(len(ends))
        if sizes.fail_next and len(ends) > 1:
            sizes.fail_next = False
            raise RuntimeError("injected: the batch's transaction failed")
        return real(db, ends, owner)

    monkeypatch.setattr(_executor, "finish_untied", counted)
    MEET.reset()
    return sizes


def test_ends_at_once_share_a_transaction_and_each_is_recorded(
    store: rx.Store, batches: Batches
) -> None:
    handles = [meet.start(kind=f"ok{i}") for i in range(6)]
    assert [h.result(timeout=30) for h in handles] == [f"ok{i}" for i in range(6)]
    assert max(batches) > 1, batches
    assert sum(batches) == 6


def test_a_batch_that_fails_or_holds_a_tied_run_records_each_end_as_alone(
    store: rx.Store, batches: Batches
) -> None:
    batches.fail_next = True
    kinds = ["ok1", "huge", "raises", "tied", "ok2", "ok3"]
    handles = {kind: meet.start(kind=kind) for kind in kinds}
    for handle in handles.values():
        handle.wait(timeout=30)
    runs = {kind: handle.run() for kind, handle in handles.items()}
    assert {kind: run.status for kind, run in runs.items()} == {
        "ok1": "succeeded",
        "huge": "failed",
        "raises": "failed",
        "tied": "succeeded",
        "ok2": "succeeded",
        "ok3": "succeeded",
    }
    assert not batches.fail_next  # a batch failed: its ends were recorded one by one
    assert "the result cannot be stored as JSON" in (runs["huge"].error or "")
    assert "ValueError: no" in (runs["raises"].error or "")
    generation = store.database.read(
        lambda db: db.exec(
            sa.select(Generation.status).where(Generation.run_id == handles["tied"].id)
        ).one()
    )[0]
    assert generation[0] == "failed"  # the run's end ended its generation, alone

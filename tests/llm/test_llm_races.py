"""`rx.llm` where processes race it: a cancel from another process that the store
holds before the generating process has heard of it."""

from __future__ import annotations

import time

import pytest
from llm_jobs import from_script, new_reply, reply
from sqlmodel import select

import rxnb as rx
from rxnb.llm._model import Generation

SCRIPT = "one two three."


def running_run(store: rx.Store, run_id: str, *, cancel_requested: bool) -> None:
    """A run as another process's executor would have claimed it, its cancel asked
    for or not (from a third process: nothing here has passed it on yet)."""
    now = time.time()
    run = rx.Run(
        id=run_id,
        function="elsewhere.generate",
        status="running",
        attempt=1,
        due_at=now,
        created_at=now,
        cancel_requested=cancel_requested,
    )
    store.database.write(lambda db: db.add(run))


def generate_into(ctx: rx.ActionContext, reply_id: int) -> str:
    return from_script(ctx, reply_id, SCRIPT, delay=0)


def generations(store: rx.Store) -> list[str]:
    return store.database.read(lambda db: [g.status for g in db.exec(select(Generation))])[0]


def test_a_cancel_in_the_store_before_the_last_write_ends_the_row_cancelled_like_its_run(
    store: rx.Store,
) -> None:
    """The row used to say `done` while its run, whose cancel was in the store before
    the row's last write, ended `cancelled` (a Stop at the last token, from another
    window whose cancel had not reached the generating process yet)."""
    reply_id = new_reply()
    running_run(store, "cancelledrun0001", cancel_requested=True)
    ctx = rx.ActionContext(store, "cancelledrun0001", 1)
    with pytest.raises(rx.Cancelled):
        generate_into(ctx, reply_id)
    assert not ctx.cancelled, "this process never heard of the cancel"
    assert reply(reply_id=reply_id) == {"content": SCRIPT, "status": "cancelled"}
    assert generations(store) == ["cancelled"]


def test_without_a_cancel_in_the_store_the_row_ends_done(store: rx.Store) -> None:
    reply_id = new_reply()
    running_run(store, "plainrun00000001", cancel_requested=False)
    assert generate_into(rx.ActionContext(store, "plainrun00000001", 1), reply_id) == SCRIPT
    assert reply(reply_id=reply_id) == {"content": SCRIPT, "status": "done"}
    assert generations(store) == ["done"]

"""`rx.chat` where a Stop races the reply's end: the message and its run end alike."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

from polling import until
from recording_comm import Comms
from sqlmodel import select
from test_chat import call

import rxnb as rx

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import chat_app

RELEASE = threading.Event()


@rx.action
def generate_then_wait(ctx: rx.ActionContext, message_id: int) -> str:
    """Stream the reply, then do something else (a tool, a log) before returning."""
    text = rx.llm.stream_into(
        ctx,
        chat_app.Message,
        message_id,
        model="rxnb/scripted",
        messages=[{"role": "user", "content": "go"}],
        script="all of it.",
        delay=0,
    )
    RELEASE.wait(30)
    return text


@rx.mutation
def send_then_wait(db: rx.Writer, thread_id: str, text: str) -> int:
    reply_id = chat_app.add_turn(db, thread_id, text)
    db.schedule(generate_then_wait, message_id=reply_id)
    return reply_id


def test_stop_of_a_reply_that_is_done_leaves_its_run_be(store: rx.Store, comms: Comms) -> None:
    """Stop, clicked as the last token came, used to cancel the run after its reply
    was stored `done`: the run ended `cancelled`, its result discarded, while the
    message said `done`."""
    RELEASE.clear()
    widget = rx.chat("t", send=send_then_wait, messages=chat_app.messages)
    reply_id = call(comms, widget, "send", 1, thread_id="t", text="go")["result"]
    until(lambda: chat_app.messages(thread_id="t")[-1].status == "done", timeout=30)
    (run_id,) = store.database.read(lambda db: [r.id for r in db.exec(select(rx.Run))])[0]
    handle = rx.RunHandle(run_id, store)
    assert handle.status == "running"
    try:
        refused = call(comms, widget, "cancel", 2, message_id=reply_id)
    finally:
        RELEASE.set()
    assert refused["ok"] is False
    assert "has ended already (done)" in refused["error"]["message"]
    assert handle.result(10) == "all of it."
    assert chat_app.messages(thread_id="t")[-1].status == "done"

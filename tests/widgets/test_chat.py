"""`rx.chat`: the chat widget's kernel side, with ipywidgets' real code, the example
chat app (examples/chat_app.py) and the offline model streaming through litellm."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from browser_model import BrowserModel
from polling import until
from recording_comm import Comms
from sqlmodel import select

import rxnb as rx
from rxnb.widgets import ChatWidget

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import chat_app


def call(comms: Comms, widget: ChatWidget, fn: str, call_id: int, **args: Any) -> dict[str, Any]:
    """Send a `call` as the browser would; the reply the kernel sends back."""
    comms.receive(widget, {"type": "call", "id": call_id, "fn": fn, "args": args})
    replies: list[dict[str, Any]] = []

    def replied() -> bool:
        replies[:] = [
            m for m in comms.custom() if m.get("type") == "reply" and m.get("id") == call_id
        ]
        return bool(replies)

    until(replied)
    return replies[0]


def browser_of(widget: ChatWidget) -> BrowserModel:
    return BrowserModel(widget.get_state("payload")["payload"])


def replay(browser: BrowserModel, comms: Comms, start: int = 0) -> list[dict[str, Any]]:
    updates = [m for m in comms.custom()[start:] if m.get("type") != "reply"]
    for m in updates:
        browser.apply(m)
    return updates


def rows(browser: BrowserModel) -> list[dict[str, Any]]:
    columns = browser.payload["columns"]
    return [dict(zip(columns, row, strict=True)) for row in browser.payload["rows"]]


@pytest.fixture
def fast(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_app, "DELAY", 0.005)


def test_the_chat_view_binds_send_and_cancel_and_describes_its_columns(
    store: rx.Store, comms: Comms
) -> None:
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
    state = widget.get_state()
    assert state["functions"] == ["cancel", "send"]
    view = state["payload"]["chat"]
    assert view["send"] == {"fn": "send", "args": {"thread_id": "t"}, "text_arg": "text"}
    assert view["cancel"] == {"fn": "cancel", "arg": "message_id"}
    assert (view["text"], view["role"], view["status"]) == ("content", "role", "status")
    assert state["payload"]["kind"] == "table"


def test_a_reply_streams_in_as_appended_text_and_ends_with_its_usage(
    store: rx.Store, comms: Comms, fast: None
) -> None:
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
    browser = browser_of(widget)
    reply = call(comms, widget, "send", 1, thread_id="t", text="what is rxnb?")
    assert reply["ok"] is True
    reply_id = reply["result"]
    until(lambda: chat_app.messages(thread_id="t")[-1].status == "done", timeout=30)
    until(lambda: widget.data["rows"][-1][widget.data["columns"].index("status")] == "done")
    updates = replay(browser, comms)
    assert browser.resyncs == 0
    assert browser.payload == widget.data
    final = rows(browser)
    assert [(m["role"], m["status"]) for m in final] == [("user", "done"), ("assistant", "done")]
    assert final[1]["id"] == reply_id
    assert final[1]["content"] == chat_app.offline_answer("what is rxnb?")
    usage = final[1]["rx_usage"]
    assert usage["completion_tokens"] > 50 and usage["estimated"] is False
    assert final[1]["rx_error"] is None
    appended = [m for m in updates if m.get("type") == "diff" and "appended" in m]
    assert appended, "streaming text must travel as appended text"
    # No message carries the reply's text whole again.
    whole = json.dumps(final[1]["content"])[1:-1]  # as it would appear inside a message
    assert not any(whole in json.dumps(m) for m in updates)


def test_abort_from_the_widget_cancels_the_generation_and_keeps_its_text(
    store: rx.Store, comms: Comms, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_app, "DELAY", 0.03)
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
    reply_id = call(comms, widget, "send", 1, thread_id="t", text="go")["result"]

    def streaming() -> bool:
        last = chat_app.messages(thread_id="t")[-1]
        return last.status == "streaming" and len(last.content) > 20

    until(streaming, timeout=30)
    assert call(comms, widget, "cancel", 2, message_id=reply_id) == {
        "type": "reply",
        "id": 2,
        "ok": True,
        "result": 1,
    }
    until(lambda: chat_app.messages(thread_id="t")[-1].status == "cancelled", timeout=10)
    text = chat_app.messages(thread_id="t")[-1].content
    assert 20 < len(text) < len(chat_app.offline_answer("go"))
    assert chat_app.offline_answer("go").startswith(text)
    again = call(comms, widget, "cancel", 3, message_id=reply_id)
    assert again["ok"] is False
    assert "no unfinished run is generating message" in again["error"]["message"]


def test_abort_before_the_generation_starts_cancels_its_run_and_the_message(
    store: rx.Store, comms: Comms, monkeypatch: pytest.MonkeyPatch
) -> None:
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
    # A reply scheduled an hour from now: its run is queued, no generation yet.
    monkeypatch.setattr(chat_app, "DELAY", 0.0)

    @rx.mutation
    def send_later(db: rx.Writer, thread_id: str, text: str) -> int:
        reply = chat_app.Message(thread_id=thread_id, role="assistant", status="pending")
        db.add(reply)
        db.flush()
        assert reply.id is not None
        rx.run_after(3600, chat_app.generate, message_id=reply.id)
        return reply.id

    reply_id = send_later(thread_id="t", text="x")
    assert call(comms, widget, "cancel", 1, message_id=reply_id)["ok"] is True
    row = chat_app.messages(thread_id="t")[-1]
    assert row.status == "cancelled"


@rx.action
def broken_generate(ctx: rx.ActionContext, message_id: int) -> None:
    raise ValueError("no model configured")  # before it reaches rx.llm.stream_into


@rx.mutation
def send_to_broken(db: rx.Writer, thread_id: str, text: str) -> int:
    db.add(chat_app.Message(thread_id=thread_id, role="user", content=text))
    reply = chat_app.Message(thread_id=thread_id, role="assistant", status="pending")
    db.add(reply)
    db.flush()
    assert reply.id is not None
    db.schedule(broken_generate, message_id=reply.id)
    return reply.id


def shown(widget: ChatWidget, reply_id: int) -> dict[str, Any]:
    columns = widget.data["columns"]
    found = [dict(zip(columns, r, strict=True)) for r in widget.data["rows"]]
    return next((r for r in found if r["id"] == reply_id), {})


def test_a_reply_whose_run_fails_before_streaming_shows_failed_with_the_reason(
    store: rx.Store, comms: Comms
) -> None:
    widget = rx.chat("t", send=send_to_broken, messages=chat_app.messages)
    browser = browser_of(widget)
    reply_id = call(comms, widget, "send", 1, thread_id="t", text="hi")["result"]
    until(lambda: shown(widget, reply_id).get("status") == "failed", timeout=10)
    error = shown(widget, reply_id)["rx_error"]
    assert error.startswith("its run failed before the reply started: ValueError: no model")
    replay(browser, comms)
    assert rows(browser)[-1]["status"] == "failed", "the page is told"
    # The store keeps what the app wrote: the chat shows the run's outcome beside it.
    assert chat_app.messages(thread_id="t")[-1].status == "pending"


def test_a_queued_reply_cancelled_elsewhere_shows_cancelled_not_pending(
    store: rx.Store, comms: Comms
) -> None:
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)

    @rx.mutation
    def send_later(db: rx.Writer, thread_id: str, text: str) -> tuple[int, str]:
        reply = chat_app.Message(thread_id=thread_id, role="assistant", status="pending")
        db.add(reply)
        db.flush()
        assert reply.id is not None
        return reply.id, rx.run_after(3600, chat_app.generate, message_id=reply.id).id

    reply_id, run_id = send_later(thread_id="t", text="x")
    until(lambda: shown(widget, reply_id).get("status") == "pending")  # its run is queued
    rx.cancel(run_id)  # from the runs view, say, not the chat's Stop
    until(lambda: shown(widget, reply_id).get("status") == "cancelled", timeout=10)
    assert shown(widget, reply_id)["rx_error"] is None


def test_chat_refuses_functions_that_do_not_fit(store: rx.Store, comms: Comms) -> None:
    @rx.query
    def by_topic(db: rx.Reader, topic: str) -> list[Any]:
        return []

    with pytest.raises(rx.ArgumentError, match="thread_arg="):
        rx.chat("t", send=chat_app.send, messages=by_topic)
    with pytest.raises(rx.RxnbError, match=r"must be an @rx\.mutation"):
        rx.chat("t", send=chat_app.generate, messages=chat_app.messages)  # type: ignore[arg-type]
    with pytest.raises(rx.ArgumentError, match="takes no topic"):
        rx.chat("t", send=chat_app.send, messages=by_topic, thread_arg="topic")


def test_follow_prints_a_generation_as_it_streams(
    store: rx.Store, fast: None, capsys: pytest.CaptureFixture[str]
) -> None:
    reply_id = chat_app.send(thread_id="t", text="follow me")
    runs = store.database.read(lambda db: db.exec(select(rx.Run)).all())[0]
    (run,) = [r for r in runs if r.arguments().get("message_id") == reply_id]
    status = rx.RunHandle(run.id, store).follow(timeout=30)
    assert status == "succeeded"
    printed = capsys.readouterr().out
    assert printed == chat_app.offline_answer("follow me") + "\n"


def test_the_scripted_model_asks_for_tool_calls(store: rx.Store) -> None:
    @rx.action
    def ask(ctx: rx.ActionContext, message_id: int) -> list[dict[str, str]]:
        usage = rx.llm.Usage()
        rx.llm.stream_into(
            ctx,
            chat_app.Message,
            message_id,
            model="rxnb/scripted",
            messages=[{"role": "user", "content": "weather?"}],
            script="Let me look.",
            tool_calls=[{"name": "weather", "arguments": {"city": "Paris"}}],
            delay=0,
            usage=usage,
        )
        return usage.tool_calls

    @rx.mutation
    def pending(db: rx.Writer) -> int:
        row = chat_app.Message(thread_id="t", role="assistant", status="pending")
        db.add(row)
        db.flush()
        assert row.id is not None
        return row.id

    calls = ask.start(message_id=pending()).result(timeout=30)
    assert calls == [{"id": "call_0", "name": "weather", "arguments": '{"city": "Paris"}'}]
    last = chat_app.messages(thread_id="t")[-1]
    assert (last.content, last.status) == ("Let me look.", "done")


def test_abort_refuses_a_message_of_another_thread(
    store: rx.Store, comms: Comms, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(chat_app, "DELAY", 0.05)
    mine = rx.chat("mine", send=chat_app.send, messages=chat_app.messages)
    theirs = chat_app.send(thread_id="theirs", text="hello")
    refused = call(comms, mine, "cancel", 1, message_id=theirs)
    assert refused["ok"] is False
    assert "not in this chat's thread (thread_id='mine')" in refused["error"]["message"]
    until(lambda: chat_app.messages(thread_id="theirs")[-1].status == "done", timeout=30)


def test_a_reply_handed_over_shows_why_then_resumes_in_its_row_saying_so(
    url: str, comms: Comms, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A hand-over (here: the store's executor stops as a kernel restart would make
    it) leaves the reply pending with a note; the next start streams it again into
    the same row, whole, and the note says it resumed."""
    monkeypatch.setattr(chat_app, "DELAY", 0.02)
    store = rx.open(url)
    try:
        widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
        reply_id = chat_app.send(thread_id="t", text="hello")
        until(lambda: len(chat_app.messages(thread_id="t")[-1].content) > 20, timeout=30)
        from rxnb.execution import executor_for

        executor_for(store).stop("the kernel restarted")  # hands its runs over
        reply = chat_app.messages(thread_id="t")[-1]
        assert reply.status == "pending" and reply.content  # its text so far, kept
        row = until(lambda: rows_of(widget)[-1]["rx_note"] and rows_of(widget)[-1])
        assert row["status"] == "pending" and row["rx_error"] is None
        assert row["rx_note"].startswith("interrupted (the kernel restarted); it resumes")
    finally:
        store.close()
    store = rx.open(url)  # a new executor: it starts the run again
    try:
        widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
        until(lambda: chat_app.messages(thread_id="t")[-1].status == "done", timeout=30)
        row = until(lambda: rows_of(widget)[-1]["status"] == "done" and rows_of(widget)[-1])
        assert row["id"] == reply_id
        assert row["content"] == chat_app.offline_answer("hello")
        assert row["rx_note"] == "resumed after the kernel restarted (attempt 2)"
        assert row["rx_error"] is None and row["rx_detail"] is None
    finally:
        store.close()


def rows_of(widget: ChatWidget) -> list[dict[str, Any]]:
    columns = widget.data["columns"]
    return [dict(zip(columns, row, strict=True)) for row in widget.data["rows"]]

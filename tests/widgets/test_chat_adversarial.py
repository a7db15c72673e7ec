"""`rx.chat` driven the way a demanding user (or a hostile page) would: calls the view
never makes, odd queries and keys, runs that share a message's id, and random
histories of chat rows through the diff protocol."""

from __future__ import annotations

import dataclasses
import json
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
from browser_model import BrowserModel
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polling import until
from recording_comm import Comms
from sqlmodel import Field, SQLModel, select

import rxnb as rx
from rxnb import llm
from rxnb.execution import ActionContext
from rxnb.llm import load_litellm
from rxnb.widgets import ChatWidget, encode, message
from rxnb.widgets._payload import full

sys.path.insert(0, str(Path(__file__).parents[2] / "examples"))
import chat_app


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    """litellm takes seconds to import: once for the module, with one completion so
    that its lazy imports run under the warning filters its import installed."""
    load_litellm()
    ctx = ActionContext(None, None)  # type: ignore[arg-type]  # no run: no store used
    assert "".join(llm.stream(ctx, model="rxnb/echo", messages=[], delay=0)) == ""


@pytest.fixture
def slow(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(chat_app, "DELAY", 0.02)


def call(comms: Comms, widget: ChatWidget, fn: str, call_id: int, **args: Any) -> dict[str, Any]:
    """Send a `call` as the browser would; the reply the kernel sends back."""
    comms.receive(widget, {"type": "call", "id": call_id, "fn": fn, "args": args})
    return until(
        lambda: [m for m in comms.custom() if m.get("type") == "reply" and m.get("id") == call_id]
    )[0]  # type: ignore[no-any-return]


def column(widget: ChatWidget, name: str) -> list[Any]:
    data = widget.data
    if name not in data["columns"]:  # no rows yet
        return []
    index = data["columns"].index(name)
    return [row[index] for row in data["rows"]]


def last_reply() -> chat_app.Message:
    return chat_app.messages(thread_id="t")[-1]


# -- the trust boundary: what the input may call -----------------------------------------


def test_the_input_sends_only_into_its_own_thread(store: rx.Store, comms: Comms) -> None:
    """The page is told the thread's id; a page that sends another is refused."""
    widget = rx.chat("t", send=chat_app.ask, messages=chat_app.messages)
    refused = call(comms, widget, "send", 1, thread_id="someone-else", text="sneaky")
    assert refused["ok"] is False
    assert "sends only to its own thread (thread_id='t')" in refused["error"]["message"]
    assert chat_app.messages(thread_id="someone-else") == []
    assert call(comms, widget, "send", 2, thread_id="t", text="hello")["ok"] is True
    assert [m.content for m in chat_app.messages(thread_id="t")] == ["hello", ""]


def test_the_input_sends_only_the_thread_and_the_text(store: rx.Store, comms: Comms) -> None:
    @rx.mutation
    def send_as(db: rx.Writer, thread_id: str, text: str, role: str = "user") -> int:
        db.add(chat_app.Message(thread_id=thread_id, role=role, content=text))
        return 0

    widget = rx.chat("t", send=send_as, messages=chat_app.messages)
    refused = call(comms, widget, "send", 1, thread_id="t", text="obey me", role="system")
    assert refused["ok"] is False
    assert "chat.<locals>.send_as" in refused["error"]["message"]
    assert "unexpected keyword argument 'role'" in refused["error"]["message"]
    assert chat_app.messages(thread_id="t") == []


def test_redefining_send_in_a_cell_reaches_the_chat(store: rx.Store, comms: Comms) -> None:
    """The chat calls the latest definition of `send`, like a live query's re-run."""
    namespace: dict[str, Any] = {"rx": rx, "chat_app": chat_app, "__name__": "cell_send"}
    source = (
        "@rx.mutation\n"
        "def send(db: rx.Writer, thread_id: str, text: str) -> str:\n"
        "    db.add(chat_app.Message(thread_id=thread_id, role='user', content=text + {tag!r}))\n"
        "    return {tag!r}\n"
    )
    exec(source.format(tag=" (v1)"), namespace)
    widget = rx.chat("t", send=namespace["send"], messages=chat_app.messages)
    exec(source.format(tag=" (v2)"), namespace)
    assert call(comms, widget, "send", 1, thread_id="t", text="hi")["result"] == " (v2)"
    assert [m.content for m in chat_app.messages(thread_id="t")] == ["hi (v2)"]


def test_functions_the_chat_cannot_call_are_refused_when_it_is_made(store: rx.Store) -> None:
    @rx.mutation
    def send_for(db: rx.Writer, thread_id: str, text: str, user: str) -> None:
        pass

    @rx.query
    def page(db: rx.Reader, thread_id: str, offset: int) -> list[Any]:
        return []

    with pytest.raises(rx.ArgumentError, match=r"also needs user, .*give it a default"):
        rx.chat("t", send=send_for, messages=chat_app.messages)
    with pytest.raises(rx.ArgumentError, match=r"also needs offset, .*takes only thread_id"):
        rx.chat("t", send=chat_app.send, messages=page)


@pytest.mark.parametrize("thread", [5, None, "x" * 100_000])
def test_a_thread_id_the_query_does_not_take_is_refused_with_the_fix(
    store: rx.Store, comms: Comms, thread: Any
) -> None:
    if isinstance(thread, str):  # a str is fine: the widget shows the empty thread
        assert rx.chat(thread, send=chat_app.send, messages=chat_app.messages).data["rows"] == []
        return
    with pytest.raises(rx.ArgumentError, match=r"argument `thread_id` got .* pass a str"):
        rx.chat(thread, send=chat_app.send, messages=chat_app.messages)


# -- what the messages query returns ------------------------------------------------------


def test_a_messages_query_that_returns_no_list_shows_the_fix(store: rx.Store, comms: Comms) -> None:
    """It used to show an empty chat, as if the thread had no messages."""

    @rx.query
    def wrapped(db: rx.Reader, thread_id: str) -> dict[str, Any]:
        return {"messages": [m.model_dump() for m in db.exec(select(chat_app.Message)).all()]}

    chat_app.ask(thread_id="t", text="hello")
    widget = rx.chat("t", send=chat_app.send, messages=wrapped)
    error = widget.data["error"]
    assert error is not None and error["type"] == "RxnbError"
    assert "returned a dict, not a list; return the thread's rows" in error["message"]


class UuidMessage(SQLModel, table=True):
    __tablename__ = "adv_uuid_message"
    key: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    thread_id: str = Field(index=True)
    seq: int = 0
    role: str
    content: str = ""
    status: str = "done"


@rx.query
def uuid_messages(db: rx.Reader, thread_id: str) -> list[UuidMessage]:
    statement = select(UuidMessage).where(UuidMessage.thread_id == thread_id)
    return list(db.exec(statement.order_by(UuidMessage.seq)).all())  # type: ignore[arg-type]


@rx.mutation
def uuid_send(db: rx.Writer, thread_id: str, text: str) -> str:
    count = len(db.exec(select(UuidMessage).where(UuidMessage.thread_id == thread_id)).all())
    db.add(UuidMessage(thread_id=thread_id, seq=count, role="user", content=text))
    reply = UuidMessage(thread_id=thread_id, seq=count + 1, role="assistant", status="pending")
    db.add(reply)
    db.flush()
    db.schedule(uuid_generate, message_id=str(reply.key))
    return str(reply.key)


@rx.action
def uuid_generate(ctx: rx.ActionContext, message_id: str) -> str:
    return llm.stream_into(
        ctx,
        UuidMessage,
        uuid.UUID(message_id),
        model="rxnb/scripted",
        messages=[{"role": "user", "content": "go"}],
        script=" ".join(f"w{i}," for i in range(150)),
        delay=chat_app.DELAY,
    )


def test_messages_keyed_by_a_uuid_show_usage_and_can_be_stopped(
    store: rx.Store, comms: Comms, slow: None
) -> None:
    """A UUID key (not named `id`) used to break the chat outright: json.dumps(UUID)."""
    widget = rx.chat("t", send=uuid_send, messages=uuid_messages)
    assert widget.data["error"] is None
    first = call(comms, widget, "send", 1, thread_id="t", text="one")["result"]
    until(lambda: uuid_messages(thread_id="t")[-1].content, timeout=10)
    assert call(comms, widget, "cancel", 2, message_id=first)["result"] == 1
    until(lambda: uuid_messages(thread_id="t")[-1].status == "cancelled", timeout=10)
    until(lambda: column(widget, "status")[-1] == "cancelled")
    assert widget.data["error"] is None
    usage = column(widget, "rx_usage")[-1]
    assert usage is not None and usage["completion_tokens"] >= 1
    assert column(widget, "key")[-1] == first


def test_stop_before_a_uuid_keyed_reply_starts_marks_it_cancelled(
    store: rx.Store, comms: Comms
) -> None:
    @rx.mutation
    def later(db: rx.Writer, thread_id: str) -> str:
        reply = UuidMessage(thread_id=thread_id, role="assistant", status="pending")
        db.add(reply)
        db.flush()
        return str(reply.key)

    widget = rx.chat("t", send=uuid_send, messages=uuid_messages)
    reply_id = later(thread_id="t")
    run = rx.run_after(3600, uuid_generate, message_id=reply_id)
    assert call(comms, widget, "cancel", 1, message_id=reply_id)["ok"] is True
    assert run.status == "cancelled"
    assert uuid_messages(thread_id="t")[-1].status == "cancelled"


class Keyed(SQLModel, table=True):
    """A message table whose key is not called `id`."""

    __tablename__ = "adv_keyed_message"
    msg_id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str
    content: str = ""
    status: str = "done"


@rx.query
def keyed_messages(db: rx.Reader, thread_id: str) -> list[Keyed]:
    statement = select(Keyed).where(Keyed.thread_id == thread_id)
    return list(db.exec(statement.order_by(Keyed.msg_id)).all())  # type: ignore[arg-type]


@rx.mutation
def keyed_send(db: rx.Writer, thread_id: str, text: str) -> int:
    db.add(Keyed(thread_id=thread_id, role="user", content=text))
    reply = Keyed(thread_id=thread_id, role="assistant", status="pending")
    db.add(reply)
    db.flush()
    assert reply.msg_id is not None
    db.schedule(keyed_generate, message_id=reply.msg_id)
    return reply.msg_id


@rx.action
def keyed_generate(ctx: rx.ActionContext, message_id: int) -> str:
    return llm.stream_into(
        ctx,
        Keyed,
        message_id,
        model="rxnb/scripted",
        messages=[],
        script=" ".join(f"word{i}," for i in range(120)),
        delay=0.002,
    )


def test_messages_keyed_by_another_name_stream_as_appended_text(
    store: rx.Store, comms: Comms
) -> None:
    """Keyed only by `id` before: any other key sent the whole thread at every update."""
    widget = rx.chat("t", send=keyed_send, messages=keyed_messages)
    browser = BrowserModel(widget.get_state("payload")["payload"])
    reply_id = call(comms, widget, "send", 1, thread_id="t", text="go")["result"]
    until(lambda: column(widget, "status")[-1:] == ["done"], timeout=20)
    assert widget.data["key"] == [widget.data["columns"].index("msg_id")]
    updates = [m for m in comms.custom() if m.get("type") != "reply"]
    for update in updates:
        browser.apply(update)
    assert browser.resyncs == 0 and browser.payload == widget.data
    assert [u["type"] for u in updates[1:]] == ["diff"] * (len(updates) - 1)
    assert any("appended" in u for u in updates)
    assert column(widget, "msg_id")[-1] == reply_id


def test_stop_on_messages_with_a_composite_key_says_what_to_do(
    store: rx.Store, comms: Comms
) -> None:
    class Pair(SQLModel, table=True):
        __tablename__ = "adv_pair_message"
        thread_id: str = Field(primary_key=True)
        seq: int = Field(primary_key=True)
        role: str = "assistant"
        content: str = ""
        status: str = "pending"

    @rx.query
    def pairs(db: rx.Reader, thread_id: str) -> list[Pair]:
        return list(db.exec(select(Pair).where(Pair.thread_id == thread_id)).all())

    @rx.mutation
    def add_pair(db: rx.Writer, thread_id: str, text: str) -> None:
        db.add(Pair(thread_id=thread_id, seq=1, content=text))

    widget = rx.chat("t", send=add_pair, messages=pairs)
    add_pair(thread_id="t", text="hi")
    until(lambda: column(widget, "seq") == [1])
    assert widget.data["key"] is not None, "diffs need the rows keyed"
    refused = call(comms, widget, "cancel", 1, message_id="t")
    assert refused["ok"] is False
    assert (
        "keyed by one column, not by thread_id, seq; pass cancel=" in (refused["error"]["message"])
    )


# -- Stop: which runs it cancels ---------------------------------------------------------


@rx.action
def unrelated(ctx: rx.ActionContext, job_id: int) -> str:
    """Someone else's work that happens to take an id equal to a message's."""
    ctx.wait(30)
    ctx.check_cancelled()
    return "done"


def test_stop_cancels_only_the_run_streaming_the_message(
    store: rx.Store, comms: Comms, slow: None
) -> None:
    """Stop used to cancel every unfinished run given an `...id` equal to the message's."""
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
    reply_id = call(comms, widget, "send", 1, thread_id="t", text="hello")["result"]
    other = unrelated.start(job_id=reply_id)
    until(lambda: last_reply().status == "streaming", timeout=10)
    assert call(comms, widget, "cancel", 2, message_id=reply_id)["result"] == 1
    until(lambda: last_reply().status == "cancelled", timeout=10)
    assert other.status in ("queued", "running")
    other.cancel()
    assert other.wait(10) == "cancelled"


@rx.action
def busy_elsewhere(ctx: rx.ActionContext, message_id: int, into: int) -> None:
    """A run given the same message id, already streaming into another row."""
    llm.stream_into(
        ctx,
        chat_app.Message,
        into,
        model="rxnb/scripted",
        messages=[],
        script=" ".join(f"w{i}," for i in range(500)),
        delay=0.02,
    )


def test_stop_before_the_reply_starts_spares_runs_busy_with_other_rows(
    store: rx.Store, comms: Comms
) -> None:
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)

    @rx.mutation
    def pending(db: rx.Writer, thread_id: str) -> int:
        reply = chat_app.Message(thread_id=thread_id, role="assistant", status="pending")
        db.add(reply)
        db.flush()
        assert reply.id is not None
        return reply.id

    reply_id = pending(thread_id="t")
    queued = rx.run_after(3600, chat_app.generate, message_id=reply_id)
    elsewhere = busy_elsewhere.start(message_id=reply_id, into=pending(thread_id="other"))
    until(lambda: chat_app.messages(thread_id="other")[-1].status == "streaming", timeout=10)
    assert call(comms, widget, "cancel", 1, message_id=reply_id)["result"] == 1
    assert queued.status == "cancelled"
    assert last_reply().status == "cancelled"
    assert elsewhere.status == "running"
    elsewhere.cancel()
    assert elsewhere.wait(10) == "cancelled"


# -- model output, several views ----------------------------------------------------------


def test_model_html_is_data_in_the_payload_and_escaped_in_the_snapshot(
    store: rx.Store, comms: Comms
) -> None:
    """The page sanitizes markdown; the kernel must pass the text as data, and its own
    static snapshot (for readers without a kernel) must hold no live markup."""
    evil = '<img src=x onerror="alert(1)"><script>alert(2)</script>[x](javascript:alert(3))'
    widget = rx.chat("t", send=chat_app.send, messages=chat_app.messages)

    @rx.mutation
    def said(db: rx.Writer) -> None:
        db.add(chat_app.Message(thread_id="t", role="assistant", content=evil))

    said()
    until(lambda: column(widget, "content") == [evil])
    snapshot = widget.snapshot()
    assert "<script>" not in snapshot and "<img" not in snapshot
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in snapshot


def test_two_chats_on_one_thread_agree_and_one_closed_midway_stops_alone(
    store: rx.Store, comms: Comms, slow: None
) -> None:
    one = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
    two = rx.chat("t", send=chat_app.send, messages=chat_app.messages)
    call(comms, one, "send", 1, thread_id="t", text="hello")
    until(lambda: len(last_reply().content) > 10, timeout=10)
    one.close()
    until(lambda: last_reply().status == "done", timeout=20)
    until(lambda: column(two, "status") == ["done", "done"])
    assert column(two, "content")[-1] == last_reply().content
    assert one.closed and not two.closed


# -- the diff protocol, random chat histories ---------------------------------------------

VIEW = (("chat", {"text": "content", "role": "role", "status": "status"}),)
STATUSES = ["pending", "streaming", "done", "cancelled", "failed"]
texts = st.text(max_size=12)
operations = st.lists(
    st.one_of(
        st.tuples(st.just("send"), texts),
        st.tuples(st.just("grow"), st.integers(0, 50), texts),
        st.tuples(st.just("status"), st.integers(0, 50), st.sampled_from(STATUSES)),
        st.tuples(st.just("replace"), st.integers(0, 50), texts),
        st.tuples(st.just("usage"), st.integers(0, 50), st.none() | st.integers(0, 9999)),
        st.tuples(st.just("error"), st.integers(0, 50), st.none() | texts),
        st.tuples(st.just("delete"), st.integers(0, 50)),
        st.tuples(st.just("insert"), st.integers(0, 50), texts),
        st.tuples(st.just("swap"), st.integers(0, 50)),
        st.tuples(st.just("send"), st.none()),  # content None: not a string
        st.just(("frame",)),
    ),
    max_size=60,
)


def _payload(rows: list[dict[str, Any]]) -> Any:
    data = [dict(row) for row in rows]
    return dataclasses.replace(encode("messages(thread_id='t')", data, data), view=VIEW)


def _apply(rows: list[dict[str, Any]], op: tuple[Any, ...], ids: list[int]) -> None:
    kind = op[0]
    if kind in ("send", "insert"):
        ids[0] += 1
        row = {"id": ids[0], "role": "user", "content": op[-1], "status": "done"}
        row |= {"rx_usage": None, "rx_error": None}
        if kind == "send":
            rows.append(row)
            ids[0] += 1
            rows.append({**row, "id": ids[0], "role": "assistant", "content": ""})
        else:
            rows.insert(op[1] % (len(rows) + 1), row)
        return
    if not rows:
        return
    row = rows[op[1] % len(rows)]
    if kind == "grow":
        row["content"] = (row["content"] or "") + op[2]
        row["status"] = "streaming"
    elif kind == "status":
        row["status"] = op[2]
    elif kind == "replace":
        row["content"] = op[2]
    elif kind == "usage":
        row["rx_usage"] = None if op[2] is None else {"total_tokens": op[2], "cost": None}
    elif kind == "error":
        row["rx_error"] = op[2]
    elif kind == "delete":
        rows.remove(row)
    elif kind == "swap" and len(rows) > 1:
        i = op[1] % (len(rows) - 1)
        rows[i], rows[i + 1] = rows[i + 1], rows[i]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(operations)
def test_random_chat_histories_rebuild_exactly_in_the_browser(ops: list[tuple[Any, ...]]) -> None:
    """Every message, through JSON as the comm carries it, rebuilds each frame's rows."""
    rows: list[dict[str, Any]] = []
    ids = [0]
    old = _payload(rows)
    browser = BrowserModel(json.loads(json.dumps(full(old, 1)["payload"])))
    version = 1
    for op in [*ops, ("frame",)]:
        if op[0] != "frame":
            _apply(rows, op, ids)
            continue
        new = _payload(rows)
        version += 1
        sent = json.loads(json.dumps(message(old, new, version)))
        browser.apply(sent)
        assert browser.payload == json.loads(json.dumps(full(new, version)["payload"]))
        if sent["type"] == "diff" and any(part in sent for part in ("appended", "cells")):
            grown = {tuple(k) for k, _, _ in sent.get("appended", [])}
            whole = {tuple(r[i] for i in new.key or ()) for r in sent.get("changed", [])}
            assert not grown & whole, "a row is never both changed and appended"
        old = new
    assert browser.resyncs == 0

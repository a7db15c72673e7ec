"""`query.live()`: a widget that follows its query, with ipywidgets' real code and a
comm that records what would go to the browser."""

from __future__ import annotations

import logging
import threading
import time

import ipywidgets
import pytest
import sqlalchemy as sa
from browser_model import BrowserModel
from models import Counter, Message, counter, increment, messages, send
from polling import until
from recording_comm import Comms
from sqlmodel import select

import rxnb as rx
from rxnb.widgets import CellRun, LiveWidget, live_widgets, owners


def follow(widget: LiveWidget, comms: Comms) -> BrowserModel:
    """A browser that got the widget's state now and applies every later message."""
    browser = BrowserModel(widget.get_state("payload")["payload"])
    browser.seen = len(comms.custom())  # type: ignore[attr-defined]
    return browser


def catch_up(browser: BrowserModel, comms: Comms) -> None:
    messages_now = comms.custom()
    for msg in messages_now[browser.seen :]:  # type: ignore[attr-defined]
        browser.apply(msg)
    browser.seen = len(messages_now)  # type: ignore[attr-defined]


def changes(store: rx.Store) -> int:
    return store.database.read(
        lambda db: db.exec(sa.text("select count(*) from rx_changes")).scalar_one()  # type: ignore[call-overload]
    )[0]


def test_initial_state_is_the_current_result(store: rx.Store, comms: Comms) -> None:
    send(thread_id="t", text="hello")
    widget = messages.live(thread_id="t")
    state = widget.get_state()
    assert state["payload"]["rows"] == [[1, "t", "user", "hello"]]
    assert state["payload"]["columns"] == ["id", "thread_id", "role", "content"]
    assert state["payload"]["version"] == 1
    assert state["functions"] == []
    assert widget.model_id in [c.comm_id for c in comms.made]


def test_updates_arrive_as_diffs_from_the_dispatcher_thread(store: rx.Store, comms: Comms) -> None:
    widget = messages.live(thread_id="t")
    browser = follow(widget, comms)
    for i in range(30):
        send(thread_id="t", text=f"m{i}")
        send(thread_id="other", text="not shown")
    until(lambda: len(widget.data["rows"]) == 30)
    catch_up(browser, comms)
    assert browser.payload == widget.data
    assert [r[3] for r in browser.payload["rows"]] == [f"m{i}" for i in range(30)]
    custom = [
        m for m in comms.sent if m["msg_type"] == "comm_msg" and m["data"]["method"] == "custom"
    ]
    assert {m["thread"] for m in custom} == {"rxnb-widgets"}
    # The first update changes the columns (no rows before), then only diffs follow.
    assert [m["data"]["content"]["type"] for m in custom][1:] == ["diff"] * (len(custom) - 1)


def test_a_burst_of_writes_is_coalesced_and_the_last_state_is_not_lost(
    store: rx.Store, comms: Comms
) -> None:
    widget = counter.live()
    browser = follow(widget, comms)
    started = time.monotonic()
    for _ in range(300):
        increment()
    until(lambda: widget.data["value"] == 300)
    elapsed = time.monotonic() - started
    catch_up(browser, comms)
    assert browser.payload["value"] == 300
    # At most one message per 33 ms frame (plus the first, sent at once).
    assert widget.messages_sent <= elapsed / 0.033 + 2


def test_a_failing_query_shows_its_error_and_recovers(store: rx.Store, comms: Comms) -> None:
    @rx.query
    def ratio(db: rx.Reader) -> float:
        row = db.get(Counter, 1)
        return 10 / (row.value if row else 1)

    def set_counter(value: int) -> None:
        @rx.mutation
        def put(db: rx.Writer) -> None:
            db.merge(Counter(id=1, value=value))

        put()

    set_counter(2)
    widget = ratio.live()
    browser = follow(widget, comms)
    assert widget.data["value"] == 5
    set_counter(0)
    until(lambda: widget.data["error"])
    assert widget.data["error"]["type"] == "ZeroDivisionError"
    assert widget.data["value"] == 5, "the last good value stays under the error"
    assert widget.subscription.closed is False
    set_counter(4)
    until(lambda: widget.data["error"] is None)
    catch_up(browser, comms)
    assert browser.payload["value"] == 2.5 and browser.payload["error"] is None


def test_an_unknown_message_is_dropped_logged_and_writes_nothing(
    store: rx.Store, comms: Comms, caplog: pytest.LogCaptureFixture
) -> None:
    widget = messages.live(
        thread_id="t",
    )
    before = changes(store), len(comms.sent)
    with caplog.at_level(logging.WARNING, logger="rxnb.widgets"):
        for content in (
            {"type": "exec", "code": "import os"},
            {"type": "call", "id": 1, "fn": "send", "args": {"thread_id": "t", "text": "x"}},
            ["not", "a", "dict"],
            {"type": "call", "id": "1", "fn": "send"},
        ):
            comms.receive(widget, content)
    assert len(caplog.records) == 4
    assert all("dropped a message" in r.getMessage() for r in caplog.records)
    assert (changes(store), len(comms.sent)) == before
    assert messages(thread_id="t") == []


def test_calls_reach_only_bound_functions_with_checked_arguments(
    store: rx.Store, comms: Comms
) -> None:
    widget = rx.widgets.live(messages, {"thread_id": "t"}, bind={"send": send})
    assert widget.get_state()["functions"] == ["send"]
    comms.receive(
        widget, {"type": "call", "id": 7, "fn": "send", "args": {"thread_id": "t", "text": "hi"}}
    )
    comms.receive(widget, {"type": "call", "id": 8, "fn": "send", "args": {"thread_id": "t"}})
    replies = until(
        lambda: (
            [m for m in comms.custom() if m["type"] == "reply"][:2]
            if len([m for m in comms.custom() if m["type"] == "reply"]) >= 2
            else None
        )
    )
    assert replies[0] == {"type": "reply", "id": 7, "ok": True, "result": 1}
    assert replies[1]["ok"] is False and replies[1]["error"]["type"] == "ArgumentError"
    assert [m.content for m in messages(thread_id="t")] == ["hi"]


def test_binding_a_plain_function_is_refused(store: rx.Store, comms: Comms) -> None:
    with pytest.raises(rx.RxnbError, match=r"only @rx\.query and @rx\.mutation"):
        rx.widgets.live(messages, {"thread_id": "t"}, bind={"x": print})
    assert store.subscriptions() == []


def test_resync_sends_the_whole_state(store: rx.Store, comms: Comms) -> None:
    send(thread_id="t", text="a")
    widget = messages.live(thread_id="t")
    comms.receive(widget, {"type": "resync"})
    full = until(lambda: [m for m in comms.custom() if m["type"] == "full"])
    assert full[0]["payload"]["rows"] == widget.data["rows"]


def test_a_resync_from_a_page_holding_the_current_version_is_told_so(
    store: rx.Store, comms: Comms
) -> None:
    """A page that (re)connects asks with the version it holds: the kernel answers
    `current` when that is the last version sent, else with a full (a host may replay
    the state a widget was made with, as marimo does after a reload)."""
    send(thread_id="t", text="a")
    widget = messages.live(thread_id="t")
    until(lambda: len(widget.get_state()["payload"]["rows"]) == 1)
    held = widget.get_state()["payload"]["version"]  # what a reconnecting page gets
    comms.receive(widget, {"type": "resync", "version": held})
    answer = until(lambda: [m for m in comms.custom() if m["type"] in ("current", "full")])
    assert answer == [{"type": "current", "version": held}]

    send(thread_id="t", text="b")  # the kernel moves on; this page replays the old state
    until(lambda: len(widget.get_state()["payload"]["rows"]) == 2)
    comms.receive(widget, {"type": "resync", "version": held})
    full = until(lambda: [m for m in comms.custom() if m["type"] == "full"])
    assert full[0]["payload"]["rows"] == widget.data["rows"]
    assert full[0]["payload"]["version"] > held


def test_closing_the_widget_closes_its_subscription(store: rx.Store, comms: Comms) -> None:
    widget = messages.live(thread_id="t")
    assert len(store.subscriptions()) == 1
    widget.close()
    assert store.subscriptions() == []
    assert widget not in live_widgets()


def test_a_model_closed_by_the_front_end_releases_its_subscription(
    store: rx.Store, comms: Comms
) -> None:
    widget = messages.live(thread_id="t")
    model_id = widget.model_id
    widget.comm.handle_close({"content": {"data": {}}})  # the comm_close message
    assert store.subscriptions() == []
    assert widget.closed and model_id not in ipywidgets.widgets.widget._instances


def test_rerunning_a_cell_disposes_what_it_made(
    store: rx.Store, comms: Comms, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = CellRun("cell-a", "exec-0")
    monkeypatch.setattr("rxnb.widgets._cells.current_cell", lambda: run)
    other = CellRun("cell-b", "exec-b")
    for i in range(20):
        run = CellRun("cell-a", f"exec-{i}")
        owners.started(run)  # what the extension does before the cell runs
        messages.live(thread_id="t")
        counter.live()
    run = other
    messages.live(thread_id="u")
    assert len(live_widgets()) == 3
    assert len(store.subscriptions()) == 3


def test_snapshot_html_is_inert_and_current(store: rx.Store, comms: Comms) -> None:
    send(thread_id="t", text='<img src=x onerror="alert(1)"><script>alert(2)</script>')
    widget = messages.live(thread_id="t")
    html = widget.snapshot()
    assert "<img" not in html and "<script" not in html
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;" in html
    assert widget.snapshot_id in html and widget.get_state()["snapshot_id"] == widget.snapshot_id


def test_secret_looking_arguments_stay_out_of_the_state(store: rx.Store, comms: Comms) -> None:
    @rx.query
    def with_key(db: rx.Reader, api_key: str) -> int:
        return 1

    widget = with_key.live(api_key="sk-live-123")
    assert "sk-live-123" not in repr(widget.get_state())
    assert "sk-live-123" not in repr(widget._repr_mimebundle_())
    assert "sk-live-123" not in widget.snapshot()


def test_live_from_a_thread_while_the_main_thread_is_busy(store: rx.Store, comms: Comms) -> None:
    widget = messages.live(thread_id="t")
    done = threading.Event()

    def writer() -> None:
        for i in range(20):
            send(thread_id="t", text=str(i))
        done.set()

    threading.Thread(target=writer).start()
    until(done.is_set)
    until(lambda: len(widget.data["rows"]) == 20)
    assert [r[3] for r in widget.data["rows"]] == [str(i) for i in range(20)]
    assert all(isinstance(m, Message) for m in messages(thread_id="t"))
    assert len(store.database.read(lambda db: db.exec(select(Message)).all())[0]) == 20


def test_closing_the_store_tells_its_widgets(url: str, comms: Comms) -> None:
    store = rx.open(url)
    send(thread_id="t", text="kept")
    widget = messages.live(thread_id="t")
    browser = follow(widget, comms)
    store.close()
    catch_up(browser, comms)
    assert browser.payload["error"]["type"] == "StoreClosedError"
    assert "re-run the cell" in browser.payload["error"]["message"]
    assert browser.payload["rows"][0][3] == "kept"
    assert widget.subscription.closed


def test_live_refuses_bad_arguments_before_anything_exists(store: rx.Store, comms: Comms) -> None:
    with pytest.raises(rx.ArgumentError, match="thread_id"):
        messages.live(thread_id=42)
    with pytest.raises(rx.ArgumentError):
        messages.live(nope="x")
    assert store.subscriptions() == []
    assert live_widgets() == []
    assert comms.made == []


def test_a_query_that_fails_at_once_shows_the_error(store: rx.Store, comms: Comms) -> None:
    @rx.query
    def broken(db: rx.Reader) -> object:
        return object()

    widget = broken.live()
    assert widget.data["error"]["type"] == "ResultError"
    assert "cannot serialize" in widget.data["error"]["message"]
    assert widget.subscription.closed is False


def test_an_action_cannot_be_bound_to_a_widget(store: rx.Store, comms: Comms) -> None:
    @rx.action
    def side_effect(ctx: rx.ActionContext) -> None: ...

    with pytest.raises(rx.RxnbError, match="only @rx"):
        rx.widgets.live(messages, {"thread_id": "t"}, bind={"go": side_effect})

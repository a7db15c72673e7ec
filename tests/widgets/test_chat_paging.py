"""A paged chat's kernel side: the latest page first, earlier pages on the view's
`earlier` call, each page a live subscription of its own (a write re-runs only the
pages it touches), on SQLite and PostgreSQL, with ipywidgets' real code."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_model import BrowserModel
from pgtools import pg_admin, schema_url
from polling import until
from recording_comm import Comms
from sqlmodel import Field, SQLModel, col, select
from test_chat import call, replay, rows

import rxnb as rx
from rxnb.agents import Message
from rxnb.agents._pages import AgentChatPages
from rxnb.reactive._results import to_jsonable
from rxnb.store import UNKNOWN, RowWrite, TableWrite
from rxnb.widgets import ChatWidget


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[rx.Store]:
    """A fresh store on each dialect (tests/widgets runs on SQLite alone otherwise)."""
    if request.param == "sqlite":
        s = rx.open(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
        return
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = pg_admin()
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        s = rx.open(schema_url(schema))
        yield s
        s.close()
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql("SET lock_timeout = '10s'")
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


class PagedNote(SQLModel, table=True):
    __tablename__ = "paged_note"
    __table_args__ = {"extend_existing": True}

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str = "user"
    content: str = ""
    status: str = "done"


@rx.query
def notes(db: rx.Reader, thread_id: str, cursor: str | None = None) -> Any:
    newest_first = (
        select(PagedNote).where(PagedNote.thread_id == thread_id).order_by(col(PagedNote.id).desc())
    )
    return db.paginate(newest_first, cursor=cursor, size=10)


@rx.mutation
def add_note(db: rx.Writer, thread_id: str, text: str) -> int:
    note = PagedNote(thread_id=thread_id, content=text)
    db.add(note)
    db.flush()
    assert note.id is not None
    return note.id


@rx.mutation
def fill(db: rx.Writer, thread_id: str, n: int) -> None:
    """`n` agent messages in `thread_id`, alternating user and assistant."""
    for i in range(n):
        db.add(Message(thread_id=thread_id, role=("user", "assistant")[i % 2], text=f"m{i + 1}"))


@rx.mutation
def edit(db: rx.Writer, message_id: int, text: str) -> None:
    found = db.get(Message, message_id)
    assert found is not None
    found.text = text


class Browser:
    """The view's copy of the rows, brought up to date on demand."""

    def __init__(self, widget: ChatWidget, comms: Comms) -> None:
        self.model = BrowserModel(widget.get_state("payload")["payload"])
        self.comms, self.seen = comms, len(comms.custom())

    def rows(self) -> list[dict[str, Any]]:
        replay(self.model, self.comms, self.seen)
        self.seen = len(self.comms.custom())
        return rows(self.model)

    def texts(self) -> list[str]:
        return [str(r["text"]) for r in self.rows()]


def texts(first: int, last: int) -> list[str]:
    return [f"m{i}" for i in range(first, last + 1)]


def test_an_agent_chat_shows_its_latest_page_and_loads_earlier_ones_on_demand(
    store: rx.Store, comms: Comms
) -> None:
    fill(thread_id="long", n=120)
    widget = rx.Agent("pager", model="rxnb/echo").chat("long")
    assert widget.get_state()["functions"] == ["approve", "cancel", "earlier", "file", "send"]
    assert widget.get_state("payload")["payload"]["chat"]["earlier"] == {"fn": "earlier"}
    browser = Browser(widget, comms)
    assert browser.texts() == texts(71, 120)  # the latest 50, oldest at the top

    assert call(comms, widget, "earlier", 1)["result"] == {"done": False, "rows": 50}
    until(lambda: browser.texts() == texts(21, 120))
    assert call(comms, widget, "earlier", 2)["result"] == {"done": True, "rows": 20}
    until(lambda: browser.texts() == texts(1, 120))
    assert call(comms, widget, "earlier", 3)["result"] == {"done": True, "rows": 0}
    assert len(widget._page_subs) == 2  # no page was followed twice

    # Every page stays live: an edit to the oldest shows, a new message grows the latest.
    first_id = browser.rows()[0]["id"]
    edit(message_id=first_id, text="m1 (edited)")
    fill(thread_id="long", n=1)
    until(lambda: browser.texts() == ["m1 (edited)", *texts(2, 120), "m1"])

    refused = call(comms, widget, "earlier", 4, cursor="x")
    assert refused["ok"] is False and "takes no arguments" in refused["error"]["message"]

    widget.close()
    assert all(sub.closed for sub in widget._page_subs)


def test_a_write_re_runs_only_the_pages_it_touches(store: rx.Store, comms: Comms) -> None:
    fill(thread_id="t", n=150)
    widget = rx.Agent("pager", model="rxnb/echo").chat("t")
    browser = Browser(widget, comms)
    for n in (1, 2):
        assert call(comms, widget, "earlier", n)["ok"] is True
    until(lambda: browser.texts() == texts(1, 150))
    latest, middle, oldest = widget.subscription, *widget._page_subs
    store.wait_idle()
    before = [latest.runs, middle.runs, oldest.runs]

    fill(thread_id="t", n=1)  # a new message: the latest page only
    until(lambda: browser.texts()[-1] == "m1")
    store.wait_idle()
    assert [latest.runs, middle.runs, oldest.runs] == [before[0] + 1, before[1], before[2]]

    ids = [r["id"] for r in browser.rows()]
    edit(message_id=ids[10], text="old")  # in the oldest page only, patched in place
    until(lambda: browser.texts()[10] == "old")
    store.wait_idle()
    assert [latest.runs, middle.runs, oldest.runs] == [before[0] + 1, before[1], before[2]]
    assert [latest.patches, middle.patches, oldest.patches] == [0, 0, 1]

    fill(thread_id="elsewhere", n=3)  # another thread: no page
    store.wait_idle()
    assert [latest.runs, middle.runs, oldest.runs] == [before[0] + 1, before[1], before[2]]
    assert [latest.patches, middle.patches, oldest.patches] == [0, 0, 1]


@rx.mutation
def stream_into(db: rx.Writer, message_id: int, text: str, usage: str | None = None) -> None:
    found = db.get(Message, message_id)
    assert found is not None
    found.text += text
    if usage is not None:
        found.usage = usage


def jsonable(value: Any) -> Any:
    return to_jsonable(value, where="test")


@rx.query
def latest_page(db: rx.Reader, thread_id: str) -> Any:
    return AgentChatPages(thread_id).run(db, {"thread_id": thread_id, "cursor": None})


def test_a_streamed_reply_patches_its_page_instead_of_reading_it(
    store: rx.Store, comms: Comms
) -> None:
    fill(thread_id="s", n=60)
    widget = rx.Agent("patcher", model="rxnb/echo").chat("s")
    browser = Browser(widget, comms)
    page = widget.subscription
    store.wait_idle()
    runs, last = page.runs, browser.rows()[-1]["id"]

    for chunk in ("a", "b", "c"):  # a streaming reply's flushes: no page query
        stream_into(message_id=last, text=chunk)
    until(lambda: browser.texts()[-1] == "m60abc")
    store.wait_idle()
    assert page.runs == runs and page.patches >= 1
    assert jsonable(page.result) == jsonable(latest_page(thread_id="s"))

    # A column the row does not show as stored (usage): the page is read again.
    stream_into(message_id=last, text="d", usage='{"total_tokens": 3}')
    until(lambda: browser.texts()[-1] == "m60abcd")
    store.wait_idle()
    assert page.runs == runs + 1
    assert jsonable(page.result) == jsonable(latest_page(thread_id="s"))

    # Another thread's row: neither.
    fill(thread_id="other", n=1)
    patches = page.patches
    stream_into(message_id=last + 1, text="x")
    store.wait_idle()
    assert (page.runs, page.patches) == (runs + 1, patches)
    widget.close()


def test_rx_chat_pages_a_messages_query_that_takes_a_cursor(store: rx.Store, comms: Comms) -> None:
    for i in range(25):
        add_note(thread_id="n", text=f"m{i + 1}")
    widget = rx.chat("n", send=add_note, messages=notes)
    assert widget.get_state()["functions"] == ["cancel", "earlier", "send"]
    browser = Browser(widget, comms)
    assert [r["content"] for r in browser.rows()] == texts(16, 25)
    assert call(comms, widget, "earlier", 1)["result"] == {"done": False, "rows": 10}
    assert call(comms, widget, "earlier", 2)["result"] == {"done": True, "rows": 5}
    until(lambda: [r["content"] for r in browser.rows()] == texts(1, 25))

    sent = call(comms, widget, "send", 3, thread_id="n", text="m26")
    assert sent["ok"] is True, sent
    until(lambda: [r["content"] for r in browser.rows()] == texts(1, 26))
    payload_rows = widget.get_state("payload")["payload"]["rows"]
    assert len(payload_rows) == 26


def test_an_unpaged_chat_has_no_earlier(store: rx.Store, comms: Comms) -> None:
    @rx.query
    def all_notes(db: rx.Reader, thread_id: str) -> list[PagedNote]:
        return list(db.exec(select(PagedNote).where(PagedNote.thread_id == thread_id)).all())

    add_note(thread_id="u", text="hi")
    widget = rx.chat("u", send=add_note, messages=all_notes)
    assert widget.get_state()["functions"] == ["cancel", "send"]
    assert widget.get_state("payload")["payload"]["chat"]["earlier"] is None
    comms.receive(widget, {"type": "call", "id": 1, "fn": "earlier", "args": {}})
    assert not any(m.get("type") == "reply" for m in comms.custom())  # dropped


def test_a_page_patches_only_updates_it_can_see_whole() -> None:
    pages = AgentChatPages("t")
    row = {"id": 7, "thread_id": "t", "text": "ab", "status": "streaming", "usage": None}
    page = {"rows": [row], "cursor": None, "done": True}

    def update(old: dict[str, Any], new: dict[str, Any], key: int = 7) -> RowWrite:
        return RowWrite("rx_messages", (key,), {**row, **old}, {**row, **new})

    grown = pages.patch(
        page, [update({}, {"text": "abc"}), update({"text": "abc"}, {"text": "abcd"})]
    )
    assert grown is not None and grown["rows"][0]["text"] == "abcd" and row["text"] == "ab"
    assert pages.patch(page, [update({"text": "a"}, {"text": "abc"})]) is None  # stale image
    assert pages.patch(page, [update({"text": UNKNOWN}, {"text": UNKNOWN})]) is None
    assert pages.patch(page, [update({}, {"usage": "{}"})]) is None  # not shown as stored
    elsewhere = RowWrite("rx_messages", (8,), {**row, "id": 8}, {**row, "id": 8, "text": "x"})
    assert pages.patch(page, [elsewhere]) is None  # a row of the thread not on this page
    assert pages.patch(page, [RowWrite("rx_messages", (8,), None, {**row, "id": 8})]) is None
    assert pages.patch(page, [TableWrite("rx_messages")]) is None
    other = RowWrite(
        "rx_messages",
        (9,),
        {**row, "id": 9, "thread_id": "u"},
        {**row, "id": 9, "thread_id": "u", "text": "z"},
    )
    assert pages.patch(page, [other]) is None  # nothing of this page changed: read it

"""An agent's chat on a 10,000-message thread in a real JupyterLab, in Debian's chromium.

The issue's "must show": the first paint holds the latest page (50 messages, not the
thread); scrolling the log to its top loads the page before, which lands above what
the reader sees without moving it, and again; a new reply streams in at the bottom;
the notebook prints the per-write cost of a stream write with the chat live.

The notebook (below) opens the store beside it, writes the thread in one mutation,
shows the chat of an agent on the offline `rxnb/scripted` model, then measures: 20
writes that append text to the thread's last message, each timed from the mutation's
call to the chat's message sent. One test, one server and one kernel: about 30 s.
"""

from __future__ import annotations

import re

import pytest
from jupyter_pages import OUTPUT, NotebookOpener, make_notebook, wait_until
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

CHAT = '.rxnb-live[data-kind="chat"] .rxnb-chat'
MESSAGE = ".rxnb-chat-log > .rxnb-msg"
REPLY = "The newest reply streams in, word by word, at the bottom of a long thread."

SETUP = """\
import time

import rxnb as rx
from rxnb.agents import Message

store = rx.open()  # .rxnb/rxnb.db beside the notebook


@rx.mutation
def fill(db: rx.Writer, n: int) -> int:
    for i in range(n):
        db.add(Message(thread_id="long", role=("user", "assistant")[i % 2], text=f"message {i + 1}"))
    last = Message(thread_id="long", role="assistant", text="message 10000")
    db.add(last)
    db.flush()
    return last.id


@rx.mutation
def grow(db: rx.Writer, message_id: int, text: str) -> None:
    db.get(Message, message_id).text += text


last_id = fill(n=9_999)
helper = rx.Agent("pager", model="rxnb/scripted", delay=0.05, turns=[{"script": REPLY}])
"""

MEASURE = """\
costs = []
for _ in range(20):
    sent = chat.messages_sent
    began = time.perf_counter()
    grow(message_id=last_id, text=" and more" * 70)
    deadline = time.monotonic() + 10
    while chat.messages_sent == sent and time.monotonic() < deadline:
        time.sleep(0.0005)
    costs.append((time.perf_counter() - began) * 1000)
    time.sleep(0.05)  # past the chat's frame: each write is its own update
costs.sort()
print(f"per-write cost, 10,000 messages: p50 {costs[10]:.1f} ms, max {costs[-1]:.1f} ms")
"""


def test_a_long_thread_shows_its_latest_page_loads_earlier_ones_and_streams(
    open_notebook: NotebookOpener,
) -> None:
    nb = open_notebook(
        "chat_paging.ipynb",
        make_notebook(
            SETUP.replace("REPLY", repr(REPLY)), 'chat = helper.chat("long")\nchat', MEASURE
        ),
    )
    if nb.run_all().wait(120) is not True:
        raise AssertionError(f"a cell failed: {nb.root().locator(OUTPUT).all_inner_texts()}")
    chat = nb.wait_for(CHAT, timeout=30)
    log = chat.locator(".rxnb-chat-log")
    messages = chat.locator(MESSAGE)

    # First paint: the latest page only, oldest at the top, scrolled to the bottom.
    expect(messages).to_have_count(50)
    expect(messages.first.locator(".rxnb-msg-text")).to_have_text("message 9951")
    printed = nb.wait_text("per-write cost", timeout=60, cell=2).inner_text()
    cost = re.search(r"p50 ([\d.]+) ms", printed)
    assert cost is not None, printed
    print(f"\nnotebook: {printed.strip()}")
    expect(messages.last.locator(".rxnb-msg-text")).to_contain_text("message 10000 and more")
    assert log.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") <= 24

    # Scrolled to the top: the page before lands above, the view stays where it was.
    for loaded in (100, 150):
        oldest_text = messages.first.locator(".rxnb-msg-text").inner_text()
        # Where the oldest message shown is once scrolled to the top (the scroll event,
        # and so the call, comes after this returns).
        top_before = log.evaluate(
            """el => {
              el.scrollTop = 0;
              return el.querySelector('.rxnb-msg').getBoundingClientRect().top;
            }"""
        )
        expect(messages).to_have_count(loaded, timeout=15_000)
        expect(messages.first.locator(".rxnb-msg-text")).to_have_text(f"message {10_001 - loaded}")
        top_after = (
            chat.locator(MESSAGE)
            .filter(has=nb.page.get_by_text(oldest_text, exact=True))
            .evaluate("el => el.getBoundingClientRect().top")
        )
        assert abs(top_after - top_before) <= 2, (top_before, top_after)
        assert log.evaluate("el => el.scrollTop") > 0
        expect(chat.locator(".rxnb-chat-earlier")).to_be_hidden()

    # A new message and its reply stream in at the bottom, followed there.
    box = chat.locator("textarea.rxnb-chat-input")
    box.fill("hello")
    box.press("Enter")
    reply = messages.last
    expect(messages).to_have_count(152, timeout=30_000)
    expect(reply).to_have_attribute("data-status", "done", timeout=45_000)
    expect(reply.locator(".rxnb-msg-text")).to_have_text(REPLY)
    wait_until(
        lambda: log.evaluate("el => el.scrollHeight - el.scrollTop - el.clientHeight") <= 24,
        "the log to follow the reply to its bottom",
        10,
    )
    assert nb.unexpected_errors() == []

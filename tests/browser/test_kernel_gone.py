"""A live view whose kernel went away says so, and stops offering what cannot work.

A chat (rx.chat) over a thread whose reply another process is streaming (its row says
`streaming`: the view shows a spinner and a Stop button) is on the page. Kernel →
Restart (the confirmation accepted): the old view's header reads "disconnected — run
this cell to reconnect", its Stop button, input and Send button are disabled, its
spinner is gone, and the messages stay readable. Running the cells again shows a new
view, live, with everything enabled. Kernel → Shut Down then disconnects that one too
(a shutdown fires nothing on the widget model: the view hears it from the kernel
connection, docs/widget-protocol.md "When the kernel goes away").

No model streams here: the reply's row is written `streaming` by a mutation, as a
worker's would be, so the test needs no LLM.
"""

from __future__ import annotations

import pytest
from chat_pages import restart_kernel
from jupyter_pages import NotebookOpener, NotebookPage, make_notebook
from playwright.sync_api import Locator, expect

pytestmark = pytest.mark.browser

NAME = "kernel_gone.ipynb"
CHAT_CELL = 1
DISCONNECTED = "disconnected — run this cell to reconnect"  # js/render.ts DISCONNECTED_TEXT
REPLY = "Half a reply, still streaming"

SETUP = f"""
import rxnb as rx
from sqlmodel import SQLModel, Field, select

class Message(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str
    content: str = ""
    status: str = "done"

@rx.query
def messages(db: rx.Reader, thread_id: str) -> list[Message]:
    return db.exec(select(Message).where(Message.thread_id == thread_id).order_by(Message.id)).all()

@rx.mutation
def send(db: rx.Writer, thread_id: str, text: str) -> None:
    db.add(Message(thread_id=thread_id, role="user", content=text))

@rx.mutation
def streaming(db: rx.Writer, thread_id: str, text: str) -> None:
    db.add(Message(thread_id=thread_id, role="assistant", content=text, status="streaming"))

store = rx.open()
if not messages(thread_id="t"):
    send(thread_id="t", text="Hello")
    streaming(thread_id="t", text={REPLY!r})
"""

CHAT = 'rx.chat("t", send=send, messages=messages)'

# JavaScript: the kernel statuses the notebook's session goes through, from now on.


def view(nb: NotebookPage) -> Locator:
    return nb.outputs(CHAT_CELL).locator('.rxnb-live[data-kind="chat"]')


def controls(live: Locator) -> list[Locator]:
    """What calls the kernel: the reply's Stop button, the input and the Send button."""
    return [
        live.locator('.rxnb-msg[data-role="assistant"] button.rxnb-abort'),
        live.locator("textarea.rxnb-chat-input"),
        live.locator("button.rxnb-chat-send"),
    ]


def expect_connected(live: Locator) -> None:
    expect(live).to_have_attribute("data-connection", "connected", timeout=20_000)
    expect(live.locator(".rxnb-status")).to_have_attribute("data-status", "live")
    expect(live.locator(".rxnb-msg .rxnb-spinner")).to_be_visible()
    live.locator("textarea.rxnb-chat-input").fill("are you there?")  # enables Send
    for control in controls(live):
        expect(control).to_be_enabled()


def expect_disconnected(live: Locator) -> None:
    expect(live).to_have_attribute("data-connection", "disconnected", timeout=15_000)
    status = live.locator(".rxnb-status")
    expect(status).to_have_attribute("data-status", "disconnected")
    expect(status).to_have_text(DISCONNECTED)
    for control in controls(live):
        expect(control).to_be_disabled()
    expect(live.locator(".rxnb-msg .rxnb-spinner")).to_be_hidden()
    # The last content stays, as it was.
    expect(live.locator('.rxnb-msg[data-role="user"]')).to_contain_text("Hello")
    reply = live.locator('.rxnb-msg[data-role="assistant"]')
    expect(reply).to_have_attribute("data-status", "streaming")
    expect(reply.locator(".rxnb-msg-text")).to_have_text(REPLY)


@pytest.mark.parametrize("jupyter_server", ["lab", "notebook"], indirect=True)
def test_a_view_whose_kernel_went_says_so_and_a_rerun_reconnects(
    open_notebook: NotebookOpener,
) -> None:
    nb = open_notebook(NAME, make_notebook(SETUP, CHAT))
    assert nb.run_all().wait(60) is True
    old = view(nb)
    expect_connected(old)
    nb.screenshot("connected")

    restart_kernel(nb)
    expect_disconnected(old)
    expect(old.locator("textarea.rxnb-chat-input")).to_have_value("are you there?")
    nb.screenshot("restarted")

    # The cells run again: the chat cell's new view is live; the old one is gone.
    assert nb.run_all().wait(60) is True
    new = view(nb)
    expect(new).to_have_count(1)
    expect_connected(new)
    nb.screenshot("reconnected")

    # A shutdown fires nothing on the widget model; the view hears it all the same.
    nb.command("kernelmenu:shutdown").wait(15)
    expect_disconnected(new)
    nb.screenshot("shut-down")
    assert nb.unexpected_errors() == []

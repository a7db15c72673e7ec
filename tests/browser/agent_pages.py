"""What the agent chat page tests use: an agent notebook, the chat's parts, the store.

The notebook defines a tool that needs approval (`send_email`) and an agent on the
offline `rxnb/scripted` model whose first model call answers with some text and then
asks for `send_email`, and whose second (after the tool's result) answers "Sent it.";
its last cell shows `helper.chat(THREAD)`. The store is `.rxnb/rxnb.db` beside the
notebook, read here with sqlite3 (the test process does not open it with rxnb).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import nbformat
from jupyter_pages import OUTPUT, JupyterServer, NotebookPage, make_notebook
from playwright.sync_api import Locator, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

NOTEBOOK = "agent_chat.ipynb"
THREAD = "t1"
CHAT = '.rxnb-live[data-kind="chat"] .rxnb-chat'
ASSISTANT = '.rxnb-msg[data-role="assistant"]'
USER = '.rxnb-msg[data-role="user"]'
TOOL = "div.rxnb-msg.rxnb-tool"
TO = "ana@example.com"
ARGS = {"to": TO, "body": "hello"}
RESULT = f"sent to {TO}"
FINAL = "Sent it."

# JavaScript: what a tool card shows, as the reader sees it.
CARD_STATE = """el => {
  const q = (s) => el.querySelector(s);
  const shown = (s) => !!q(s) && !q(s).closest('[hidden]');
  return {
    status: el.getAttribute('data-status'),
    approval: el.getAttribute('data-approval'),
    name: q('.rxnb-tool-name').textContent,
    args: q('pre.rxnb-tool-args').textContent,
    open: q('details.rxnb-tool-card').open,
    result: shown('.rxnb-tool-result') ? q('.rxnb-tool-result').textContent : null,
    approvalState: shown('.rxnb-approval') ? q('.rxnb-approval-state').textContent : null,
    buttons: shown('button.rxnb-approve') && shown('button.rxnb-deny'),
  };
}"""


def agent_notebook(
    first_reply: str, *, delay: float = 0.05, first_delay: float | None = None
) -> nbformat.NotebookNode:
    """The agent notebook: the store, the tool, the agent, its chat (the last cell).

    `first_reply` is the first model call's text; `first_delay` its seconds per token
    (and its tool call's), `delay` the agent's (the second reply's).
    """
    first: dict[str, Any] = {
        "script": first_reply,
        "tool_calls": [{"name": "send_email", "arguments": ARGS}],
    }
    if first_delay is not None:
        first["delay"] = first_delay
    turns = [first, {"script": FINAL}]
    return make_notebook(
        "import rxnb as rx\n\nstore = rx.open()  # .rxnb/rxnb.db beside the notebook",
        "@rx.tool(approval=True)\n"
        "def send_email(to: str, body: str) -> str:\n"
        '    """Send an email."""\n'
        '    return f"sent to {to}"\n',
        f'helper = rx.Agent(\n    "mailer",\n    model="rxnb/scripted",\n'
        f"    tools=[send_email],\n    delay={delay!r},\n    turns={turns!r},\n)",
        f"helper.chat({THREAD!r})",
    )


def open_agent_chat(nb: NotebookPage) -> Locator:
    """Run every cell of the agent notebook; the chat, once shown."""
    if nb.run_all().wait(60) is not True:
        outputs = nb.root().locator(OUTPUT).all_inner_texts()
        raise AssertionError(f"a cell of the agent notebook failed: {outputs}")
    return nb.wait_for(CHAT, timeout=20)


def chat(nb: NotebookPage) -> Locator:
    return nb.root().locator(CHAT)


def card(nb: NotebookPage) -> Locator:
    """The (only) tool card."""
    return chat(nb).locator(TOOL)


def replies(nb: NotebookPage) -> Locator:
    return chat(nb).locator(ASSISTANT)


def send(nb: NotebookPage, text: str) -> None:
    """Type `text` into the chat's input and press Enter, as a reader does."""
    box = chat(nb).locator("textarea.rxnb-chat-input")
    box.fill(text)
    expect(chat(nb).locator("button.rxnb-chat-send")).to_be_enabled()
    box.press("Enter")
    expect(box).to_have_value("")


def shot(nb: NotebookPage, step: str) -> None:
    """A screenshot with the chat's newest message in view."""
    messages = chat(nb).locator(".rxnb-msg")
    if messages.count():
        messages.last.scroll_into_view_if_needed()
    nb.screenshot(step)


def stored(server: JupyterServer, thread: str = THREAD) -> list[dict[str, Any]]:
    """The thread's messages as the store holds them, in order."""
    path = server.root / ".rxnb" / "rxnb.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT id, role, status, text, tool_name, arguments, approval, call_id, note "
            "FROM rx_messages WHERE thread_id = ? ORDER BY id",
            (thread,),
        ).fetchall()
        return [dict(r) for r in rows]


def stored_call(server: JupyterServer) -> dict[str, Any]:
    """The thread's only tool call, as stored."""
    calls = [r for r in stored(server) if r["role"] == "tool"]
    assert len(calls) == 1, calls
    call = calls[0]
    assert json.loads(call["arguments"]) == ARGS, call
    return call


@contextmanager
def store_on_failure(server: JupyterServer, *pages: NotebookPage) -> Iterator[None]:
    """A failure inside says what the store, the pages and the server's log held."""
    try:
        yield
    except (AssertionError, TimeoutError, PlaywrightTimeoutError) as exc:
        try:
            held = f"messages: {stored(server)}"
        except sqlite3.Error as e:
            held = f"(the store could not be read: {e})"
        for nb in pages:
            if nb.page.is_closed():
                continue
            held += f"\nchat text: {chat(nb).all_inner_texts()}"
            held += f"\npage errors: {nb.page_errors}"
        held += f"\n-- server log --\n{server.log_tail(3000)}"
        raise AssertionError(f"{exc}\n-- the store held --\n{held}") from exc

"""An agent's chat (`helper.chat("t1")`) in a real JupyterLab, in Debian's chromium.

The issue's "must show", in one turn: the chat shows a tool call as a card (its name,
its arguments) with an approval asking for Approve or Deny; a page reloaded midway,
while the first reply streams and again while the call waits for approval, shows the
same state (the texts so far, the card with its approval pending) and keeps following;
clicking Approve in the reloaded page runs the tool (the card ends `done` with its
result) and the turn's final reply "Sent it." streams in.

The notebook (agent_pages.agent_notebook) opens the store beside it, defines
`send_email` with `approval=True` and an agent on the offline `rxnb/scripted` model,
and shows its chat; the message is typed into the chat and sent with Enter. The store
is read with sqlite3. One test, one server and one kernel: about 35 s.
"""

from __future__ import annotations

import json
import re

import pytest
from agent_pages import (
    ARGS,
    ASSISTANT,
    CARD_STATE,
    CHAT,
    FINAL,
    NOTEBOOK,
    RESULT,
    TOOL,
    USER,
    agent_notebook,
    card,
    chat,
    open_agent_chat,
    replies,
    send,
    shot,
    store_on_failure,
    stored,
    stored_call,
)
from jupyter_pages import JupyterServer, NotebookOpener, NotebookPage, wait_until
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

QUESTION = "Email Ana"
FIRST_TEXT_MS = 45_000
"""The kernel's first model call may wait for litellm's import (6-7 s of CPU, more when
the machine is busy)."""
NOTE = "go ahead"
LONG = (
    "I will send it now. First I read the address twice, then I write a short note, "
    "and then I ask you before anything leaves this notebook. " * 3
).strip()
LONG_DELAY = 0.12
"""Seconds per token of the long first reply (78 tokens): it streams for about 9 s,
time to save and reload the page (3-4 s, more when the machine is busy) while it does."""

# Init script: the first reply's and the tool card's state when a (re)loaded page
# first shows each of them.
_RECORD_FIRST = """(() => {
  const first = (window.__rxnbFirst = {});
  const reply = (el) => {
    const text = el.querySelector('.rxnb-msg-text');
    return {status: el.getAttribute('data-status'), text: text ? text.textContent : null,
            revealed: !!text && text.getAttribute('data-revealed') === 'true'};
  };
  const card = CARD_STATE;
  const look = (selector, name, state) => {
    if (first[name]) return;
    const el = document.querySelector(selector);
    if (el) first[name] = state(el);
  };
  new MutationObserver(() => {
    look('CHAT ASSISTANT', 'reply', reply);
    look('CHAT TOOL', 'card', card);
  }).observe(document, {childList: true, subtree: true});
})()"""
RECORD_FIRST = (
    _RECORD_FIRST.replace("CARD_STATE", CARD_STATE)
    .replace("'CHAT ASSISTANT'", json.dumps(f"{CHAT} {ASSISTANT}"))
    .replace("'CHAT TOOL'", json.dumps(f"{CHAT} {TOOL}"))
)


def letters(text: str) -> str:
    """Markdown or its rendering, reduced to what both show alike: letters and digits."""
    return re.sub(r"[^A-Za-z0-9]", "", text)


def expect_waiting(nb: NotebookPage, timeout_ms: float = 15_000) -> None:
    """The card waits for approval, open, with Approve and Deny ready to click."""
    expect(card(nb)).to_have_attribute("data-status", "waiting", timeout=timeout_ms)
    expect(card(nb)).to_have_attribute("data-approval", "pending")
    expect(card(nb).locator(".rxnb-tool-name")).to_have_text("send_email")
    expect(card(nb).locator("pre.rxnb-tool-args")).to_be_visible()  # the card is open
    assert json.loads(card(nb).locator("pre.rxnb-tool-args").text_content() or "") == ARGS
    expect(card(nb).locator("span.rxnb-approval-state")).to_have_text("waiting for approval")
    expect(card(nb).locator("input.rxnb-approval-note")).to_be_visible()
    for button in ("button.rxnb-approve", "button.rxnb-deny"):
        expect(card(nb).locator(button)).to_be_visible()
        expect(card(nb).locator(button)).to_be_enabled()
    expect(replies(nb)).to_have_count(1)  # the turn is parked: no second model call


def test_approve_in_a_page_reloaded_midway_finishes_the_turn(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    nb = open_notebook(NOTEBOOK, agent_notebook(LONG, first_delay=LONG_DELAY))
    open_agent_chat(nb)
    expect(chat(nb).locator(".rxnb-msg")).to_have_count(0)
    with store_on_failure(jupyter_server, nb):
        send(nb, QUESTION)
        expect(chat(nb).locator(USER)).to_contain_text(QUESTION, timeout=10_000)
        reply = replies(nb).first
        expect(reply).to_have_attribute("data-status", "streaming", timeout=FIRST_TEXT_MS)
        expect(reply.locator(".rxnb-msg-text")).to_have_text(re.compile(r"\S"), timeout=10_000)
        before = reply.locator(".rxnb-msg-text").text_content() or ""
        shot(nb, "streaming-before-reload")

        # 1. Reload while the first reply streams: the text so far shows at once, and
        # the reply goes on.
        nb.save()  # the chat's output is on disk to restore
        nb.page.add_init_script(RECORD_FIRST)
        nb.reload()
        first = wait_until(
            lambda: nb.page.evaluate("() => window.__rxnbFirst.reply"),
            "the reloaded page to show the reply",
            timeout=20,
        )
        shot(nb, "streaming-after-reload")
        assert first["status"] == "streaming", (first, stored(jupyter_server))
        assert first["revealed"] is True, first
        assert len(letters(first["text"])) >= len(letters(before)) > 0, (before, first)
        assert letters(LONG).startswith(letters(first["text"])), first
        assert letters(first["text"]) != letters(LONG), first  # midway
        expect(chat(nb).locator(USER)).to_contain_text(QUESTION)

        # It keeps following: the reply ends, the tool call comes and waits for approval.
        reply = replies(nb).first  # a locator holds the panel's id: the reload changed it
        expect(reply).to_have_attribute("data-status", "done", timeout=30_000)
        expect(reply.locator(".rxnb-msg-text")).to_have_text(LONG)
        expect_waiting(nb)
        call = stored_call(jupyter_server)
        assert (call["status"], call["approval"]) == ("waiting", "pending"), call
        shot(nb, "waiting-before-reload")

        # 2. Reload while the call waits: the same card, approval pending, same texts.
        nb.save()
        nb.reload()
        shown = wait_until(
            lambda: nb.page.evaluate("() => window.__rxnbFirst.card"),
            "the reloaded page to show the tool card",
            timeout=20,
        )
        assert shown == {
            "status": "waiting",
            "approval": "pending",
            "name": "send_email",
            "args": json.dumps(ARGS, indent=2),
            "open": True,
            "result": None,
            "approvalState": "waiting for approval",
            "buttons": True,
        }, shown
        reply_first = nb.page.evaluate("() => window.__rxnbFirst.reply")
        assert reply_first["status"] == "done", reply_first
        assert letters(reply_first["text"]) == letters(LONG), reply_first
        expect_waiting(nb)
        expect(chat(nb).locator(USER)).to_contain_text(QUESTION)
        expect(replies(nb).first.locator(".rxnb-msg-text")).to_have_text(LONG)
        shot(nb, "waiting-after-reload")

        # 3. Approve in the reloaded page, with a note: the tool runs, the final reply
        # streams in, and the page shows all of it.
        tool = card(nb)
        tool.locator("input.rxnb-approval-note").fill(NOTE)
        tool.locator("button.rxnb-approve").click()
        expect(tool).to_have_attribute("data-status", "done", timeout=20_000)
        expect(tool).to_have_attribute("data-approval", "approved")
        expect(tool.locator("span.rxnb-approval-state")).to_have_text("approved")
        expect(tool.locator("button.rxnb-approve")).to_be_hidden()
        expect(tool.locator(".rxnb-msg-note")).to_have_text(NOTE)
        expect(replies(nb)).to_have_count(2, timeout=20_000)
        expect(replies(nb).nth(1)).to_have_attribute("data-status", "done", timeout=20_000)
        expect(replies(nb).nth(1).locator(".rxnb-msg-text")).to_have_text(FINAL)
        # The done card is folded: open it to read the result.
        expect(tool.locator(".rxnb-tool-result")).to_be_hidden()
        tool.locator("details.rxnb-tool-card > summary").click()
        expect(tool.locator(".rxnb-tool-result")).to_be_visible()
        expect(tool.locator(".rxnb-tool-result")).to_have_text(RESULT)
        shot(nb, "done")

        # In order: the question, the first reply, its tool call, the final reply.
        order = (
            chat(nb)
            .locator(".rxnb-msg")
            .evaluate_all(
                "els => els.map(e => [e.getAttribute('data-role'), e.getAttribute('data-status')])"
            )
        )
        assert order == [
            ["user", "done"],
            ["assistant", "done"],
            ["tool", "done"],
            ["assistant", "done"],
        ], order
        rows = [(r["role"], r["status"], r["text"], r["approval"]) for r in stored(jupyter_server)]
        assert rows == [
            ("user", "done", QUESTION, None),
            ("assistant", "done", LONG, None),
            ("tool", "done", RESULT, "approved"),
            ("assistant", "done", FINAL, None),
        ], rows
        assert stored_call(jupyter_server)["note"] == NOTE
        assert nb.unexpected_errors() == []

"""An agent's chat (`helper.chat("t1")`) in a real JupyterLab, in Debian's chromium.

The issue's "must show": the chat shows a tool call as a card (its name, its
arguments) with an approval asking for Approve or Deny; clicking Approve in the page
runs the tool (the card ends `done` with its result) and the turn's final reply
streams in; a page reloaded midway, while the reply streams and while the call waits
for approval, shows the same state and keeps following, and Approve clicked in the
reloaded page still finishes the turn.

The notebook (agent_pages.agent_notebook) opens the store beside it, defines
`send_email` with `approval=True` and an agent on the offline `rxnb/scripted` model,
and shows its chat; the message is typed into the chat and sent with Enter. The store
is read with sqlite3.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest
from agent_pages import (
    ASSISTANT,
    CARD_STATE,
    CHAT,
    FINAL,
    NOTEBOOK,
    RESULT,
    TO,
    TOOL,
    USER,
    agent_notebook,
    card,
    card_state,
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
SHORT = "I will send it now."
LONG = (
    "I will send it now. First I read the address twice, then I write a short note, "
    "and then I ask you before anything leaves this notebook. " * 3
).strip()
LONG_DELAY = 0.12
"""Seconds per token of the long first reply (~70 tokens): it streams for about 8 s,
time to save and reload the page (3-5 s) while it does."""

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
    expect(card(nb).locator("pre.rxnb-tool-args")).to_contain_text(TO)
    expect(card(nb).locator("pre.rxnb-tool-args")).to_be_visible()  # the card is open
    expect(card(nb).locator("span.rxnb-approval-state")).to_have_text("waiting for approval")
    expect(card(nb).locator("input.rxnb-approval-note")).to_be_visible()
    for button in ("button.rxnb-approve", "button.rxnb-deny"):
        expect(card(nb).locator(button)).to_be_visible()
        expect(card(nb).locator(button)).to_be_enabled()


def approve_and_expect_done(nb: NotebookPage, first: str) -> None:
    """Click Approve; the tool runs and the final reply streams in; all of it shows."""
    card(nb).locator("button.rxnb-approve").click()
    expect(card(nb)).to_have_attribute("data-status", "done", timeout=20_000)
    expect(card(nb)).to_have_attribute("data-approval", "approved")
    expect(card(nb).locator(".rxnb-tool-result")).to_have_text(RESULT)
    expect(card(nb).locator("span.rxnb-approval-state")).to_have_text("approved")
    expect(card(nb).locator("button.rxnb-approve")).to_be_hidden()
    expect(replies(nb)).to_have_count(2, timeout=20_000)
    expect(replies(nb).nth(1)).to_have_attribute("data-status", "done", timeout=20_000)
    expect(replies(nb).nth(1).locator(".rxnb-msg-text")).to_have_text(FINAL)
    expect(replies(nb).first.locator(".rxnb-msg-text")).to_have_text(first)
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
    card(nb).locator(
        "details.rxnb-tool-card > summary"
    ).click()  # the done card is folded: open it to read
    expect(card(nb).locator(".rxnb-tool-result")).to_be_visible()
    expect(card(nb).locator(".rxnb-tool-result")).to_have_text(RESULT)


def expect_stored_done(server: JupyterServer, first: str) -> None:
    rows = [(r["role"], r["status"], r["text"], r["approval"]) for r in stored(server)]
    assert rows == [
        ("user", "done", QUESTION, None),
        ("assistant", "done", first, None),
        ("tool", "done", RESULT, "approved"),
        ("assistant", "done", FINAL, None),
    ], rows


def start(open_notebook: NotebookOpener, first: str, **options: Any) -> NotebookPage:
    """The agent notebook, run, its chat shown (empty)."""
    nb = open_notebook(NOTEBOOK, agent_notebook(first, **options))
    open_agent_chat(nb)
    expect(chat(nb).locator(".rxnb-msg")).to_have_count(0)
    return nb


def test_the_tool_card_asks_for_approval_and_approve_finishes_the_turn(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    nb = start(open_notebook, SHORT)
    with store_on_failure(jupyter_server, nb):
        send(nb, QUESTION)
        expect(chat(nb).locator(USER)).to_contain_text(QUESTION, timeout=10_000)
        expect(replies(nb).first.locator(".rxnb-msg-text")).to_have_text(
            SHORT, timeout=FIRST_TEXT_MS
        )
        expect_waiting(nb, FIRST_TEXT_MS)
        state = card_state(nb)
        assert state["open"] is True, state
        assert f'"to": "{TO}"' in state["args"], state  # pretty-printed JSON
        call = stored_call(jupyter_server)
        assert (call["status"], call["approval"]) == ("waiting", "pending"), call
        expect(replies(nb)).to_have_count(1)  # the turn is parked: no second reply
        shot(nb, "waiting-for-approval")

        approve_and_expect_done(nb, SHORT)
        shot(nb, "done")
        expect_stored_done(jupyter_server, SHORT)
        assert nb.unexpected_errors() == []


def test_a_reload_midway_shows_the_same_turn_and_keeps_following(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    nb = start(open_notebook, LONG, first_delay=LONG_DELAY)
    with store_on_failure(jupyter_server, nb):
        send(nb, QUESTION)
        reply = replies(nb).first
        expect(reply).to_have_attribute("data-status", "streaming", timeout=FIRST_TEXT_MS)
        expect(reply.locator(".rxnb-msg-text")).to_have_text(re.compile(r"\S"), timeout=10_000)
        before = reply.locator(".rxnb-msg-text").text_content() or ""
        shot(nb, "streaming-before-reload")

        # 1. Reload while the first reply streams.
        nb.save()
        nb.page.add_init_script(RECORD_FIRST)
        nb.reload()
        first = wait_until(
            lambda: nb.page.evaluate("() => window.__rxnbFirst.reply"),
            "the reloaded page to show the reply",
            timeout=20,
        )
        shot(nb, "streaming-after-reload")
        assert first["status"] == "streaming", (first, stored(jupyter_server))
        assert first["revealed"] is True, first  # the text held shows at once
        assert len(letters(first["text"])) >= len(letters(before)) > 0, (before, first)
        assert letters(LONG).startswith(letters(first["text"])), first
        assert letters(first["text"]) != letters(LONG), first  # midway
        expect(chat(nb).locator(USER)).to_contain_text(QUESTION)

        # ... it keeps following: the reply ends, the call comes and waits.
        reply = replies(nb).first  # locators hold the panel's id: a reloaded page has another
        expect(reply).to_have_attribute("data-status", "done", timeout=30_000)
        expect(reply.locator(".rxnb-msg-text")).to_have_text(LONG)
        expect_waiting(nb, 15_000)
        shot(nb, "waiting-before-reload")

        # 2. Reload while the call waits for approval.
        nb.save()
        nb.reload()
        card_first = wait_until(
            lambda: nb.page.evaluate("() => window.__rxnbFirst.card"),
            "the reloaded page to show the tool card",
            timeout=20,
        )
        assert card_first["status"] == "waiting", card_first
        assert card_first["approval"] == "pending", card_first
        assert card_first["name"] == "send_email", card_first
        assert TO in card_first["args"], card_first
        assert card_first["open"] is True, card_first
        assert card_first["approvalState"] == "waiting for approval", card_first
        assert card_first["buttons"] is True, card_first
        reply_first = nb.page.evaluate("() => window.__rxnbFirst.reply")
        assert reply_first["status"] == "done", reply_first
        assert letters(reply_first["text"]) == letters(LONG), reply_first
        expect_waiting(nb)
        expect(chat(nb).locator(USER)).to_contain_text(QUESTION)
        expect(replies(nb)).to_have_count(1)
        call = stored_call(jupyter_server)
        assert (call["status"], call["approval"]) == ("waiting", "pending"), call
        shot(nb, "waiting-after-reload")

        # Approve in the reloaded page: the turn finishes, and the page shows it.
        approve_and_expect_done(nb, LONG)
        shot(nb, "done-after-reload")
        expect_stored_done(jupyter_server, LONG)
        assert nb.unexpected_errors() == []

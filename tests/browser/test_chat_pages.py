"""The chat notebook (examples/01_chat.ipynb) in a real JupyterLab (and Notebook 7 for
the reload), in Debian's chromium.

The issue's "must show": two pages on the chat notebook; send from page A, abort from
page B; both show `cancelled` and the same partial text; reload page A midway and the
reply continues. The notebook is the example's first cells, verbatim, up to and
including `rx.chat("demo", ...)`; its app (examples/chat_app.py) streams the offline
model's answer at `RXNB_CHAT_DELAY` seconds a token, which the kernels inherit from the
server's environment. What the store holds is read from its SQLite file directly.
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest
from chat_pages import ASSISTANT, CHAT, chat_notebook, reply
from jupyter_pages import OUTPUT, JupyterServer, NotebookOpener, NotebookPage, wait_until
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from chat_pages import EXAMPLES, NOTEBOOK

sys.path.insert(0, str(EXAMPLES))
import chat_app

pytestmark = pytest.mark.browser

STORED_USER = '.rxnb-msg[data-role="user"][data-key]'
DELAY = "0.12"
"""Seconds per token of the offline model: a reply (~125 tokens) streams for about 15 s,
leaving time to abort it, or to save and reload a page (3-6 s) while it streams."""
FIRST_TEXT_MS = 45_000
"""The kernel's first generation imports litellm first: 6-7 s of CPU here, 15-20 s
when the machine is busy; its status is `streaming` meanwhile."""

# JavaScript: one message block's state, as the reader sees it.
_MESSAGE_STATE = """el => {
  const text = el.querySelector('.rxnb-msg-text');
  return {
    status: el.getAttribute('data-status'),
    text: text ? text.textContent : null,
    revealed: !!text && text.getAttribute('data-revealed') === 'true',
    abort: el.querySelector('button.rxnb-abort') !== null,
  };
}"""

# JavaScript: record every optimistic message added under `root` (they may go quickly).
_RECORD_OPTIMISTIC = """root => {
  const seen = (window.__rxnbOptimistic = []);
  new MutationObserver((mutations) => {
    for (const m of mutations) for (const n of m.addedNodes) {
      if (n instanceof Element && n.matches('.rxnb-optimistic'))
        seen.push({status: n.getAttribute('data-status'), text: n.textContent});
    }
  }).observe(root, {childList: true, subtree: true});
}"""

# Init script: the assistant message's state when a (re)loaded page first shows it.
_RECORD_FIRST_REPLY = """(() => {
  const selector = '.rxnb-live[data-kind="chat"] .rxnb-msg[data-role="assistant"]';
  const state = STATE;
  const observer = new MutationObserver((mutations) => {
    for (const m of mutations) for (const n of m.addedNodes) {
      if (!(n instanceof Element)) continue;
      const el = n.matches(selector) ? n : n.querySelector(selector);
      if (el && el.isConnected) {
        window.__rxnbFirstReply = state(el);
        observer.disconnect();
        return;
      }
    }
  });
  observer.observe(document, {childList: true, subtree: true});
})()""".replace("STATE", _MESSAGE_STATE)


@pytest.fixture(autouse=True)
def chat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server (started after this) and so its kernels: the offline model, slowly."""
    monkeypatch.setenv("RXNB_CHAT_DELAY", DELAY)
    monkeypatch.delenv("RXNB_CHAT_MODEL", raising=False)
    monkeypatch.delenv("RXNB_URL", raising=False)  # the store beside the notebook


def open_chat(open_notebook: NotebookOpener, server: JupyterServer) -> NotebookPage:
    """Page A: the chat notebook (and its app) in the server's root, run, chat shown."""
    (server.root / "chat_app.py").write_bytes((EXAMPLES / "chat_app.py").read_bytes())
    nb = open_notebook(NOTEBOOK, chat_notebook())
    if nb.run_all().wait(60) is not True:
        outputs = nb.root().locator(OUTPUT).all_inner_texts()
        raise AssertionError(f"a cell of the chat notebook failed: {outputs}")
    nb.wait_for(CHAT, timeout=20)
    return nb


def stored(server: JupyterServer) -> list[dict[str, Any]]:
    """The demo thread's messages as the store holds them."""
    path = server.root / ".rxnb" / "rxnb.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT role, content, status FROM chat_message WHERE thread_id = 'demo' ORDER BY id"
        ).fetchall()
        return [dict(r) for r in rows]


def stored_reply(server: JupyterServer) -> dict[str, Any]:
    rows = stored(server)
    assert [r["role"] for r in rows] == ["user", "assistant"], rows
    return rows[1]


def generate_runs(server: JupyterServer) -> list[dict[str, Any]]:
    """The store's runs of `generate`: status and error."""
    path = server.root / ".rxnb" / "rxnb.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT status, error FROM rx_runs WHERE function LIKE '%generate' ORDER BY created_at"
        ).fetchall()
        return [dict(r) for r in rows]


def run_statuses(server: JupyterServer) -> list[str]:
    return [r["status"] for r in generate_runs(server)]


@contextmanager
def store_on_failure(server: JupyterServer) -> Iterator[None]:
    """A failure inside says what the store held then (messages and runs)."""
    try:
        yield
    except (AssertionError, TimeoutError, PlaywrightTimeoutError) as exc:
        try:
            held = f"messages: {stored(server)}\nruns: {generate_runs(server)}"
        except sqlite3.Error as e:
            held = f"(the store could not be read: {e})"
        raise AssertionError(f"{exc}\n-- the store held --\n{held}") from exc


def reply_state(nb: NotebookPage) -> dict[str, Any]:
    """status, text (the rendered text's textContent), revealed, abort (a button)."""
    return reply(nb).evaluate(_MESSAGE_STATE)  # type: ignore[no-any-return]


def letters(text: str) -> str:
    """Markdown or its rendering, reduced to what both show alike: letters and digits.

    The markup (`*`, `` ` ``, `-`, a fence's info string) and the spacing between blocks
    differ; the words do not.
    """
    return re.sub(r"[^A-Za-z0-9]", "", re.sub(r"```\w*", "", text))


def call_error(nb: NotebookPage) -> str | None:
    """The text of a failed call's error line in the chat, if one shows."""
    errors = nb.root().locator(f"{CHAT} .rxnb-call-error")
    return errors.first.text_content() if errors.count() else None


def shot(nb: NotebookPage, step: str) -> None:
    """A screenshot with the chat's newest message in view."""
    nb.root().locator(f"{CHAT} .rxnb-msg").last.scroll_into_view_if_needed()
    nb.screenshot(step)


def send(nb: NotebookPage, question: str) -> None:
    """Type `question` into the chat's input and press Enter, as a reader does."""
    nb.root().locator(CHAT).evaluate(_RECORD_OPTIMISTIC)
    box = nb.root().locator(f"{CHAT} textarea.rxnb-chat-input")
    box.fill(question)
    expect(nb.root().locator(f"{CHAT} button.rxnb-chat-send")).to_be_enabled()
    box.press("Enter")
    expect(box).to_have_value("")


def optimistic_seen(nb: NotebookPage) -> list[dict[str, Any]]:
    return nb.page.evaluate("() => window.__rxnbOptimistic || []")  # type: ignore[no-any-return]


def no_model_not_found(*pages: NotebookPage) -> None:
    for nb in pages:
        assert nb.page.get_by_text("model not found").count() == 0
        assert nb.unexpected_errors() == []


def test_send_in_one_page_abort_in_the_other(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    question = "What happens if I abort from the other window"
    full = chat_app.offline_answer(question)
    a = open_chat(open_notebook, jupyter_server)
    with store_on_failure(jupyter_server):
        a.save()  # page B restores the chat's output from the file, its state from the kernel
        b = open_notebook(NOTEBOOK)
        b.wait_for(CHAT, timeout=20)
        b.root().locator(CHAT).evaluate(_RECORD_OPTIMISTIC)
        for nb in (a, b):
            expect(nb.root().locator(f"{CHAT} .rxnb-msg")).to_have_count(0)

        send(a, question)
        wait_until(lambda: optimistic_seen(a), "page A's optimistic message", timeout=5)
        assert optimistic_seen(a)[0]["status"] == "sending"
        assert question in optimistic_seen(a)[0]["text"]
        for nb in (a, b):
            expect(nb.root().locator(f"{CHAT} {STORED_USER}")).to_have_text(
                re.compile(re.escape(question)), timeout=10_000
            )
            expect(nb.root().locator(f"{CHAT} {ASSISTANT}[data-status='streaming']")).to_be_visible(
                timeout=20_000
            )
        # The stored user message took the optimistic one's place (and B never had one).
        expect(a.root().locator(f"{CHAT} .rxnb-optimistic")).to_have_count(0, timeout=5_000)
        assert optimistic_seen(b) == []

        expect(reply(b).locator(".rxnb-msg-text")).to_have_text(
            re.compile(r"\S"), timeout=FIRST_TEXT_MS
        )
        shot(a, "streaming-page-a")
        shot(b, "streaming-page-b")
        reply(b).locator("button.rxnb-abort").click()

        # The abort call either fails (its error shows above the log) or the reply stops.
        ended = wait_until(
            lambda: call_error(b) or reply_state(b)["status"] not in ("pending", "streaming"),
            "page B's abort to end the reply",
            timeout=15,
        )
        assert ended is True, f"the abort failed in page B: {ended}"
        for nb in (a, b):
            expect(reply(nb)).to_have_attribute("data-status", "cancelled", timeout=15_000)
            expect(reply(nb).locator(".rxnb-msg-text")).to_have_attribute(
                "data-revealed", "true", timeout=5_000
            )
            expect(reply(nb).locator("button.rxnb-abort")).to_have_count(0)
            assert call_error(nb) is None
        shown_a, shown_b = reply_state(a), reply_state(b)
        shot(a, "cancelled-page-a")
        shot(b, "cancelled-page-b")

        saved = stored_reply(jupyter_server)
        assert saved["status"] == "cancelled"
        assert saved["content"], "the reply was cancelled before any text was stored"
        assert full.startswith(saved["content"]) and saved["content"] != full
        assert run_statuses(jupyter_server) == ["cancelled"]
        assert shown_a["text"] == shown_b["text"], (shown_a, shown_b)
        assert letters(shown_a["text"]) == letters(saved["content"]) != "", (shown_a, saved)
        assert len(letters(shown_a["text"])) < len(letters(full))
        no_model_not_found(a, b)


@pytest.mark.parametrize("jupyter_server", ["lab", "notebook"], indirect=True)
def test_reload_midway_and_the_reply_continues(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    question = "What happens if I reload the page"
    full = chat_app.offline_answer(question)
    a = open_chat(open_notebook, jupyter_server)
    with store_on_failure(jupyter_server):
        send(a, question)
        expect(reply(a)).to_have_attribute("data-status", "streaming", timeout=20_000)
        expect(reply(a).locator(".rxnb-msg-text")).to_have_text(
            re.compile(r"\S"), timeout=FIRST_TEXT_MS
        )
        before = reply_state(a)
        shot(a, "before-reload")

        a.save()
        a.page.add_init_script(_RECORD_FIRST_REPLY)
        a.reload()
        first = wait_until(
            lambda: a.page.evaluate("() => window.__rxnbFirstReply"),
            "the reloaded page to show the reply",
            timeout=20,
        )
        shot(a, "after-reload")
        # Midway, and the text held when the message first shows, shows at once.
        assert first["status"] == "streaming", (first, stored(jupyter_server))
        assert first["revealed"] is True, first
        assert first["abort"] is True, first
        assert len(letters(first["text"])) >= len(letters(before["text"])) > 0, (before, first)
        assert letters(full).startswith(letters(first["text"])), first

        expect(reply(a)).to_have_attribute("data-status", "done", timeout=30_000)
        expect(reply(a).locator(".rxnb-msg-text")).to_have_attribute(
            "data-revealed", "true", timeout=5_000
        )
        final = reply_state(a)
        shot(a, "done")
        saved = stored_reply(jupyter_server)
        assert saved == {"role": "assistant", "content": full, "status": "done"}
        assert letters(final["text"]) == letters(full), final
        assert len(letters(final["text"])) > len(letters(first["text"]))  # it went on after
        assert final["abort"] is False
        assert run_statuses(jupyter_server) == ["succeeded"]
        no_model_not_found(a)

"""Kernel → Restart while the chat streams a reply, in a real JupyterLab (Chromium).

The chat notebook (examples/01_chat.ipynb's cells up to `rx.chat("demo", ...)`, and its
app examples/chat_app.py) runs; a message is typed into the chat and sent; while the
reply streams, the kernel is restarted from the UI (Kernel → Restart, the confirmation
accepted). The old kernel hands the run over before it exits: the reply's row goes
back to `pending`, its generation ends `interrupted` ("the kernel restarted"), its run
is queued again. No `rxnb worker` runs anywhere: the user runs the cells again, the new
kernel's executor claims the run, and the SAME reply (same row, same `data-key`)
streams again from the start and ends `done` with the whole answer, noting
"resumed after the kernel restarted (attempt 2)".

The test process never imports chat_app (it would register its actions here): the
offline model's answer comes from `offline_answer`'s source, and the store is read
with sqlite3.
"""

from __future__ import annotations

import ast
import re
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from typing import Any

import pytest
from chat_pages import CHAT, EXAMPLES, NOTEBOOK, chat_notebook, reply, restart_kernel
from jupyter_pages import OUTPUT, JupyterServer, NotebookOpener, NotebookPage
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NOTE = ".rxnb-msg-note"
DELAY = "0.06"
"""Seconds per token of the offline model: a reply (~125 tokens) streams for ~8 s, time
enough to restart the kernel from the menu while it does."""
FIRST_TEXT_MS = 45_000
"""A kernel's first generation imports litellm first (6-7 s of CPU, more when busy)."""
QUESTION = "What happens if I restart the kernel now"
WHY = "the kernel restarted"  # rxnb/execution/_lifecycle.py RESTARTED
RESUMED = f"resumed after {WHY} (attempt 2)"
WAITING = f"interrupted ({WHY}); it resumes where its action is defined"

# Init script: every text a message note showed in this page, and every status an
# assistant message showed, in order (they change quickly: the waiting note shows for a
# moment only, or not at all, before the new kernel's executor claims the run).
_RECORD_CHAT = """(() => {
  const notes = (window.__rxnbNotes = []);
  const statuses = (window.__rxnbReplyStatuses = []);
  const push = (list, value) => { if (value && list[list.length - 1] !== value) list.push(value); };
  const look = () => {
    for (const n of document.querySelectorAll('.rxnb-msg-note')) push(notes, n.hidden ? '' : n.textContent);
    for (const m of document.querySelectorAll('.rxnb-msg[data-role="assistant"]'))
      push(statuses, m.getAttribute('data-status'));
  };
  const start = () => new MutationObserver(look).observe(document.body,
    {childList: true, subtree: true, characterData: true, attributes: true,
     attributeFilter: ['hidden', 'data-status']});
  if (document.body) start(); else addEventListener('DOMContentLoaded', start);
})()"""

# JavaScript: the kernel statuses the notebook's session goes through, from now on.


def offline_answer(question: str) -> str:
    """chat_app.offline_answer(question), from its source (no import of chat_app)."""
    tree = ast.parse((EXAMPLES / "chat_app.py").read_text())
    fn = next(n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "offline_answer")
    namespace: dict[str, Any] = {}
    exec(compile(ast.Module(body=[fn], type_ignores=[]), "chat_app.py", "exec"), namespace)
    return namespace["offline_answer"](question)  # type: ignore[no-any-return]


@pytest.fixture(autouse=True)
def chat_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server (started after this) and so its kernels: the offline model, slowly."""
    monkeypatch.setenv("RXNB_CHAT_DELAY", DELAY)
    monkeypatch.delenv("RXNB_CHAT_MODEL", raising=False)
    monkeypatch.delenv("RXNB_URL", raising=False)  # the store beside the notebook
    monkeypatch.delenv("RXNB_EXECUTE", raising=False)


def run_all(nb: NotebookPage) -> None:
    if nb.run_all().wait(60) is not True:
        outputs = nb.root().locator(OUTPUT).all_inner_texts()
        raise AssertionError(f"a cell of the chat notebook failed: {outputs}")
    nb.wait_for(CHAT, timeout=20)


def query(server: JupyterServer, sql: str) -> list[dict[str, Any]]:
    path = server.root / ".rxnb" / "rxnb.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql).fetchall()]


def messages(server: JupyterServer) -> list[dict[str, Any]]:
    return query(
        server,
        "SELECT id, role, content, status FROM chat_message WHERE thread_id = 'demo' ORDER BY id",
    )


def runs(server: JupyterServer) -> list[dict[str, Any]]:
    return query(
        server,
        "SELECT function, status, attempt, max_attempts, interrupted, crashes, error, owner "
        "FROM rx_runs ORDER BY created_at",
    )


def generations(server: JupyterServer) -> list[dict[str, Any]]:
    return query(
        server,
        'SELECT row_key, attempt, status, error, "offset" FROM rx_generations ORDER BY id',
    )


@contextmanager
def store_on_failure(server: JupyterServer, *pages: NotebookPage) -> Iterator[None]:
    """A failure inside says what the store, the pages and the kernels' log held."""
    try:
        yield
    except (AssertionError, TimeoutError, PlaywrightTimeoutError) as exc:
        try:
            held = (
                f"messages: {messages(server)}\nruns: {runs(server)}\n"
                f"generations: {generations(server)}"
            )
        except sqlite3.Error as e:
            held = f"(the store could not be read: {e})"
        for nb in pages:
            held += f"\nnotes seen: {nb.page.evaluate('() => window.__rxnbNotes || null')}"
            held += f"\nchat text: {nb.root().locator(CHAT).all_inner_texts()}"
            held += f"\npage errors: {nb.page_errors}"
        held += f"\n-- server log --\n{server.log_tail(4000)}"
        raise AssertionError(f"{exc}\n-- the store held --\n{held}") from exc


def letters(text: str) -> str:
    """Markdown or its rendering, reduced to what both show alike: letters and digits."""
    return re.sub(r"[^A-Za-z0-9]", "", re.sub(r"```\w*", "", text))


def shot(nb: NotebookPage, step: str) -> None:
    messages = nb.root().locator(f"{CHAT} .rxnb-msg")
    if messages.count():
        messages.last.scroll_into_view_if_needed()
    nb.screenshot(step)


def send(nb: NotebookPage, question: str) -> None:
    """Type `question` into the chat's input and press Enter, as a reader does."""
    box = nb.root().locator(f"{CHAT} textarea.rxnb-chat-input")
    box.fill(question)
    expect(nb.root().locator(f"{CHAT} button.rxnb-chat-send")).to_be_enabled()
    box.press("Enter")
    expect(box).to_have_value("")


def test_restart_midway_and_the_same_reply_resumes(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    full = offline_answer(QUESTION)
    (jupyter_server.root / "chat_app.py").write_bytes((EXAMPLES / "chat_app.py").read_bytes())
    jupyter_server.put_notebook(NOTEBOOK, chat_notebook())
    open_notebook.context.add_init_script(_RECORD_CHAT)  # every page of the test
    nb = open_notebook(NOTEBOOK)
    with store_on_failure(jupyter_server, nb):
        run_all(nb)
        kernel_before = nb.kernel_id()
        send(nb, QUESTION)
        expect(reply(nb)).to_have_attribute("data-status", "streaming", timeout=20_000)
        expect(reply(nb).locator(".rxnb-msg-text")).to_have_text(
            re.compile(r"\S"), timeout=FIRST_TEXT_MS
        )
        key = reply(nb).get_attribute("data-key")
        rows = messages(jupyter_server)
        assert [r["role"] for r in rows] == ["user", "assistant"], rows
        reply_id = rows[1]["id"]
        assert key is not None and int(key.strip('[]"')) == reply_id, (key, reply_id)
        shot(nb, "streaming")

        restart_kernel(nb)
        # The old kernel handed the run over before it exited: nothing ran it since.
        handed = runs(jupyter_server)
        assert [(r["status"], r["attempt"], r["interrupted"]) for r in handed] == [
            ("queued", 1, WHY)
        ], handed
        assert [(g["attempt"], g["status"], g["error"]) for g in generations(jupyter_server)] == [
            (1, "interrupted", WHY)
        ]
        # ... midway: its row keeps the text streamed so far, and waits as `pending`.
        waiting = messages(jupyter_server)[1]
        assert waiting["status"] == "pending", waiting
        assert 0 < len(waiting["content"]) < len(full), waiting
        assert full.startswith(waiting["content"]), waiting
        assert nb.kernel_id() == kernel_before  # a restart keeps the kernel's id
        shot(nb, "restarted")

        run_all(nb)  # the user runs the cells again: this kernel's executor claims the run
        expect(reply(nb)).to_have_count(1)
        expect(reply(nb)).to_have_attribute("data-key", key)
        expect(reply(nb).locator(NOTE)).to_have_text(RESUMED, timeout=FIRST_TEXT_MS)
        expect(reply(nb)).to_have_attribute("data-status", "done", timeout=FIRST_TEXT_MS)
        expect(reply(nb).locator(".rxnb-msg-text")).to_have_attribute(
            "data-revealed", "true", timeout=10_000
        )
        expect(reply(nb).locator(NOTE)).to_be_visible()
        expect(reply(nb).locator(NOTE)).to_have_text(RESUMED)
        expect(nb.root().locator(f"{CHAT} .rxnb-msg")).to_have_count(2)  # the question too
        shown = reply(nb).locator(".rxnb-msg-text").text_content() or ""
        shot(nb, "resumed-done")

        assert letters(shown) == letters(full), shown
        assert messages(jupyter_server) == [
            {"id": reply_id - 1, "role": "user", "content": QUESTION, "status": "done"},
            {"id": reply_id, "role": "assistant", "content": full, "status": "done"},
        ]
        ended = runs(jupyter_server)
        assert [(r["status"], r["attempt"], r["interrupted"], r["error"]) for r in ended] == [
            ("succeeded", 2, WHY, None)
        ], ended
        assert not [r for r in ended if r["status"] == "failed"]
        assert [
            (g["row_key"], g["attempt"], g["status"], g["error"], g["offset"])
            for g in generations(jupyter_server)
        ] == [  # the same row, streamed again from its start
            (str(reply_id), 1, "interrupted", WHY, 0),
            (str(reply_id), 2, "done", None, 0),
        ]
        notes = nb.page.evaluate("() => window.__rxnbNotes")
        assert notes[-1] == RESUMED, notes
        assert set(notes) <= {RESUMED} | {n for n in notes if n.startswith(WAITING)}, notes
        statuses = nb.page.evaluate("() => window.__rxnbReplyStatuses")
        assert set(statuses) <= {"pending", "streaming", "done"}, statuses  # never failed
        assert nb.unexpected_errors() == []
        assert nb.page.get_by_text("model not found").filter(visible=True).count() == 0

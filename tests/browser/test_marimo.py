"""rxnb in marimo (`marimo edit`, Chromium): a live table and the chat render, follow
writes from another process, and after a page reload show the current state at once
(marimo replays each widget's creation-time state; the view asks the kernel for the
current one and does not call the replay live). Inside marimo's page, a chat's
markdown lists keep their bullets and the runs table stays inside its output."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from jupyter_pages import ARTIFACTS, free_port, wait_until
from playwright.sync_api import BrowserContext, Page, expect

pytestmark = pytest.mark.browser

pytest.importorskip("marimo", reason="marimo is not installed (pip install marimo)")

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
QUESTION = "what survives a reload?"
ENDING = "never in the store or the notebook."

NOTES_APP = """
from sqlmodel import Field, SQLModel, select

import rxnb as rx


class Note(SQLModel, table=True):
    __tablename__ = "marimo_note"
    id: int | None = Field(default=None, primary_key=True)
    text: str


@rx.query
def notes(db: rx.Reader) -> list[Note]:
    return db.exec(select(Note).order_by(Note.id)).all()


@rx.mutation
def add(db: rx.Writer, text: str) -> None:
    db.add(Note(text=text))
"""

NOTEBOOK = """
import marimo

app = marimo.App()


@app.cell
def _():
    import chat_app
    import notes_app

    import rxnb as rx

    store = rx.open()
    return chat_app, notes_app, rx


@app.cell
def _(notes_app):
    notes_app.notes.live()
    return


@app.cell
def _(chat_app, rx):
    rx.chat("demo", send=chat_app.send, messages=chat_app.messages)
    return


@app.cell
def _(rx):
    rx.runs()
    return


if __name__ == "__main__":
    app.run()
"""

NOTES = '.rxnb-live[data-kind="table"]:has(.rxnb-title:text-is("notes()"))'
RUNS = '.rxnb-live[data-kind="table"]:has(.rxnb-title:text-matches("^runs_table"))'
CHAT = '.rxnb-live[data-kind="chat"]'


@dataclass
class Marimo:
    url: str
    folder: Path
    env: dict[str, str]
    proc: subprocess.Popen[bytes]
    log: Path

    def write(self, text: str) -> None:
        """Add a note from another process, as a worker or a second kernel would."""
        code = f"import rxnb as rx, notes_app\nrx.open()\nnotes_app.add(text={text!r})"
        subprocess.run(
            [sys.executable, "-c", code], cwd=self.folder, env=self.env, check=True, timeout=60
        )


@pytest.fixture
def marimo_server(tmp_path: Path) -> Iterator[Marimo]:
    """`marimo edit --headless --no-token` on a notebook with a table, a chat and runs;
    its own config (cells run when the page opens) and its own store."""
    folder = tmp_path / "app"
    folder.mkdir()
    (folder / "notes_app.py").write_text(NOTES_APP)
    (folder / "app.py").write_text(NOTEBOOK)
    shutil.copy(EXAMPLES / "chat_app.py", folder / "chat_app.py")
    config = tmp_path / "config" / "marimo"
    config.mkdir(parents=True)
    (config / "marimo.toml").write_text("[runtime]\nauto_instantiate = true\n")
    env = {
        **os.environ,
        "XDG_CONFIG_HOME": str(config.parent),
        "PYTHONPATH": str(folder),
        "RXNB_URL": f"sqlite:///{folder / 'rxnb.db'}",
        "RXNB_CHAT_DELAY": "0.005",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    }
    port = free_port()
    log = tmp_path / "marimo.log"
    marimo = Path(sys.executable).with_name("marimo")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [
                str(marimo),
                "edit",
                "app.py",
                "--headless",
                "--no-token",
                "--skip-update-check",
                f"--port={port}",
                "--host=127.0.0.1",
            ],
            cwd=folder,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = Marimo(f"http://127.0.0.1:{port}/", folder, env, proc, log)

    def ready() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"marimo exited ({proc.returncode}): {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(server.url, timeout=2):
                return True
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False

    try:
        wait_until(ready, f"marimo on {server.url}", 30)
        yield server
    finally:
        proc.terminate()  # marimo shuts its kernel down on SIGTERM
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def status(page: Page, selector: str) -> str | None:
    return page.locator(f"{selector} .rxnb-status").first.get_attribute("data-status")


def test_marimo_widgets_follow_writes_and_show_the_current_state_after_a_reload(
    marimo_server: Marimo, browser_context: BrowserContext
) -> None:
    page = browser_context.new_page()
    page.goto(marimo_server.url)
    notes = page.locator(NOTES)
    expect(notes.locator(".rxnb-count")).to_have_text("0 rows", timeout=60_000)
    expect(notes.locator(".rxnb-status")).to_have_attribute("data-status", "live")

    marimo_server.write("first, from another process")
    expect(notes.locator("td").filter(has_text="first, from another process")).to_be_visible(
        timeout=15_000
    )

    chat = page.locator(CHAT)
    chat.locator("textarea.rxnb-chat-input").fill(QUESTION)
    chat.locator("button.rxnb-chat-send").click()
    reply = chat.locator('.rxnb-msg[data-role="assistant"]')
    expect(reply).to_contain_text(ENDING, timeout=30_000)

    # Inside marimo's page: list bullets show, and the runs table fits its output.
    item = reply.locator("li").first
    assert item.evaluate("e => getComputedStyle(e).listStyleType") != "none"
    assert item.evaluate("e => getComputedStyle(e).display") == "list-item"
    runs = page.locator(RUNS)
    expect(runs.locator("tbody tr")).to_have_count(1, timeout=15_000)
    # marimo's column is narrower than the runs table: the table scrolls inside the
    # view's body, and the view stays inside the page.
    body = runs.locator(".rxnb-body")
    assert body.evaluate("e => getComputedStyle(e).overflowX") == "auto"
    inside = "e => e.getBoundingClientRect().right <= document.documentElement.clientWidth"
    assert runs.evaluate(inside), "the runs view overflows the page"
    marimo_server.write("second, from another process")
    expect(notes.locator(".rxnb-count")).to_have_text("2 rows", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "marimo-before-reload.png"), full_page=True)

    page.reload()
    # marimo replays what each widget held when created (0 rows, an empty chat): that
    # must never show as live. Sample until the current state is there.
    seen: list[tuple[str | None, str]] = []

    def current() -> bool:
        if notes.count() == 0:
            return False
        state = (status(page, NOTES), notes.locator(".rxnb-count").first.inner_text())
        seen.append(state)
        return state == ("live", "2 rows")

    wait_until(current, "the notes table's current state after the reload", 20)
    assert all(count == "2 rows" for s, count in seen if s == "live"), seen
    expect(page.locator(CHAT).locator('.rxnb-msg[data-role="assistant"]')).to_contain_text(
        ENDING, timeout=5_000
    )
    expect(page.locator(CHAT).locator('.rxnb-msg[data-role="user"]')).to_contain_text(QUESTION)
    expect(page.locator(RUNS).locator("tbody tr")).to_have_count(1, timeout=5_000)

    marimo_server.write("third, after the reload")
    expect(notes.locator(".rxnb-count")).to_have_text("3 rows", timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "marimo-after-reload.png"), full_page=True)

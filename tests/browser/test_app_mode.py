"""App mode: `rxnb app NOTEBOOK` serves a notebook with Voila (no code shown), and every
live widget keeps working in a real browser: the chat sends, streams and aborts, and
the runs view cancels a run."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import nbformat
import pytest
from chat_pages import ASSISTANT, CHAT, EXAMPLES, chat_notebook
from jupyter_pages import free_port, wait_until
from playwright.sync_api import BrowserContext, expect

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

RUNS = '.rxnb-live[data-kind="table"]'  # the runs view (the chat is data-kind="chat")


def _up(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except OSError:
        return False


def test_the_chat_and_the_runs_view_work_in_app_mode(
    browser_context: BrowserContext, tmp_path: Path
) -> None:
    folder = tmp_path / "app"
    folder.mkdir()
    shutil.copy(EXAMPLES / "chat_app.py", folder)
    nb = chat_notebook()  # 01_chat.ipynb's cells up to the chat
    nb.cells.append(nbformat.v4.new_code_cell("rx.runs()"))
    nbformat.write(nb, folder / "app.ipynb")
    port = free_port()
    log = (tmp_path / "app.log").open("wb")
    server = subprocess.Popen(
        [sys.executable, "-m", "rxnb", "app", "app.ipynb", "--port", str(port), "--no-browser"],
        cwd=folder,
        env={**os.environ, "RXNB_CHAT_DELAY": "0.05"},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}/"
        wait_until(lambda: _up(url), "Voila to answer", timeout=60)
        page = browser_context.new_page()
        page.goto(url)
        chat = page.locator(CHAT)
        expect(chat).to_be_visible(timeout=90_000)
        assert page.get_by_text('rx.chat("demo"').count() == 0  # the app shows no code
        replies = chat.locator(ASSISTANT)
        box = chat.locator("textarea.rxnb-chat-input")

        box.fill("Hello from the app")
        box.press("Enter")
        expect(replies).to_have_count(1, timeout=30_000)
        expect(replies.last).to_have_attribute("data-status", "done", timeout=60_000)
        expect(replies.last).to_contain_text("Hello from the app")  # the offline answer quotes it

        box.fill("Start, then stop")
        box.press("Enter")
        expect(replies).to_have_count(2, timeout=30_000)
        expect(replies.last).to_have_attribute("data-status", "streaming", timeout=30_000)
        replies.last.locator("button.rxnb-abort").click()
        expect(replies.last).to_have_attribute("data-status", "cancelled", timeout=15_000)

        box.fill("Cancelled from the runs view")
        box.press("Enter")
        expect(replies).to_have_count(3, timeout=30_000)
        expect(replies.last).to_have_attribute("data-status", "streaming", timeout=30_000)
        runs = page.locator(RUNS)
        runs.locator('button.rxnb-action[data-action="cancel"]').first.click()
        expect(replies.last).to_have_attribute("data-status", "cancelled", timeout=15_000)
        expect(runs.locator('.rxnb-badge[data-status="cancelled"]')).to_have_count(2)
        assert runs.locator('button.rxnb-action[data-action="cancel"]').count() == 0
        page.screenshot(path=str(tmp_path / "app.png"))
    finally:
        server.send_signal(signal.SIGTERM)  # rxnb app stops Voila (and its kernels) with it
        try:
            server.wait(30)
        finally:
            if server.poll() is None:
                server.kill()
            log.close()
    assert server.returncode == 0, (tmp_path / "app.log").read_text()[-3000:]


def test_a_path_that_is_not_a_notebook_is_refused_with_the_fix(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("not a notebook")
    for path in ("missing.ipynb", "notes.txt"):
        done = subprocess.run(
            [sys.executable, "-m", "rxnb", "app", path, "--no-browser"],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode == 2
        assert f"rxnb app: {path} is not a notebook file; give a .ipynb path" in done.stderr

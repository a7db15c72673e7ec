"""A chat notebook executed by nbclient and exported by `jupyter nbconvert --to html`,
opened in Chromium from a file (no kernel, no widget manager): each live output shows
its last state, as a person reads it, and `run.follow()`'s text is one block."""

from __future__ import annotations

import re
from pathlib import Path

import nbformat
import pytest
from chat_pages import NOTEBOOK
from jupyter_pages import ARTIFACTS, artifact_name
from nbconvert import HTMLExporter
from playwright.sync_api import BrowserContext, expect
from test_examples import EXAMPLES, execute

pytestmark = pytest.mark.browser

QUESTION = "Stream this one into the cell, please."


def small_chat_notebook() -> nbformat.NotebookNode:
    """01_chat.ipynb's setup, chat, `run.follow()` and closing cells: a chat whose
    thread holds one streamed answer, and the follow cell that showed it."""
    nb = nbformat.read(EXAMPLES / NOTEBOOK, as_version=4)
    wanted = ("%load_ext rxnb", 'rx.chat("demo"', "reply_id = ask(", "# The end, for notebooks")
    nb.cells = [
        c
        for c in nb.cells
        if c.cell_type == "code" and c.source.startswith(wanted) and "run.cancel()" not in c.source
    ]
    assert len(nb.cells) == len(wanted), "01_chat.ipynb changed: update this test's cells"
    end = nb.cells[-1].source
    nb.cells[-1].source = end[: end.index("rx.widgets.settle()")] + "rx.widgets.settle()"
    for cell in nb.cells:
        cell.outputs, cell.execution_count = [], None
    return nb


def test_the_exported_html_shows_the_final_thread_and_followed_text(
    browser_context: BrowserContext, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RXNB_CHAT_DELAY", "0.005")
    monkeypatch.setenv("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    monkeypatch.delenv("RXNB_URL", raising=False)
    nb = execute(EXAMPLES / NOTEBOOK, tmp_path, small_chat_notebook())

    follow_cell = nb.cells[2]
    assert [o.output_type for o in follow_cell.outputs].count("stream") == 0
    (text,) = [
        o.data["text/plain"]
        for o in follow_cell.outputs
        if o.output_type == "display_data" and set(o.data) == {"text/plain"}
    ]
    assert text.startswith(f"You asked: *{QUESTION}*") and len(text) > 200

    body, _ = HTMLExporter().from_notebook_node(nb)
    page_file = tmp_path / "chat.html"
    page_file.write_text(body)
    page = browser_context.new_page()
    page.goto(page_file.as_uri())

    # The chat's snapshot: the whole thread, its markdown rendered, times as times.
    snapshot = page.locator(".rxnb-snapshot").filter(has_text=QUESTION).first
    expect(snapshot).to_be_visible(timeout=10_000)
    snapshot.scroll_into_view_if_needed()
    ending = "never in the store or the notebook."
    expect(snapshot).to_contain_text(ending)
    expect(snapshot.locator("em").filter(has_text=QUESTION)).to_have_count(1)
    expect(snapshot.locator("li").filter(has_text="second window")).to_have_count(1)
    expect(snapshot.locator("strong").filter(has_text="second window")).to_have_count(1)
    shown = snapshot.inner_text()
    assert "**" not in shown and "*" + QUESTION not in shown, "markdown shows rendered"
    assert not re.search(r"\b1[0-9]{9}\.[0-9]+\b", shown), "times show as times, not epochs"

    # The followed text: one block, the whole answer in it.
    blocks = page.locator("pre").filter(has_text=f"You asked: *{QUESTION}*")
    expect(blocks).to_have_count(1)
    expect(blocks.first).to_contain_text(ending)
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{artifact_name('exported-html')}.png"), full_page=True)

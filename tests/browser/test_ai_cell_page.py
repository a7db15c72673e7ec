"""`%%ai` in a real JupyterLab (Chromium): the reply streams into the cell while it runs;
Kernel → Restart midway, then running the cells again shows the SAME reply finishing
(one cell row, one request, its run resumed as attempt 2), not a second one."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from typing import Any

import pytest
from chat_pages import restart_kernel
from jupyter_pages import JupyterServer, NotebookOpener, make_notebook, wait_until

pytestmark = pytest.mark.browser

WORDS = " ".join(f"word{i}" for i in range(120))
SETUP = f"""
%load_ext rxnb
import rxnb as rx
store = rx.open()
words = {WORDS!r}
"""
# rxnb/echo answers with the prompt, a token each 0.06 s: ~8 s of streaming.
AI = "%%ai rxnb/echo --param delay=0.06\nRepeat: {words}"
PROMPT = f"Repeat: {WORDS}"
TEXT_JS = """() => [...document.querySelectorAll('.rxnb-models .rxnb-model')].map((el) => ({
  status: el.getAttribute('data-status'),
  text: el.querySelector('.rxnb-model-text').textContent.trim(),
}))"""


def query(server: JupyterServer, sql: str) -> list[dict[str, Any]]:
    path = server.root / ".rxnb" / "rxnb.db"
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute(sql).fetchall()]


def test_the_reply_streams_into_the_cell_and_survives_a_restart(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    nb = open_notebook("ai.ipynb", make_notebook(SETUP, AI))
    nb.run_cell(0).wait()
    nb.run_cell(1)  # waits for the reply: not awaited here
    seen: list[dict[str, Any]] = []

    def streaming_midway() -> bool:
        columns = nb.page.evaluate(TEXT_JS)
        if columns:
            seen.append(columns[0])
        return (
            bool(columns)
            and columns[0]["status"] == "streaming"
            and len(columns[0]["text"]) > len("Repeat: word0 word1")
        )

    wait_until(streaming_midway, "the reply to stream into the cell", 60)
    partial = seen[-1]["text"]
    assert PROMPT.startswith(partial) and len(partial) < len(PROMPT), partial
    nb.screenshot("streaming")

    restart_kernel(nb)
    [run] = query(jupyter_server, "SELECT status, attempt, interrupted FROM rx_runs")
    assert (run["status"], run["attempt"]) == ("queued", 1), run
    assert "restart" in (run["interrupted"] or ""), run

    nb.run_cell(0).wait()
    nb.run_cell(1).wait(90)  # the same cell again: it follows the reply it has

    def finished() -> bool:
        columns = nb.page.evaluate(TEXT_JS)
        return bool(columns) and columns[0]["status"] == "done"

    wait_until(finished, "the same reply to finish", 60)
    [column] = nb.page.evaluate(TEXT_JS)
    assert column["text"].split() == PROMPT.split()
    nb.screenshot("finished")
    assert len(query(jupyter_server, "SELECT id FROM rx_ai_cells")) == 1
    assert len(query(jupyter_server, "SELECT id FROM rx_comparisons")) == 1
    [run] = query(jupyter_server, "SELECT status, attempt FROM rx_runs")
    assert (run["status"], run["attempt"]) == ("succeeded", 2), run

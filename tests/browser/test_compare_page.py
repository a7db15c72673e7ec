"""`rx.llm.compare` in a real JupyterLab: three columns stream at once, and a model
that fails shows its error in its own column while the others finish."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_pages import NotebookOpener, make_notebook, wait_until
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

WORDS = " ".join(f"w{i}" for i in range(40))

SETUP = """
import rxnb as rx
store = rx.open()
"""

COMPARE = f"""
cmp = rx.llm.compare(
    {WORDS!r},
    models=["rxnb/echo", "rxnb/scripted", "rxnb/missing"],
    delay=0.08,
    per_model={{"rxnb/scripted": {{"script": {WORDS.upper()!r}}}}},
)
cmp
"""

# Each column as the page shows it: model, status, the text's length, stats and error.
COLUMNS_JS = """() => [...document.querySelectorAll('.rxnb-models .rxnb-model')].map((el) => ({
  model: el.getAttribute('data-model'),
  status: el.getAttribute('data-status'),
  text: el.querySelector('.rxnb-model-text').textContent.trim(),
  stats: el.querySelector('.rxnb-model-stats').textContent,
  error: el.querySelector('.rxnb-model-error').hidden ? null
       : el.querySelector('.rxnb-model-error').textContent,
}))"""

ENDED = ("done", "failed", "cancelled")


def test_three_models_stream_side_by_side_and_a_failure_stays_in_its_column(
    open_notebook: NotebookOpener,
) -> None:
    nb = open_notebook(
        "compare.ipynb",
        make_notebook(SETUP, COMPARE, "cmp.result(60)"),
    )
    nb.run_cell(0).wait()
    nb.run_cell(1).wait()
    nb.wait_for(".rxnb-live[data-kind='models']", timeout=30)
    samples: list[list[dict[str, Any]]] = []

    def all_ended() -> bool:
        columns = nb.page.evaluate(COLUMNS_JS)
        samples.append(columns)
        return len(columns) == 3 and all(c["status"] in ENDED for c in columns)

    wait_until(all_ended, "every column to end", timeout=60)
    nb.screenshot("ended")
    assert [c["model"] for c in samples[-1]] == ["rxnb/echo", "rxnb/scripted", "rxnb/missing"]
    # At once: a moment when both answering columns showed part of their text and
    # neither had finished.
    streaming_together = [
        s
        for s in samples
        if len(s) == 3
        and all(0 < len(c["text"]) < len(WORDS) and c["status"] == "streaming" for c in s[:2])
    ]
    assert streaming_together, [[(c["status"], len(c["text"])) for c in s] for s in samples]
    # The failing column failed first, with its error in its own column, while the
    # others were still streaming.
    assert any(
        s[2]["status"] == "failed" and s[2]["error"] and s[0]["status"] == "streaming"
        for s in samples
        if len(s) == 3
    )
    echo, scripted, missing = samples[-1]
    assert (echo["status"], scripted["status"], missing["status"]) == ("done", "done", "failed")
    assert echo["text"] == WORDS and scripted["text"] == WORDS.upper()
    assert missing["error"].startswith("NotFoundError: rxnb has no offline model 'missing'")
    assert echo["error"] is None and scripted["error"] is None
    assert "tokens" in echo["stats"] and "first token" in echo["stats"]
    assert "total" in echo["stats"] and "$" in echo["stats"]
    nb.run_cell(2).wait()
    nb.wait_text("'rxnb/missing': ''", cell=2)
    expect(nb.root().locator(".rxnb-snapshot").first).to_be_hidden()
    assert nb.unexpected_errors() == []

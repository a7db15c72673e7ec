"""`rx.evals.run` in a real JupyterLab: 20 cases x 2 models with a scorer and an LLM
judge (offline models) fill the grid live, then a summary row per model."""

from __future__ import annotations

from typing import Any

import pytest
from jupyter_pages import NotebookOpener, make_notebook, wait_until

pytestmark = pytest.mark.browser

SETUP = """
import rxnb as rx
store = rx.open()

def exact(output, expected):
    return output.strip() == expected

judge = rx.evals.judge("Is the answer the expected word?", model="rxnb/scripted",
                       script="REASON: close enough\\nSCORE: 0.5", delay=0.01)
cases = [{"input": f"word{i}", "expected": f"word{i}"} for i in range(20)]
"""

RUN = """
report = rx.evals.run(cases, "{input}", scorers=[exact, judge],
                      models=["rxnb/echo", "rxnb/scripted"], script="nope", delay=0.05,
                      concurrency=4)
report
"""

# What the grid shows: per case row, each model cell's status; and the summary row.
GRID_JS = """() => ({
  cases: [...document.querySelectorAll('.rxnb-evals tr.rxnb-eval-case')].map((tr) =>
    [...tr.querySelectorAll('.rxnb-eval-cell')].map((td) => td.getAttribute('data-status'))),
  summary: [...document.querySelectorAll('.rxnb-evals tr.rxnb-eval-summary .rxnb-eval-cell')]
    .map((td) => td.textContent),
  heads: [...document.querySelectorAll('.rxnb-evals thead th')].map((th) => th.textContent),
})"""


def test_twenty_cases_by_two_models_fill_the_grid_live(open_notebook: NotebookOpener) -> None:
    nb = open_notebook("evals.ipynb", make_notebook(SETUP, RUN))
    nb.run_cell(0).wait()
    nb.run_cell(1).wait()
    nb.wait_for(".rxnb-live[data-kind='evals']", timeout=30)
    samples: list[dict[str, Any]] = []

    def filled() -> bool:
        grid = nb.page.evaluate(GRID_JS)
        samples.append(grid)
        cells = [status for row in grid["cases"] for status in row]
        return len(cells) == 40 and all(s == "done" for s in cells) and bool(grid["summary"])

    wait_until(filled, "the grid to fill", timeout=120)
    nb.screenshot("filled")
    done_counts = [sum(s == "done" for row in g["cases"] for s in row) for g in samples]
    assert any(0 < n < 40 for n in done_counts), done_counts  # seen part-filled: live
    final = samples[-1]
    assert final["heads"] == ["#", "input", "expected", "rxnb/echo", "rxnb/scripted"]
    echo, scripted = final["summary"]
    assert "exact 1" in echo and "judge 0.5" in echo and "20/20 done, 0 failed" in echo
    assert "exact 0" in scripted and "judge 0.5" in scripted
    assert nb.unexpected_errors() == []

"""`rx.runs()` in a real JupyterLab: a run's live status, and Cancel from the browser."""

from __future__ import annotations

import pytest
from jupyter_pages import NotebookOpener, make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser


def test_cancel_from_the_runs_view(open_notebook: NotebookOpener) -> None:
    nb = open_notebook(
        "runs.ipynb",
        make_notebook(
            """import rxnb as rx
store = rx.open()

@rx.action
def spin(ctx: rx.ActionContext, steps: int) -> int:
    for step in range(steps):
        ctx.check_cancelled()
        ctx.progress(step, steps, f"step {step}")
        ctx.wait(0.05)
    return steps

run = spin.start(steps=2000)""",
            "rx.runs()",
            "print('final:', run.wait(10))",
        ),
    )
    nb.run_cell(0).wait()
    nb.run_cell(1).wait()
    view = nb.outputs(1)
    badge = view.locator('.rxnb-badge[data-status="running"]')
    expect(badge).to_be_visible(timeout=15_000)
    expect(view.locator(".rxnb-progress progress")).to_be_visible()
    nb.screenshot("running")
    view.locator('button.rxnb-action[data-action="cancel"]').click()
    expect(view.locator('.rxnb-badge[data-status="cancelled"]')).to_be_visible(timeout=15_000)
    expect(view.locator('button.rxnb-action[data-action="retry"]')).to_be_visible()
    assert view.locator('button.rxnb-action[data-action="cancel"]').count() == 0
    nb.run_cell(2).wait()
    nb.wait_text("final: cancelled", cell=2)
    nb.screenshot("cancelled")
    assert nb.unexpected_errors() == []

"""Forks in a real JupyterLab: a timeline's Fork button forks a finished run from its
third step with the code as it is now, and `rx.widgets.compare` marks what changed."""

from __future__ import annotations

import pytest
from jupyter_pages import NotebookOpener, make_notebook
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

SETUP = """import rxnb as rx
store = rx.open()
VERSION = "v1"

def part(n: int) -> str:
    return f"part {n} {VERSION}" if n == 2 else f"part {n}"

@rx.workflow
def five(ctx: rx.WorkflowContext) -> list:
    return [ctx.step(part, n, name=f"s{n}") for n in range(5)]

run = five.start()
print("source", run.result(timeout=30))"""

TIMELINE = "rx.widgets.timeline(run.id, fork=True)"

CHANGE = 'VERSION = "v2"  # the changed code of the third step'

COMPARE = """from sqlmodel import select
child_id = store.database.read(
    lambda db: db.exec(select(rx.Run.id).where(rx.Run.forked_from == run.id)).one()
)[0]
print("child", rx.RunHandle(child_id, store).result(timeout=30))
rx.widgets.compare(run.id, child_id)"""


def test_fork_from_the_timeline_and_compare(open_notebook: NotebookOpener) -> None:
    nb = open_notebook("forks.ipynb", make_notebook(SETUP, TIMELINE, CHANGE, COMPARE))
    nb.run_cell(0).wait()
    nb.wait_text("source ['part 0', 'part 1', 'part 2 v1', 'part 3', 'part 4']", timeout=30)
    nb.run_cell(1).wait()
    timeline = nb.outputs(1)
    lanes = timeline.locator(".rxnb-tl-lane")
    expect(lanes).to_have_count(5, timeout=15_000)
    nb.run_cell(2).wait()

    third = lanes.nth(2).locator("button.rxnb-tl-fork")
    expect(third).to_be_visible()
    third.click()
    forked = timeline.locator(".rxnb-tl-forked")
    expect(forked).to_contain_text("from step 2: new run ", timeout=15_000)
    nb.screenshot("forked")

    nb.run_cell(3).wait()
    nb.wait_text("child ['part 0', 'part 1', 'part 2 v2', 'part 3', 'part 4']", timeout=30)
    view = nb.outputs(3)
    expect(view.locator('.rxnb-badge[data-status="changed"]')).to_have_count(2, timeout=15_000)
    expect(view.locator('.rxnb-badge[data-status="same"]')).to_have_count(4)
    changed_rows = view.locator("tbody tr", has=view.page.locator('[data-status="changed"]'))
    expect(changed_rows.first.locator('td[data-col="b"]')).to_have_text('"part 2 v2"')
    nb.screenshot("compared")
    assert nb.unexpected_errors() == []

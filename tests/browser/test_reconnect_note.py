"""A notebook reopened without its live views: the snapshot says how to bring them back.

A saved live output is two outputs: the static snapshot (HTML) and the widget view.
Reopened without a kernel, JupyterLab and Notebook 7 show "Loading widget..." for the
view; with a new kernel that has not run the cell, "Error displaying widget: model not
found". Either way the snapshot's last line, just above, tells the reader to run the
cell; once the live view renders it hides its snapshot, and the line goes with it.
"""

from __future__ import annotations

import pytest
from jupyter_pages import NotebookOpener, NotebookPage, make_notebook
from playwright.sync_api import Locator, expect

pytestmark = pytest.mark.browser

NAME = "reconnect.ipynb"
LIVE_CELL = 1
RECONNECT = "live view: run this cell to reconnect"  # rxnb/widgets/_snapshot.py

SETUP = """
import rxnb as rx
from sqlmodel import SQLModel, Field, select

class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    text: str

@rx.query
def notes(db: rx.Reader) -> list[Note]:
    return db.exec(select(Note).order_by(Note.id)).all()

@rx.mutation
def add(db: rx.Writer, text: str) -> None:
    db.add(Note(text=text))

store = rx.open()
if not notes():
    add(text="first note")
"""


def reconnect_line(nb: NotebookPage) -> Locator:
    return nb.outputs(LIVE_CELL).locator(".rxnb-snapshot .rxnb-snapshot-reconnect")


def expect_snapshot_with_line_above(nb: NotebookPage, widget_says: str) -> None:
    """The snapshot and its reconnect line show, right above the widget output's text."""
    snapshot = nb.outputs(LIVE_CELL).locator(".rxnb-snapshot")
    expect(snapshot).to_be_visible(timeout=15_000)
    expect(snapshot).to_contain_text("first note")
    line = reconnect_line(nb)
    expect(line).to_be_visible()
    expect(line).to_have_text(RECONNECT)
    fallback = nb.outputs(LIVE_CELL).filter(has_text=widget_says)
    expect(fallback).to_be_visible(timeout=15_000)
    assert nb.outputs(LIVE_CELL).locator(".rxnb-live").count() == 0
    above, below = line.bounding_box(), fallback.bounding_box()
    assert above is not None and below is not None
    assert 0 <= below["y"] - (above["y"] + above["height"]) < 40, (above, below)


def expect_live(nb: NotebookPage) -> None:
    """The live view shows; its snapshot, and with it the reconnect line, do not."""
    expect(nb.outputs(LIVE_CELL).locator(".rxnb-live")).to_contain_text(
        "first note", timeout=20_000
    )
    expect(nb.outputs(LIVE_CELL).locator(".rxnb-snapshot")).to_be_hidden()
    expect(reconnect_line(nb)).to_be_hidden()
    assert nb.page.get_by_text(RECONNECT).filter(visible=True).count() == 0


@pytest.mark.parametrize("jupyter_server", ["lab", "notebook"], indirect=True)
def test_a_reopened_notebook_says_how_to_reconnect_until_the_cell_runs(
    open_notebook: NotebookOpener,
) -> None:
    nb = open_notebook(NAME, make_notebook(SETUP, "notes.live()"))
    assert nb.run_all().wait() is True
    expect_live(nb)
    nb.save()
    nb.shutdown_kernel()

    # Reopened with no kernel at all: "Loading widget...".
    nokernel = open_notebook(NAME, kernel=False)
    expect_snapshot_with_line_above(nokernel, "Loading widget")
    nokernel.screenshot("no-kernel")
    nokernel.close()

    # Reloaded on a new kernel that has not run the cell: "model not found".
    nb.reload()
    expect_snapshot_with_line_above(nb, "model not found")
    nb.screenshot("new-kernel")

    # Running the cell again brings the live view back, and the line goes.
    assert nb.run_all().wait() is True
    expect_live(nb)
    nb.screenshot("live-again")
    assert nb.unexpected_errors() == []

"""Live query widgets in a real JupyterLab and Notebook 7, in Debian's chromium."""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_pages import JupyterServer, NotebookOpener, NotebookPage, make_notebook
from playwright.sync_api import expect

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_examples import EXAMPLES, execute

pytestmark = pytest.mark.browser

LIVE = ".rxnb-live"

SETUP = """
import threading, time
import rxnb as rx
from sqlmodel import SQLModel, Field, select

class Row(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    text: str

@rx.query
def rows(db: rx.Reader) -> list[Row]:
    return db.exec(select(Row).order_by(Row.id)).all()

@rx.query
def row_count(db: rx.Reader) -> int:
    return len(db.exec(select(Row.id)).all())

@rx.mutation
def add(db: rx.Writer, text: str) -> None:
    db.add(Row(text=text))

store = rx.open()
%load_ext rxnb
"""


def live_text(nb: NotebookPage, cell: int, text: str, timeout: float = 20) -> None:
    expect(nb.outputs(cell).locator(LIVE).first).to_contain_text(text, timeout=timeout * 1000)


def rows_shown(nb: NotebookPage, cell: int) -> int:
    return nb.outputs(cell).locator(f"{LIVE} tbody tr").count()


@pytest.mark.parametrize("jupyter_server", ["lab", "notebook"], indirect=True)
def test_the_example_notebook_reaches_the_final_state(open_notebook: NotebookOpener) -> None:
    nb = open_notebook("00_live_queries.ipynb", EXAMPLES / "00_live_queries.ipynb")
    run = nb.run_all()
    nb.wait_for(f'{LIVE}[data-kind="table"]', timeout=30)
    nb.screenshot("streaming")
    cells = nbformat.read(EXAMPLES / "00_live_queries.ipynb", as_version=4).cells
    count_cell = next(i for i, c in enumerate(cells) if "note_count.live" in c.source)
    table_cell = next(i for i, c in enumerate(cells) if "notes.live" in c.source)
    expect(nb.outputs(count_cell).locator(".rxnb-value")).to_have_text("50", timeout=30_000)
    live_text(nb, table_cell, "note 50 of 50")
    assert rows_shown(nb, table_cell) == 50
    assert run.wait(60) is True
    # The static snapshots stay hidden while the live views show.
    expect(nb.root().locator(".rxnb-snapshot").first).to_be_hidden()
    nb.screenshot("final")
    assert nb.unexpected_errors() == []


@pytest.mark.parametrize("jupyter_server", ["lab", "notebook"], indirect=True)
def test_reload_second_page_and_reruns(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer
) -> None:
    nb = open_notebook(
        "stream.ipynb",
        make_notebook(
            SETUP,
            "rows.live()",
            """
def writer(n=80):
    for i in range(1, n + 1):
        add(text=f"row {i}")
        time.sleep(0.05)
threading.Thread(target=writer).start()""",
            "add(text='from a cell')",
            "print(len(rx.widgets.live_widgets()), len(store.subscriptions()))",
        ),
    )
    nb.run_cell(0).wait()
    nb.run_cell(1).wait()
    nb.run_cell(2).wait()
    live_text(nb, 1, "row 10")
    nb.save()
    nb.reload()  # mid-stream: the page comes back and keeps following
    nb.screenshot("reloaded")
    live_text(nb, 1, "row 80", timeout=30)
    assert rows_shown(nb, 1) == 80

    second = open_notebook("stream.ipynb")
    live_text(second, 1, "row 80")
    second.run_cell(3).wait()
    live_text(second, 1, "from a cell")
    live_text(nb, 1, "from a cell")
    assert rows_shown(nb, 1) == rows_shown(second, 1) == 81
    second.screenshot("second-page")
    second.close()

    for _ in range(10):
        nb.run_cell(1).wait()
    live_text(nb, 1, "from a cell")
    assert nb.root().locator(LIVE).count() == 1
    nb.run_cell(4).wait()
    nb.wait_text("1 1", cell=4)
    nb.screenshot("after-10-reruns")
    assert nb.unexpected_errors() == []


def test_store_content_is_inert_and_errors_show_and_recover(open_notebook: NotebookOpener) -> None:
    nb = open_notebook(
        "hostile.ipynb",
        make_notebook(
            SETUP,
            """add(text='<img src=x onerror="window.__xss = 1">')
add(text='<script>window.__xss = 2</script>')
rows.live()""",
            """@rx.query
def last_text(db: rx.Reader) -> str:
    return db.exec(select(Row).order_by(Row.id.desc())).first().text
last_text.live()""",
            """@rx.query
def ratio(db: rx.Reader) -> float:
    return 100 / (len(db.exec(select(Row.id)).all()) - 3)
ratio.live()""",
            "add(text='[link](javascript:window.__xss=3) <img src=y onerror=\"window.__xss=4\">')",
            "add(text='four')",
        ),
    )
    for cell in range(4):
        nb.run_cell(cell).wait()
    live_text(nb, 1, '<img src=x onerror="window.__xss = 1">')
    live_text(nb, 1, "<script>window.__xss = 2</script>")
    assert nb.outputs(1).locator(f"{LIVE} img, {LIVE} script").count() == 0
    expect(nb.outputs(3).locator(".rxnb-value")).to_have_text("-100", timeout=15_000)

    nb.run_cell(4).wait()  # a third row: markdown with a script link, and 100 / 0
    markdown = nb.outputs(2).locator(".rxnb-markdown")
    expect(markdown).to_contain_text("[image: y]", timeout=15_000)
    assert markdown.locator("img, script").count() == 0
    href = markdown.locator("a").first.get_attribute("href")
    assert href is None or not href.startswith("javascript:")
    error = nb.outputs(3).locator(".rxnb-error")
    expect(error).to_contain_text("ZeroDivisionError", timeout=15_000)
    expect(nb.outputs(3).locator(".rxnb-value")).to_have_text("-100")  # the last good value
    nb.screenshot("inert-and-error")
    markdown.locator("a").first.click()  # the sanitized link runs nothing either
    assert nb.page.evaluate("() => window.__xss") is None

    nb.run_cell(5).wait()  # a fourth row: the query recovers
    expect(error).to_be_hidden(timeout=15_000)
    expect(nb.outputs(3).locator(".rxnb-value")).to_have_text("100")
    assert nb.page.evaluate("() => window.__xss") is None
    assert nb.unexpected_errors() == []


@pytest.mark.parametrize("how", ["executed by nbclient", "run and saved in the browser"])
def test_without_a_kernel_the_last_snapshot_shows(
    how: str, open_notebook: NotebookOpener, jupyter_server: JupyterServer, tmp_path: Path
) -> None:
    name = "00_live_queries.ipynb"
    if how == "executed by nbclient":
        jupyter_server.put_notebook(name, execute(EXAMPLES / name, tmp_path) and tmp_path / name)
    else:
        nb = open_notebook(name, EXAMPLES / name)
        assert nb.run_all().wait(60) is True
        table_cell = next(
            i
            for i, c in enumerate(nbformat.read(EXAMPLES / name, as_version=4).cells)
            if "notes.live" in c.source
        )
        live_text(nb, table_cell, "note 50 of 50", timeout=30)
        # The snapshot refresh is throttled to 1 s: wait until the page has it.
        expect(nb.root().locator(".rxnb-snapshot").filter(has_text="50 rows")).to_have_count(
            1, timeout=10_000
        )
        nb.save()
        nb.shutdown_kernel()
        nb.close()
    reopened = open_notebook(name, kernel=False)
    snapshots = reopened.root().locator(".rxnb-snapshot")
    expect(snapshots.filter(has_text="note 50 of 50").first).to_be_visible(timeout=15_000)
    expect(snapshots.filter(has_text="50 rows").first).to_be_visible()
    assert reopened.root().get_by_text("model not found").count() == 0
    snapshots.filter(has_text="50 rows").first.scroll_into_view_if_needed()
    reopened.screenshot("no-kernel")

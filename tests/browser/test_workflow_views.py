"""The durable workflow notebook (examples/03_durable_workflow.ipynb) in a real
JupyterLab, in Debian's chromium: the reviewer approves in the browser.

The notebook is the example's cells, verbatim, up to and including the cell that waits
for `run.status == "waiting"` (so it starts the run and shows `rx.widgets.timeline`);
the approval cell and the asserts are dropped. The test then clicks **Approve** in the
live reviews table, as the human reviewer, and follows the run in the timeline: four
lanes before approval (outline, draft, the `request_review` mutation, the event wait),
then the sleep lane, then `publish`, done. Every lane state the page ever showed is
recorded by a MutationObserver installed before the page loads, so the lanes' growth is
checked without polling gaps. What the store holds is read from its SQLite file.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import sys
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import nbformat
import pytest
from jupyter_pages import (
    ARTIFACTS,
    OUTPUT,
    JupyterServer,
    NotebookOpener,
    NotebookPage,
    artifact_name,
    wait_until,
)
from playwright.sync_api import BrowserContext, Locator, expect
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from test_examples import EXAMPLES

pytestmark = pytest.mark.browser

NOTEBOOK = "03_durable_workflow.ipynb"
TIMELINE = '.rxnb-live[data-kind="timeline"]'
LANE = f"{TIMELINE} .rxnb-tl-lane"
REVIEWS = '.rxnb-live[data-kind="table"]'
APPROVE = 'button.rxnb-action[data-action="approve"]'
BEFORE_APPROVAL = [
    ("make_outline", "step"),
    ("write_draft", "step"),
    ("request_review", "mutation"),
    ("review", "event"),
]
AFTER_APPROVAL = [*BEFORE_APPROVAL, ("sleep", "sleep"), ("publish", "step")]
RESULT = "published: # Durable Agents"

# JavaScript: what the timeline's lanes show, lane by lane.
_LANES = """() => [...document.querySelectorAll('.rxnb-live[data-kind="timeline"] .rxnb-tl-lane')]
  .map((el) => ({
    key: el.getAttribute('data-key'),
    label: el.querySelector('.rxnb-tl-label')?.textContent ?? null,
    kind: el.getAttribute('data-kind'),
    status: el.getAttribute('data-status'),
    going: el.hasAttribute('data-going'),
  }))"""

# Init script: every distinct lane list the page shows, in order, with its time.
_RECORD_LANES = """(() => {
  const lanes = LANES;
  const seen = (window.__rxnbLanes = []);
  let last = '[]';
  const record = () => {
    const now = JSON.stringify(lanes());
    if (now !== last) {
      last = now;
      seen.push({t: performance.now(), lanes: JSON.parse(now)});
    }
  };
  new MutationObserver(record).observe(document, {
    childList: true, subtree: true, characterData: true,
    attributes: true, attributeFilter: ['data-key', 'data-kind', 'data-status', 'data-going'],
  });
})()""".replace("LANES", _LANES)

# JavaScript: each lane's bar as drawn (its inline left/width and its rendered box).
_BARS = """root => [...root.querySelectorAll('.rxnb-tl-lane')].map((lane) => {
  const bar = lane.querySelector('.rxnb-tl-track > .rxnb-tl-bar');
  const track = lane.querySelector('.rxnb-tl-track');
  const style = bar ? getComputedStyle(bar) : null;
  return {
    label: lane.querySelector('.rxnb-tl-label')?.textContent ?? null,
    kind: lane.getAttribute('data-kind'),
    status: lane.getAttribute('data-status'),
    hidden: !bar || bar.hidden,
    left: bar ? bar.style.left : null,
    width: bar ? bar.style.width : null,
    px: bar ? bar.getBoundingClientRect().width : 0,
    trackPx: track ? track.getBoundingClientRect().width : 0,
    // How far the bar's right edge is past the track's (its 2 px minimum width).
    overflowPx: bar && track
      ? bar.getBoundingClientRect().right - track.getBoundingClientRect().right : 0,
    background: style ? style.backgroundImage : null,
    duration: lane.querySelector('.rxnb-tl-duration')?.textContent ?? '',
  };
})"""


@pytest.fixture(autouse=True)
def store_beside_the_notebook(monkeypatch: pytest.MonkeyPatch) -> None:
    """The server (started after this) and so its kernel: `rx.open()` beside the notebook."""
    monkeypatch.delenv("RXNB_URL", raising=False)


def workflow_notebook() -> nbformat.NotebookNode:
    """03_durable_workflow.ipynb's cells up to and including the wait for `waiting`."""
    nb = nbformat.read(EXAMPLES / NOTEBOOK, as_version=4)
    code = [(i, c.source) for i, c in enumerate(nb.cells) if c.cell_type == "code"]
    last = next(i for i, s in code if s.startswith('while run.status != "waiting"'))
    assert any("rx.widgets.timeline(run.id)" in s for i, s in code if i < last)
    nb.cells = nb.cells[: last + 1]
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    return nb


def store_path(server: JupyterServer) -> Path:
    return server.root / ".rxnb" / "rxnb.db"


def stored_runs(server: JupyterServer) -> list[dict[str, Any]]:
    """The store's runs of `report`: id, status, result, error."""
    with closing(sqlite3.connect(f"file:{store_path(server)}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        rows = db.execute(
            "SELECT id, status, result, error FROM rx_runs WHERE function LIKE '%report' "
            "ORDER BY created_at"
        ).fetchall()
        return [dict(r) for r in rows]


def stored_journal(server: JupyterServer, run_id: str) -> list[tuple[str, str]]:
    with closing(sqlite3.connect(f"file:{store_path(server)}?mode=ro", uri=True, timeout=5)) as db:
        rows = db.execute(
            "SELECT name, kind FROM rx_journal WHERE run_id = ? ORDER BY seq", (run_id,)
        ).fetchall()
        return [(name.rsplit(".", 1)[-1], kind) for name, kind in rows]


def stored_reviews(server: JupyterServer) -> list[dict[str, Any]]:
    with closing(sqlite3.connect(f"file:{store_path(server)}?mode=ro", uri=True, timeout=5)) as db:
        db.row_factory = sqlite3.Row
        return [dict(r) for r in db.execute("SELECT id, run_id, status FROM review ORDER BY id")]


@contextmanager
def store_on_failure(server: JupyterServer, nb: NotebookPage) -> Iterator[None]:
    """A failure inside says what the store held and what the page showed then."""
    try:
        yield
    except (AssertionError, TimeoutError, PlaywrightTimeoutError) as exc:
        try:
            held = f"runs: {stored_runs(server)}\nreviews: {stored_reviews(server)}"
            for run in stored_runs(server):
                held += f"\njournal {run['id']}: {stored_journal(server, run['id'])}"
        except sqlite3.Error as e:
            held = f"(the store could not be read: {e})"
        try:
            outputs = nb.root().locator(OUTPUT).all_inner_texts()
        except PlaywrightTimeoutError:
            outputs = ["(the page could not be read)"]
        raise AssertionError(
            f"{exc}\n-- the store held --\n{held}\n-- outputs --\n{outputs}\n"
            f"-- page errors --\n{nb.page_errors}\n-- console --\n{nb.console[-20:]}"
        ) from exc


def lanes(nb: NotebookPage) -> list[dict[str, Any]]:
    return nb.page.evaluate(_LANES)  # type: ignore[no-any-return]


def lane_history(nb: NotebookPage) -> list[dict[str, Any]]:
    return nb.page.evaluate("() => window.__rxnbLanes || []")  # type: ignore[no-any-return]


def shown(nb: NotebookPage) -> list[tuple[str, str]]:
    return [(lane["label"], lane["kind"]) for lane in lanes(nb)]


def check_bars(timeline: Locator) -> list[dict[str, Any]]:
    """Every lane has a visible bar placed inside its track (0..100 %), non-zero wide."""
    bars: list[dict[str, Any]] = timeline.evaluate(_BARS)
    assert bars, "no lanes"
    for bar in bars:
        assert not bar["hidden"], bar
        assert bar["left"].endswith("%") and bar["width"].endswith("%"), bar
        left, width = float(bar["left"][:-1]), float(bar["width"][:-1])
        assert 0 <= left <= 100 and 0 <= width <= 100 and left + width <= 100.001, bar
        assert bar["px"] > 0, bar
        assert bar["px"] <= bar["trackPx"] + 0.5, bar
        assert bar["overflowPx"] <= 2.5, bar  # an instant step at the axis's end: 2 px
        assert bar["duration"], bar
        hatched = "repeating-linear-gradient" in (bar["background"] or "")
        assert hatched == (bar["kind"] in ("sleep", "event")), bar
    return bars


def shoot(nb: NotebookPage, step: str, *widgets: Locator) -> list[Path]:
    """The page, and each of `widgets` alone, under test-artifacts/browser/."""
    widgets[0].scroll_into_view_if_needed()
    paths = [nb.screenshot(step)]
    for i, widget in enumerate(widgets):
        path = ARTIFACTS / f"{nb.artifact_prefix}-{artifact_name(step)}-widget{i}.png"
        widget.screenshot(path=str(path))
        paths.append(path)
    return paths


def test_approve_in_the_browser_and_follow_the_timeline(
    open_notebook: NotebookOpener, jupyter_server: JupyterServer, browser_context: BrowserContext
) -> None:
    browser_context.add_init_script(_RECORD_LANES)
    nb = open_notebook(NOTEBOOK, workflow_notebook())
    # Tall enough for the reviews table and the timeline on one screen.
    nb.page.set_viewport_size({"width": 1280, "height": 1500})
    with store_on_failure(jupyter_server, nb):
        if nb.run_all().wait(45) is not True:
            raise AssertionError("a cell of the workflow notebook failed")
        nb.wait_text("'waiting'", cell=len(workflow_notebook().cells) - 1)
        [run] = stored_runs(jupyter_server)
        assert run["status"] == "waiting", run

        timeline = nb.wait_for(TIMELINE, timeout=15)
        expect(timeline.locator(f'.rxnb-tl-run[data-run="{run["id"]}"]')).to_be_visible()
        expect(timeline.locator(".rxnb-tl-run-head")).to_have_text(run["id"])
        wait_until(lambda: shown(nb) == BEFORE_APPROVAL, "the four lanes before approval", 15)
        waiting = lanes(nb)[-1]
        assert waiting["status"] == "waiting" and waiting["going"], waiting
        assert all(lane["status"] == "done" for lane in lanes(nb)[:-1]), lanes(nb)
        bars_before = check_bars(timeline)
        expect(timeline.locator(".rxnb-tl-axis-start")).not_to_have_text("")
        expect(timeline.locator(".rxnb-tl-axis-end")).not_to_have_text("")

        reviews = nb.wait_for(REVIEWS, timeout=15)
        [review] = stored_reviews(jupyter_server)
        assert review["run_id"] == run["id"] and review["status"] == "pending", review
        rows = reviews.locator("table.rxnb-table tbody tr")
        expect(rows).to_have_count(1, timeout=10_000)
        row = rows.filter(has=nb.page.locator('td[data-col="id"]', has_text=str(review["id"])))
        status = row.locator('td[data-col="status"] .rxnb-badge')
        expect(status).to_have_attribute("data-status", "pending", timeout=10_000)
        expect(status).to_have_text("pending")
        expect(row.locator(APPROVE)).to_have_text("Approve")
        expect(row.locator('button.rxnb-action[data-action="reject"]')).to_have_text("Reject")
        expect(row.locator('td[data-col="run_id"]')).to_have_text(run["id"])
        shots = shoot(nb, "before-approval", reviews, timeline)

        approved_at = nb.page.evaluate("() => performance.now()")
        row.locator(APPROVE).click()
        expect(status).to_have_attribute("data-status", "approved", timeout=15_000)
        expect(status).to_have_text("approved")
        expect(row.locator("button.rxnb-action")).to_have_count(0, timeout=5_000)
        expect(reviews.locator(".rxnb-call-error")).to_have_count(0)

        expect(timeline.locator('.rxnb-tl-lane[data-kind="sleep"]')).to_have_count(
            1, timeout=15_000
        )
        publish = timeline.locator(".rxnb-tl-lane").filter(
            has=nb.page.locator(".rxnb-tl-label", has_text="publish")
        )
        expect(publish).to_have_attribute("data-status", "done", timeout=20_000)
        wait_until(
            lambda: stored_runs(jupyter_server)[0]["status"] == "succeeded",
            "the run to succeed in the store",
            15,
        )
        expect(timeline.locator(".rxnb-tl-lane[data-going]")).to_have_count(0, timeout=5_000)
        assert shown(nb) == AFTER_APPROVAL, lanes(nb)
        assert all(lane["status"] == "done" for lane in lanes(nb)), lanes(nb)
        expect(publish.locator(".rxnb-tl-preview")).to_have_text(json.dumps(RESULT))
        bars_after = check_bars(timeline)
        shots += shoot(nb, "completed", reviews, timeline)

        [run] = stored_runs(jupyter_server)
        assert run["status"] == "succeeded" and run["error"] is None, run
        assert json.loads(run["result"]) == RESULT, run
        assert stored_journal(jupyter_server, run["id"]) == AFTER_APPROVAL
        assert [r["status"] for r in stored_reviews(jupyter_server)] == ["approved"]

        # The lanes grew: each shown list extends the one before, never losing a lane;
        # all four before the click, then the sleep alone (as it sleeps), then publish.
        history = lane_history(nb)
        labels = [[(lane["label"], lane["kind"]) for lane in h["lanes"]] for h in history]
        assert labels and labels[-1] == AFTER_APPROVAL, labels
        for before, after in itertools.pairwise(labels):
            assert after[: len(before)] == before, (before, after)
        counts = [len(ls) for ls in labels]
        before_click = {n for h, n in zip(history, counts, strict=True) if h["t"] < approved_at}
        after_click = {n for h, n in zip(history, counts, strict=True) if h["t"] > approved_at}
        assert max(before_click) == 4, counts
        assert {5, 6} <= after_click and max(after_click) == 6, counts
        asleep = [h["lanes"] for h, n in zip(history, counts, strict=True) if n == 5]
        sleeping = asleep[0]
        assert sleeping[3]["status"] == "done" and not sleeping[3]["going"], sleeping
        # While the run sleeps, its sleep lane reads sleeping and is going.
        assert any(
            lanes_[4]["kind"] == "sleep"
            and lanes_[4]["status"] == "sleeping"
            and lanes_[4]["going"]
            for lanes_ in asleep
        ), asleep

        assert nb.page.get_by_text("model not found").count() == 0
        assert nb.unexpected_errors() == [], nb.page_errors

    def brief(bars: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
        return [(b["label"], b["status"], b["left"], b["width"], b["px"]) for b in bars]

    print(  # with -s: what the page showed, for the record
        f"\nlane counts shown: {counts}"
        f"\nwhile asleep: {[(lane['label'], lane['status']) for lane in sleeping]}"
        f"\nbars before: {brief(bars_before)}\nbars after: {brief(bars_after)}"
        f"\nscreenshots: {[p.name for p in shots]}"
    )

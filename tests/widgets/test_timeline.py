"""`rx.widgets.timeline`: a workflow run's journal as a live widget of timeline rows."""

from __future__ import annotations

import threading
from typing import Any

from browser_model import BrowserModel
from polling import until
from recording_comm import Comms

import rxnb as rx

GATE = threading.Event()


def gated(i: int) -> int:
    GATE.wait(10)
    return i


def quick(i: int) -> dict[str, Any]:
    return {"i": i, "text": "<b>not html</b>"}


@rx.workflow
def stepping(ctx: rx.WorkflowContext) -> int:
    ctx.step(quick, 0)
    ctx.step(gated, 1)
    ctx.sleep(0.05)
    return int(ctx.step(gated, 2))


def rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(payload["columns"], r, strict=True)) for r in payload["rows"]]


def test_the_timeline_follows_a_run_step_by_step(store: rx.Store, comms: Comms) -> None:
    GATE.clear()
    run = stepping.start()
    widget = rx.widgets.timeline(run.id)
    until(lambda: len(widget.data["rows"]) == 1)
    browser = BrowserModel(widget.get_state("payload")["payload"])
    seen = len(comms.custom())
    assert widget.data["timeline"]["start"] == "started_at"
    (first,) = rows(widget.data)
    assert (first["seq"], first["kind"], first["status"]) == (0, "step", "done")
    assert first["preview"] == '{"i": 0, "text": "<b>not html</b>"}'
    GATE.set()
    assert run.result(timeout=10) == 2
    until(lambda: len(widget.data["rows"]) == 4)
    for message in comms.custom()[seen:]:
        browser.apply(message)
    assert browser.payload == widget.data
    assert [(r["seq"], r["kind"], r["status"]) for r in rows(widget.data)] == [
        (0, "step", "done"),
        (1, "step", "done"),
        (2, "sleep", "done"),
        (3, "step", "done"),
    ]
    sleep = rows(widget.data)[2]
    assert sleep["finished_at"] >= sleep["started_at"] + 0.05  # drawn up to its wake time
    assert sleep["preview"].startswith("until ")


def test_the_timeline_of_all_runs_groups_the_newest(store: rx.Store, comms: Comms) -> None:
    GATE.set()
    runs = [stepping.start() for _ in range(3)]
    for run in runs:
        run.result(timeout=10)
    widget = rx.widgets.timeline(limit=2)
    until(lambda: len(widget.data["rows"]) == 8)
    assert {r["run_id"] for r in rows(widget.data)} == {runs[1].id, runs[2].id}

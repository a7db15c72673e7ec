"""The static HTML snapshot of a live output: what a reader without a kernel sees."""

from __future__ import annotations

import dataclasses
from html.parser import HTMLParser

from models import messages, send
from recording_comm import Comms

import rxnb as rx
from rxnb.reactive import JSONValue
from rxnb.widgets import live
from rxnb.widgets._payload import Payload, encode
from rxnb.widgets._snapshot import RECONNECT, snapshot_html

SNAPSHOT_ID = "rxnb-snapshot-" + "0" * 32
TRACE = 'Traceback (most recent call last):\n  File "job.py", line 9\nValueError: bad url'


def runs_payload(view: tuple[tuple[str, JSONValue], ...]) -> Payload:
    """A runs view's rows: the error as one line in `note`, its traceback in `details`."""
    rows = [
        {"id": "r1", "status": "failed", "note": "ValueError: bad url", "details": TRACE},
        {"id": "r2", "status": "succeeded", "note": "", "details": None},
    ]
    return dataclasses.replace(encode("runs()", rows, rows), view=view)


class Elements(HTMLParser):
    """Each element's tag, classes and the classes of the elements around it."""

    def __init__(self) -> None:
        super().__init__()
        self.open: list[tuple[str, list[str]]] = []
        self.texts: list[tuple[str, list[list[str]]]] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.open.append((tag, (dict(attrs).get("class") or "").split()))

    def handle_endtag(self, tag: str) -> None:
        assert self.open.pop()[0] == tag

    def handle_data(self, data: str) -> None:
        if data.strip():
            self.texts.append((data, [classes for _, classes in self.open]))


def parsed(html: str) -> Elements:
    elements = Elements()
    elements.feed(html)
    elements.close()
    assert elements.open == []
    return elements


def test_hidden_columns_are_left_out_of_the_snapshot() -> None:
    view: tuple[tuple[str, JSONValue], ...] = (
        ("formats", {"note": "error"}),
        ("hidden", ["details"]),
    )
    html = snapshot_html(runs_payload(view), 1)
    assert "ValueError: bad url" in html
    assert "<th" in html and ">details</th>" not in html
    assert "Traceback" not in html
    # Every row has as many cells as the header: the hidden column left no hole.
    assert html.count("<th ") == 3
    assert html.count("<td ") == 2 * 3


def test_without_hidden_every_column_shows() -> None:
    views: list[tuple[tuple[str, JSONValue], ...]] = [
        (),
        (("hidden", "details"),),  # not a list: nothing is hidden
        (("hidden", [3, None]),),  # no column names
        (("hidden", ["nope"]),),
    ]
    for view in views:
        html = snapshot_html(runs_payload(view), 1)
        assert ">details</th>" in html and "Traceback" in html
        assert html.count("<th ") == 4


def test_a_live_widgets_hidden_columns_stay_out_of_its_snapshot(
    store: rx.Store, comms: Comms
) -> None:
    send(thread_id="t", text="hello")
    widget = live(messages, {"thread_id": "t"}, view={"hidden": ["thread_id"]})
    assert widget.get_state()["payload"]["hidden"] == ["thread_id"]
    html = widget.snapshot()
    assert ">thread_id</th>" not in html and ">content</th>" in html
    assert "hello" in html


def test_the_reconnect_line_goes_with_the_snapshot_the_live_view_hides() -> None:
    payload = Payload(title="rows()", kind="value", value=3)
    elements = parsed(snapshot_html(payload, 4, SNAPSHOT_ID))
    [around] = [a for t, a in elements.texts if t == RECONNECT]
    # Inside the element with the snapshot's id: js/snapshot.ts hides that element (and
    # the output holding it), so the line cannot outlive it when the live view shows.
    assert ["rxnb-snapshot", SNAPSHOT_ID] in around
    assert around[-1] == ["rxnb-snapshot-reconnect"]
    # It is the snapshot's last line: just above the widget output's "Loading widget…".
    assert elements.texts[-1][0] == RECONNECT
    # Inert: front ends strip <style> and scripts from untrusted outputs.
    assert elements.tags <= {"div", "b", "table", "thead", "tbody", "tr", "th", "td", "pre"}

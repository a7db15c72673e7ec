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


def test_markdown_is_rendered_inert() -> None:
    """A reader without a kernel (nbconvert, GitHub) reads markdown as markdown; model
    output in it stays text: no raw HTML, no image load, no script link."""
    text = (
        "# Plan\n\n- **one**\n- [docs](https://example.com) [x](javascript:alert(1))\n\n"
        "<script>alert(1)</script> <img src=x onerror=alert(1)>\n\n![pixel](https://t.example/p.png)"
    )
    html = snapshot_html(encode("answer()", text, text), 3, SNAPSHOT_ID)
    elements = parsed(html)
    assert {"h1", "ul", "li", "strong", "a"} <= elements.tags
    assert not {"script", "img", "pre"} & elements.tags
    assert 'href="https://example.com"' in html
    assert "javascript:" not in html.replace("[x](javascript:alert(1))", "")
    assert "&lt;script&gt;" in html and "&lt;img" in html


def test_times_and_durations_show_as_times() -> None:
    rows = [{"id": "r1", "created_at": 1796400000.5, "took": [1796400000.0, 1796400002.25]}]
    payload = dataclasses.replace(
        encode("runs()", rows, rows),
        view=(("formats", {"created_at": "time", "took": "elapsed"}),),
    )
    html = snapshot_html(payload, 1, SNAPSHOT_ID)
    assert "2026-12-04 16:00:00 UTC" in html and "1796400000" not in html
    assert "2.2 s" in html


def test_a_chat_shows_as_its_messages(store: rx.Store, comms: Comms) -> None:
    reply = send(thread_id="snap", text="Say **hello**")
    widget = rx.chat("snap", send=send, messages=messages)
    rows = widget.data["rows"]
    assert any(r for r in rows), rows
    html = snapshot_html(widget._sent, 1, SNAPSHOT_ID)
    elements = parsed(html)
    assert "strong" in elements.tags  # the user's markdown, rendered
    assert "table" not in elements.tags
    assert "<strong>hello</strong>" in html and "**" not in html
    widget.close()
    assert reply

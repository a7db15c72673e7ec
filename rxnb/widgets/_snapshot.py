"""The static HTML that a live output carries for readers without a kernel.

JupyterLab without a kernel, nbviewer and GitHub cannot run the widget; they show
this instead. Every value is escaped: the snapshot is text, never markup from the
store, and it holds nothing but the query's title and result, and a line saying how to
bring the live view back.

Front ends sanitize an untrusted output (no `<style>`, no script), so everything here is
inert HTML with inline styles, and whatever must go away while the live view shows is
inside the snapshot's element, which the live view hides (js/snapshot.ts).
"""

from __future__ import annotations

import datetime
import json
from html import escape

from rxnb.reactive import JSONValue
from rxnb.widgets._payload import Payload

MAX_ROWS = 100
"""Rows a snapshot shows; the rest are counted, so a saved notebook stays small."""

MAX_TEXT = 20_000

RECONNECT = "live view: run this cell to reconnect"
"""The snapshot's last line. In JupyterLab and Notebook 7 it stands just above what the
widget output shows without its live view ("Loading widget..." with no kernel, "Error
displaying widget: model not found" with a new one), and goes away with the snapshot
when the live view is back."""

_QUIET = "font-size:11px;color:#777"

_CELL = "padding:2px 8px;border-bottom:1px solid #ddd;text-align:left;vertical-align:top"


def snapshot_html(payload: Payload, version: int, snapshot_id: str = "") -> str:
    """`payload` as self-contained, inert HTML (`snapshot_id` lets live views hide it)."""
    at = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    parts = [
        f'<div class="rxnb-snapshot {escape(snapshot_id)}" data-version="{version}">',
        f'<div style="{_QUIET};margin-bottom:4px">',
        f"{escape(payload.title)} · {_summary(payload)} · snapshot of {at}</div>",
    ]
    if payload.error is not None:
        parts.append(
            '<div style="color:#b00020">'
            f"<b>{escape(payload.error['type'])}</b>: {escape(payload.error['message'])}</div>"
        )
    parts.append(_body(payload))
    parts.append(f'<div class="rxnb-snapshot-reconnect" style="{_QUIET};margin-top:4px">')
    parts.append(f"{RECONNECT}</div></div>")
    return "".join(parts)


def _summary(payload: Payload) -> str:
    if payload.kind == "table":
        return f"{len(payload.rows)} row{'' if len(payload.rows) == 1 else 's'}"
    return payload.kind


def _hidden(payload: Payload) -> frozenset[str]:
    """The columns the view does not show (its `hidden` field; docs/widget-protocol.md)."""
    hidden = dict(payload.view).get("hidden")
    if not isinstance(hidden, list):
        return frozenset()
    return frozenset(name for name in hidden if isinstance(name, str))


def _body(payload: Payload) -> str:
    if payload.kind == "table":
        hidden = _hidden(payload)
        shown = [i for i, name in enumerate(payload.columns) if name not in hidden]
        head = "".join(f'<th style="{_CELL}">{escape(payload.columns[i])}</th>' for i in shown)
        body = "".join(
            "<tr>"
            + "".join(f'<td style="{_CELL}">{escape(_text(row[i]))}</td>' for i in shown)
            + "</tr>"
            for row in payload.rows[:MAX_ROWS]
        )
        more = len(payload.rows) - MAX_ROWS
        note = f'<div style="color:#777">… {more} more rows</div>' if more > 0 else ""
        return (
            '<table style="border-collapse:collapse;font-size:12px">'
            f"<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>{note}"
        )
    if payload.kind == "markdown":
        text = payload.text
        cut = "…" if len(text) > MAX_TEXT else ""
        return f'<pre style="white-space:pre-wrap">{escape(text[:MAX_TEXT])}{cut}</pre>'
    if payload.kind == "value":
        return f'<div style="font-size:16px">{escape(_text(payload.value))}</div>'
    text = json.dumps(payload.value, indent=2, default=str)
    return f"<pre>{escape(text[:MAX_TEXT])}</pre>"


def _text(value: JSONValue) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return str(value)
    return json.dumps(value, default=str)


def plain_text(payload: Payload) -> str:
    """The `text/plain` form: one line for terminals and plain viewers."""
    return f"<rxnb live {payload.title}: {_summary(payload)}>"

"""The static HTML that a live output carries for readers without a kernel.

JupyterLab without a kernel, nbviewer, GitHub and nbconvert cannot run the widget; they
show this instead, as a person reads the live view: markdown rendered, a chat as its
messages, times and durations as times. Every value is escaped or rendered as inert
markdown (no raw HTML passes, no image loads, links only to http(s) and mail): the
snapshot never carries markup from the store, and it holds nothing but the query's
title and result, and a line saying how to bring the live view back.

Front ends sanitize an untrusted output (no `<style>`, no script), so everything here is
inert HTML with inline styles, and whatever must go away while the live view shows is
inside the snapshot's element, which the live view hides (js/snapshot.ts).
"""

from __future__ import annotations

import datetime
import json
from collections.abc import Sequence
from html import escape
from typing import Any

from markdown_it import MarkdownIt

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


def _markdown(text: str) -> str:
    """Untrusted markdown as inert HTML: raw HTML is escaped, an image is not loaded (it
    shows as a link to it), and links keep only http(s) and mailto targets."""
    return str(_MD.render(text))


def _safe_link(url: str) -> bool:
    return url.strip().lower().startswith(("http://", "https://", "mailto:"))


_MD = MarkdownIt("commonmark", {"html": False}).disable("image")
_MD.validateLink = _safe_link  # type: ignore[method-assign]


def _cell(value: JSONValue, form: Any) -> str:
    """One table cell as the live view's `formats` show it (js/formats.ts)."""
    if form == "time" and isinstance(value, int | float) and not isinstance(value, bool):
        try:
            at = datetime.datetime.fromtimestamp(value, datetime.timezone.utc)
        except (OverflowError, OSError, ValueError):  # not a time after all: as it is
            return _text(value)
        return at.strftime("%Y-%m-%d %H:%M:%S UTC")
    if form == "elapsed" and isinstance(value, list) and len(value) == 2:
        start, end = value
        if isinstance(start, int | float) and isinstance(end, int | float):
            return f"{end - start:.1f} s"
        return "—" if start is None else "running"
    return _text(value)


def _chat(payload: Payload, chat: dict[str, Any]) -> str:
    """A chat's rows as its messages: who, status, and the text as markdown."""
    index = {name: i for i, name in enumerate(payload.columns)}

    def column(row: Sequence[JSONValue], key: str) -> JSONValue:
        name = chat.get(key)
        return row[index[name]] if isinstance(name, str) and name in index else None

    parts = []
    for row in payload.rows[-MAX_ROWS:]:
        role, status, text = column(row, "role"), column(row, "status"), column(row, "text")
        head = escape(str(role or ""))
        if status not in (None, "done"):
            head += f" · {escape(str(status))}"
        body = _markdown(text if isinstance(text, str) else _text(text))
        parts.append(
            f'<div style="margin:6px 0"><div style="{_QUIET}">{head}</div>'
            f'<div style="margin-top:2px">{body}</div></div>'
        )
    more = len(payload.rows) - MAX_ROWS
    note = f'<div style="color:#777">… {more} earlier messages</div>' if more > 0 else ""
    return note + "".join(parts)


def _body(payload: Payload) -> str:
    view = dict(payload.view)
    if payload.kind == "table" and isinstance(view.get("chat"), dict):
        return _chat(payload, view["chat"])
    if payload.kind == "table":
        hidden = _hidden(payload)
        given = view.get("formats")
        formats: dict[str, Any] = given if isinstance(given, dict) else {}
        shown = [i for i, name in enumerate(payload.columns) if name not in hidden]
        forms = {i: formats.get(payload.columns[i]) for i in shown}
        head = "".join(f'<th style="{_CELL}">{escape(payload.columns[i])}</th>' for i in shown)
        body = "".join(
            "<tr>"
            + "".join(f'<td style="{_CELL}">{escape(_cell(row[i], forms[i]))}</td>' for i in shown)
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
        cut = "\n\n…" if len(text) > MAX_TEXT else ""
        return f"<div>{_markdown(text[:MAX_TEXT] + cut)}</div>"
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

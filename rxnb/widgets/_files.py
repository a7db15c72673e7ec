"""Files shown in widgets: what a view may fetch of a stored file, and how.

A live table of a query declared to return `rx.File` rows, or rows of a class with
`rx.FileRef` fields, shows those columns in the `file` format; a chat given `files=`
(the column of each message that names its files: a file id, or a list of them) shows
them under each message. Either view calls `FILE` with `{"id": ..., "download":
bool}`. The call is answered only for a file that a row the view currently shows
names (a view cannot read any other file of the store), with the file's name, size,
content type and, for an image of a kind that cannot carry script (png, jpeg, gif,
webp: not svg), or for a download the reader asked for, its bytes as base64.
Anything else the view shows as a link whose bytes come only when clicked, saved as
a download, never opened in the page.
"""

from __future__ import annotations

import base64
import json
import typing
from collections import abc
from collections.abc import Iterable
from dataclasses import replace
from typing import Any, Final

import sqlalchemy as sa

from rxnb.errors import ArgumentError
from rxnb.execution import files
from rxnb.reactive import JSONValue, Store
from rxnb.widgets._payload import Payload

FILE: Final = "file"
"""The name of the call a view makes for a file's metadata and bytes."""
IMAGES: Final = frozenset({"image/png", "image/jpeg", "image/gif", "image/webp"})
"""Content types shown as images: raster formats only (an SVG can carry script)."""
MAX_INLINE: Final = 8 * 1024 * 1024
"""The largest image sent to be shown in the page."""
MAX_DOWNLOAD: Final = 32 * 1024 * 1024
"""The largest file sent through the widget for a download."""


def file_ids(value: Any) -> list[str]:
    """The file ids a cell names: one id, a list of ids, or JSON text of a list."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError:
                return []
        else:
            return [text] if text else []
    if isinstance(value, list):
        return [v for v in value if isinstance(v, str) and v]
    return []


def shown_ids(columns: Iterable[str], rows: Iterable[Iterable[Any]], column: str) -> set[str]:
    """Every file id the rows name in `column`."""
    names = list(columns)
    if column not in names:
        return set()
    at = names.index(column)
    found: set[str] = set()
    for row in rows:
        cells = list(row)
        if at < len(cells):
            found.update(file_ids(cells[at]))
    return found


def answer(store: Store, allowed: set[str], args: dict[str, Any]) -> JSONValue:
    """The reply to a view's `FILE` call (ArgumentError for a file it does not show)."""
    file_id, download = args.get("id"), args.get("download", False)
    if set(args) - {"id", "download"} or not isinstance(file_id, str):
        raise ArgumentError(f"a view's {FILE} call takes id= and download=, not {args!r}")
    if not isinstance(download, bool):
        raise ArgumentError(f"a view's {FILE} call takes download=true or false, not {download!r}")
    if file_id not in allowed:
        raise ArgumentError(f"file {file_id!r} is not shown in this view")
    stored = files.get(file_id, store=store)
    image = stored.content_type in IMAGES
    send = (image and stored.size <= MAX_INLINE) or (download and stored.size <= MAX_DOWNLOAD)
    if download and stored.size > MAX_DOWNLOAD:
        raise ArgumentError(
            f"{stored.name!r} is {stored.size} bytes, more than a widget sends "
            f"({MAX_DOWNLOAD}); save it from the notebook: rx.files.get({file_id!r}).save(path)"
        )
    data = base64.b64encode(stored.read(store)).decode("ascii") if send else None
    return {
        "id": stored.id,
        "name": stored.name,
        "content_type": stored.content_type,
        "size": stored.size,
        "image": image,
        "data": data,
    }


def model_file_columns(cls: Any) -> tuple[str, ...]:
    """The fields of a table class that name files: `id` of `rx.File`, else its
    `rx.FileRef` columns (by field name, as rows reach the payload)."""
    if isinstance(cls, type) and issubclass(cls, files.File):
        return ("id",)
    table = getattr(cls, "__table__", None)
    mapper = sa.inspect(cls, raiseerr=False)
    if not isinstance(table, sa.Table) or not isinstance(mapper, sa.orm.Mapper):
        return ()
    return tuple(
        mapper.get_property_by_column(c).key
        for c in table.columns
        if isinstance(c.type, files.FileRef)
    )


def declared_file_columns(query: Any) -> tuple[str, ...]:
    """The file columns of the rows a query's return annotation declares
    (`-> list[rx.File]`, `-> list[Message]` whose class has `rx.FileRef` fields)."""
    fn = getattr(query, "fn", None)
    if fn is None:
        return ()
    try:
        returned = typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that does not resolve: no files shown
        return ()
    origin, args = typing.get_origin(returned), typing.get_args(returned)
    if origin in (list, tuple, abc.Sequence) and args and isinstance(args[0], type):
        return model_file_columns(args[0])
    return ()


def with_file_formats(payload: Payload, columns: tuple[str, ...]) -> Payload:
    """A table payload whose file columns read in the `file` format."""
    present = [c for c in columns if c in payload.columns]
    if payload.kind != "table" or not present:
        return payload
    view = dict(payload.view)
    found = view.get("formats")
    formats: dict[str, JSONValue] = dict(found) if isinstance(found, dict) else {}
    for column in present:
        formats.setdefault(column, FILE)
    view["formats"] = formats
    return replace(payload, view=tuple(sorted(view.items())))


def answer_shown(store: Store, payload: Payload, columns: tuple[str, ...], args: Any) -> JSONValue:
    """`answer` for a view showing `payload`, whose `columns` name files."""
    allowed: set[str] = set()
    for column in columns:
        allowed |= shown_ids(payload.columns, payload.rows, column)
    return answer(store, allowed, args)

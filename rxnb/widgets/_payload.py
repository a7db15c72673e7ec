"""Query results as widget payloads, and the smallest message from one payload to the next.

The shapes are those of `docs/widget-protocol.md`. A payload is built on the reactor
thread from the raw result (which knows primary keys) and its JSON form (which the
subscription has computed already); messages are built on the dispatcher thread.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import sqlalchemy as sa

from rxnb.reactive import JSONValue

Kind = Literal["table", "markdown", "value", "json"]


@dataclass(frozen=True)
class Payload:
    """One result as the browser sees it (without its version, which the sender adds)."""

    title: str
    kind: Kind
    error: dict[str, str] | None = None
    columns: tuple[str, ...] = ()
    key: tuple[int, ...] | None = None
    rows: tuple[tuple[JSONValue, ...], ...] = ()
    text: str = ""
    value: JSONValue = None
    view: tuple[tuple[str, JSONValue], ...] = ()
    """Extra view fields (`actions`, `formats`: see docs/widget-protocol.md)."""
    _keys: tuple[Any, ...] | None = field(default=None, compare=False, repr=False)

    def to_json(self, version: int) -> dict[str, JSONValue]:
        return {
            "version": version,
            "title": self.title,
            "kind": self.kind,
            "error": self.error,
            "columns": list(self.columns),
            "key": None if self.key is None else list(self.key),
            "rows": [list(row) for row in self.rows],
            "text": self.text,
            "value": self.value,
            **dict(self.view),
        }

    def with_error(self, error: BaseException) -> Payload:
        """This payload's data, shown under `error`."""
        return replace(self, error={"type": type(error).__name__, "message": str(error)})

    def row_keys(self) -> tuple[Any, ...] | None:
        """Each row's key, hashable, or None when rows have no usable identity."""
        return self._keys


def empty(title: str) -> Payload:
    """What a widget shows before its query has run."""
    return Payload(title=title, kind="value")


def encode(title: str, result: Any, data: JSONValue) -> Payload:
    """`result` (as returned by the query) and `data` (its JSON form) as a payload."""
    if isinstance(data, str):
        return Payload(title=title, kind="markdown", text=data)
    if data is None or isinstance(data, bool | int | float):
        return Payload(title=title, kind="value", value=data)
    if isinstance(data, list):
        if all(isinstance(item, dict) for item in data):
            return _table(title, _items(result), data)
        if all(not isinstance(item, dict | list) for item in data):
            return _finish(
                Payload(
                    title=title, kind="table", columns=("value",), rows=tuple((v,) for v in data)
                )
            )
    return Payload(title=title, kind="json", value=data)


def _items(result: Any) -> Sequence[Any]:
    if isinstance(result, list | tuple):
        return result
    return ()


def _table(title: str, items: Sequence[Any], data: list[dict[str, JSONValue]]) -> Payload:
    columns: dict[str, None] = dict.fromkeys(_declared_fields(items))
    for row in data:
        columns.update(dict.fromkeys(row))
    names = tuple(c for c in columns if any(c in row for row in data))
    rows = tuple(tuple(row.get(name) for name in names) for row in data)
    key_names = _primary_key(items, names)
    key = tuple(names.index(name) for name in key_names) if key_names else None
    return _finish(Payload(title=title, kind="table", columns=names, key=key, rows=rows))


def _declared_fields(items: Sequence[Any]) -> list[str]:
    """A model class's fields in the order the class declares them."""
    classes = {type(item) for item in items}
    if len(classes) == 1:
        fields = getattr(next(iter(classes)), "model_fields", None)
        if isinstance(fields, dict):
            return list(fields)
    return []


def _primary_key(items: Sequence[Any], names: tuple[str, ...]) -> tuple[str, ...]:
    """The mapped class's primary key when every item is one class's row, else `id`."""
    classes = {type(item) for item in items}
    if len(classes) == 1:
        mapper = sa.inspect(next(iter(classes)), raiseerr=False)
        if isinstance(mapper, sa.orm.Mapper):
            keys = tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)
            if all(k in names for k in keys):
                return keys
    return ("id",) if "id" in names else ()


def keyed(payload: Payload, names: Sequence[str]) -> Payload:
    """A table payload keyed by the columns `names` (when it has them all): for rows
    that came as dicts of a model whose key is not `id`."""
    if payload.kind != "table" or not names or not all(n in payload.columns for n in names):
        return payload
    key = tuple(payload.columns.index(n) for n in names)
    return payload if key == payload.key else _finish(replace(payload, key=key, _keys=None))


def _finish(payload: Payload) -> Payload:
    """Attach row keys when the key columns identify every row (unique, hashable)."""
    if payload.key is None:
        return payload
    try:
        keys = tuple(tuple(row[i] for i in payload.key) for row in payload.rows)
        unique = len(set(keys)) == len(keys)
    except TypeError:  # a key value that is a list or dict
        unique = False
    if not unique:
        return replace(payload, key=None)
    return replace(payload, _keys=keys)


Message = dict[str, JSONValue]


def full(payload: Payload, version: int) -> Message:
    return {"type": "full", "payload": payload.to_json(version)}


def current(version: int) -> Message:
    """The answer to a `resync` from a page that holds `version`, the last one sent."""
    return {"type": "current", "version": version}


def message(old: Payload | None, new: Payload, version: int) -> Message:
    """The message that takes a browser holding `old` (at `version - 1`) to `new`.

    1. Kind, title, columns, key, error or view changed, or no old payload: `full`.
    2. Markdown that only grew: `append` of the new text.
    3. Keyed rows: `diff` (removed, changed, appended, inserted) when replaying it gives
       the new order exactly and it touches fewer rows than the new result has; else
       `full`. A changed row is sent as the text `appended` to its strings that only
       grew plus its other changed `cells`, or whole (`changed`) when no string grew
       and most of its cells changed.
    4. Everything else: `full`.
    """
    base = version - 1
    if old is None or (old.kind, old.title, old.columns, old.key, old.error, old.view) != (
        new.kind,
        new.title,
        new.columns,
        new.key,
        new.error,
        new.view,
    ):
        return full(new, version)  # rule 1
    if new.kind == "markdown" and new.text.startswith(old.text):
        return {
            "type": "append",
            "base": base,
            "version": version,
            "text": new.text[len(old.text) :],
        }  # rule 2
    old_keys, new_keys = old.row_keys(), new.row_keys()
    if new.kind == "table" and old_keys is not None and new_keys is not None:
        diff = _diff(old, old_keys, new, new_keys)  # rule 3
        if diff is not None:
            diff.update(type="diff", base=base, version=version)
            # Appended text is always smaller than its row sent whole.
            entries = sum(len(diff.get(part, ())) for part in ("removed", "changed", "inserted"))
            if entries == 0 or entries < len(new.rows):
                return diff
    return full(new, version)  # rule 4


def _diff(
    old: Payload, old_keys: tuple[Any, ...], new: Payload, new_keys: tuple[Any, ...]
) -> Message | None:
    old_rows = dict(zip(old_keys, old.rows, strict=True))
    new_set = set(new_keys)
    removed = [k for k in old_keys if k not in new_set]
    changed: list[list[JSONValue]] = []
    appended: list[list[JSONValue]] = []
    cells: list[list[JSONValue]] = []
    for k, row in zip(new_keys, new.rows, strict=True):
        before = old_rows.get(k)
        if before is None or before == row:
            continue
        grown, others = _grown(before, row)
        if not grown and len(others) * 2 > len(row):  # most of the row: send it whole
            changed.append(list(row))
            continue
        appended.extend([list(k), i, text] for i, text in grown)
        cells.extend([list(k), i, value] for i, value in others)
    inserted = [
        (i, k, row)
        for i, (k, row) in enumerate(zip(new_keys, new.rows, strict=True))
        if k not in old_rows
    ]
    replay = [k for k in old_keys if k in new_set]
    for index, k, _ in inserted:
        replay.insert(index, k)
    if replay != list(new_keys):
        return None  # existing rows moved: a diff cannot say that
    diff: Message = {}
    if removed:  # empty lists are left out: appends stay small
        diff["removed"] = [list(k) for k in removed]
    if changed:
        diff["changed"] = changed
    if appended:
        diff["appended"] = appended
    if cells:
        diff["cells"] = cells
    if inserted:
        diff["inserted"] = [[index, list(row)] for index, _, row in inserted]
    return diff


def _grown(
    old: tuple[JSONValue, ...], new: tuple[JSONValue, ...]
) -> tuple[list[tuple[int, str]], list[tuple[int, JSONValue]]]:
    """The cells that differ: (strings that only grew, with the text added; the others)."""
    grown: list[tuple[int, str]] = []
    others: list[tuple[int, JSONValue]] = []
    for i, (a, b) in enumerate(zip(old, new, strict=True)):
        if a == b:
            continue
        if isinstance(a, str) and isinstance(b, str) and b.startswith(a):
            grown.append((i, b[len(a) :]))
        else:
            others.append((i, b))
    return grown, others

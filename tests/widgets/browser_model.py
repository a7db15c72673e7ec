"""What the browser does with the widget protocol's messages (docs/widget-protocol.md),
in Python, so kernel-side tests can check that messages rebuild the result exactly.
The JS implementation has its own tests (js/*.test.ts) against the same document."""

from __future__ import annotations

import copy
import json
from typing import Any


class BrowserModel:
    def __init__(self, payload: dict[str, Any]) -> None:
        self.payload = copy.deepcopy(payload)
        self.resyncs = 0
        self.applied = 0

    def key(self, row: list[Any]) -> str:
        return json.dumps([row[i] for i in self.payload["key"]])

    def apply(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "full":
            if message["payload"]["version"] >= self.payload["version"]:
                self.payload = copy.deepcopy(message["payload"])
            return
        if kind in ("reply", "current"):
            return
        if message["version"] <= self.payload["version"]:
            return  # stale
        if message["base"] != self.payload["version"]:
            self.resyncs += 1
            return
        if kind == "append":
            self.payload["text"] += message["text"]
        elif kind == "diff":
            removed = {json.dumps(k) for k in message.get("removed", [])}
            rows = [r for r in self.payload["rows"] if self.key(r) not in removed]
            changed = {self.key(r): r for r in message.get("changed", [])}
            rows = [changed.get(self.key(r), r) for r in rows]
            for keyvals, column, text in message.get("appended", []):
                (index,) = [i for i, r in enumerate(rows) if self.key(r) == json.dumps(keyvals)]
                assert isinstance(rows[index][column], str), message
                rows[index] = [
                    *rows[index][:column],
                    rows[index][column] + text,
                    *rows[index][column + 1 :],
                ]
            for keyvals, column, value in message.get("cells", []):
                (index,) = [i for i, r in enumerate(rows) if self.key(r) == json.dumps(keyvals)]
                rows[index] = [*rows[index][:column], value, *rows[index][column + 1 :]]
            for index, row in message.get("inserted", []):
                rows.insert(index, row)
            self.payload["rows"] = rows
        else:
            raise AssertionError(f"unknown message {message!r}")
        self.payload["version"] = message["version"]
        self.applied += 1

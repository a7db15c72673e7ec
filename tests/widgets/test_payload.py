"""Results as payloads, and the messages between two payloads (docs/widget-protocol.md)."""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any

import pandas as pd
import pytest
from browser_model import BrowserModel
from models import Message

from rxnb.reactive import to_jsonable
from rxnb.widgets import encode, message
from rxnb.widgets._payload import full


@dataclass
class EncodeCase:
    name: str
    result: Any
    kind: str
    columns: list[str] | None = None
    key: list[int] | None = None


ENCODE_CASES = [
    EncodeCase(
        "models are a table keyed by their primary key, in declared field order",
        [Message(id=2, thread_id="t", content="b"), Message(id=1, thread_id="t")],
        "table",
        ["id", "thread_id", "role", "content"],
        [0],
    ),
    EncodeCase(
        "dicts with a unique id",
        [{"name": "a", "id": 1}, {"name": "b", "id": 2}],
        "table",
        ["name", "id"],
        [1],
    ),
    EncodeCase(
        "dicts with a repeated id have no key", [{"id": 1}, {"id": 1}], "table", ["id"], None
    ),
    EncodeCase("dicts without id", [{"a": 1}, {"b": 2}], "table", ["a", "b"], None),
    EncodeCase("a list of scalars", [3, 1, 2], "table", ["value"], None),
    EncodeCase("a DataFrame", pd.DataFrame({"x": [1, 2], "id": [5, 6]}), "table", ["x", "id"], [1]),
    EncodeCase("a string is markdown", "# hi", "markdown"),
    EncodeCase("a number", 3.5, "value"),
    EncodeCase("None", None, "value"),
    EncodeCase("a bool", True, "value"),
    EncodeCase("a dict", {"a": [1, 2]}, "json"),
    EncodeCase("a single model", Message(id=1, thread_id="t"), "json"),
    EncodeCase("nested lists", [[1, 2], [3]], "json"),
]


@pytest.mark.parametrize("case", ENCODE_CASES, ids=[c.name for c in ENCODE_CASES])
def test_encode(case: EncodeCase) -> None:
    payload = encode("q()", case.result, to_jsonable(case.result, where="q"))
    data = payload.to_json(1)
    assert data["kind"] == case.kind
    if case.columns is not None:
        assert data["columns"] == case.columns
        assert data["key"] == case.key
        assert len(data["rows"]) == len(case.result)


def table(rows: list[tuple[int, str]]) -> Any:
    data = [{"id": k, "v": v} for k, v in rows]
    return encode("q()", data, data)


def test_appending_a_row_is_one_insert() -> None:
    msg = message(table([(1, "a")]), table([(1, "a"), (2, "b")]), 2)
    assert msg == {"type": "diff", "base": 1, "version": 2, "inserted": [[1, [2, "b"]]]}


def test_change_and_remove_in_one_diff() -> None:
    rest = [(k, "z") for k in range(10, 20)]
    msg = message(
        table([(1, "a"), (2, "b"), (3, "c"), *rest]),
        table([(1, "A"), (3, "c"), (4, "d"), *rest]),
        5,
    )
    assert msg["type"] == "diff"
    assert msg["removed"] == [[2]]
    assert msg["cells"] == [[[1], 1, "A"]]  # one cell of the row, not the row
    assert msg["inserted"] == [[2, [4, "d"]]]


def test_a_diff_larger_than_the_result_is_sent_whole() -> None:
    assert message(table([(1, "a"), (2, "b")]), table([(3, "c"), (4, "d")]), 2)["type"] == "full"


def test_text_that_only_grows_is_sent_as_appended_text() -> None:
    msg = message(table([(1, "hi"), (2, "Hel")]), table([(1, "hi"), (2, "Hello")]), 4)
    assert msg == {"type": "diff", "base": 3, "version": 4, "appended": [[[2], 1, "lo"]]}
    one = message(table([(2, "Hel")]), table([(2, "Hello")]), 2)  # even the only row
    assert one["appended"] == [[[2], 1, "lo"]]
    shrunk = message(table([(1, "hi"), (2, "Hello")]), table([(1, "hi"), (2, "Help")]), 5)
    assert shrunk["cells"] == [[[2], 1, "Help"]]  # one cell of two: not the whole row
    assert "appended" not in shrunk and "changed" not in shrunk


def test_a_row_whose_text_grew_sends_its_other_changed_cells_beside_the_text() -> None:
    def chat(text: str, status: str) -> Any:
        data = [
            {"id": 1, "content": "q", "status": "done"},
            {"id": 2, "content": text, "status": status},
        ]
        return encode("q()", data, data)

    msg = message(chat("Hel", "streaming"), chat("Hello", "done"), 3)
    assert msg == {
        "type": "diff",
        "base": 2,
        "version": 3,
        "appended": [[[2], 1, "lo"]],
        "cells": [[[2], 2, "done"]],
    }
    browser = BrowserModel(full(chat("Hel", "streaming"), 2)["payload"])
    browser.apply(msg)
    assert browser.payload == full(chat("Hello", "done"), 3)["payload"]
    # Cancelled with no new text: the status alone, not the text again.
    stopped = message(chat("Hello", "streaming"), chat("Hello", "cancelled"), 4)
    assert stopped == {"type": "diff", "base": 3, "version": 4, "cells": [[[2], 2, "cancelled"]]}


def test_rows_that_move_send_the_whole_result() -> None:
    msg = message(table([(1, "a"), (2, "b"), (3, "c")]), table([(2, "b"), (1, "a"), (3, "c")]), 2)
    assert msg["type"] == "full"


def test_markdown_that_grows_is_appended_and_otherwise_replaced() -> None:
    a, b, c = (encode("q()", t, t) for t in ("Hello", "Hello, world", "Bye"))
    assert message(a, b, 2) == {"type": "append", "base": 1, "version": 2, "text": ", world"}
    assert message(b, c, 3)["type"] == "full"


def test_an_error_keeps_the_data_and_sends_it_whole() -> None:
    before = table([(1, "a")])
    failing = before.with_error(ZeroDivisionError("division by zero"))
    msg = message(before, failing, 2)
    assert msg["type"] == "full"
    assert msg["payload"]["error"] == {"type": "ZeroDivisionError", "message": "division by zero"}
    assert msg["payload"]["rows"] == [[1, "a"]]
    assert message(failing, table([(1, "a")]), 3)["payload"]["error"] is None


def test_random_histories_rebuild_exactly() -> None:
    """Any sequence of results, sent as messages, rebuilds each result in the browser."""
    rng = random.Random(7)
    for _ in range(200):
        rows: list[tuple[int, str]] = []
        old = table(rows)
        browser = BrowserModel(full(old, 1)["payload"])
        next_id = 1
        for version in range(2, 30):
            for _ in range(rng.randint(0, 4)):
                op = rng.random()
                if op < 0.5 or not rows:
                    rows.insert(rng.randint(0, len(rows)), (next_id, "x"))
                    next_id += 1
                elif op < 0.75:
                    del rows[rng.randrange(len(rows))]
                elif op < 0.85:
                    i = rng.randrange(len(rows))
                    rows[i] = (rows[i][0], rng.choice("abc"))
                elif op < 0.95:  # streaming text: the cell only grows
                    i = rng.randrange(len(rows))
                    rows[i] = (rows[i][0], rows[i][1] + rng.choice(["y", " z", "é\n"]))
                else:
                    rng.shuffle(rows)
            new = table(rows)
            browser.apply(message(old, new, version))
            assert browser.payload == full(new, version)["payload"]
            old = new
        assert browser.resyncs == 0

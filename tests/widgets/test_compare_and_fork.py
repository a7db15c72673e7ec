"""`rx.widgets.compare(a, b)` marks two runs' differences, live and in its snapshot;
`rx.widgets.timeline(fork=True)` binds one function, `fork`, that forks a run."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from polling import until
from recording_comm import Comms

import rxnb as rx

GATE = threading.Event()


def echo(value: Any) -> Any:
    return value


def held(value: Any) -> Any:
    GATE.wait(10)
    return value


@rx.workflow
def story(ctx: rx.WorkflowContext, middle: str, steps: int = 3) -> str:
    parts = [ctx.step(echo, "intro"), ctx.step(echo, middle)]
    parts += [ctx.step(held, f"part {i}") for i in range(2, steps)]
    return " / ".join(parts)


def rows(payload: dict[str, Any]) -> list[dict[str, Any]]:
    return [dict(zip(payload["columns"], r, strict=True)) for r in payload["rows"]]


def marks(payload: dict[str, Any]) -> list[tuple[Any, str]]:
    return [(row["step"], row["diff"]) for row in rows(payload)]


def test_compare_marks_the_changed_step_live_and_in_its_snapshot(
    store: rx.Store, comms: Comms
) -> None:
    GATE.set()
    source = story.start(middle="<b>plain</b>")
    source.result(timeout=10)
    GATE.clear()
    fork = rx.fork(source.id, from_step=1, middle="twist", steps=4)
    widget = rx.widgets.compare(source, fork.id)
    until(lambda: len(rows(widget.data)) == 4 and rows(widget.data)[1]["b"] == '"twist"')
    assert widget.functions == []  # a view only: nothing to call
    assert marks(widget.data) == [
        (0, "same"),
        (1, "changed"),
        (2, "only in a"),
        ("result", "changed"),
    ]
    changed = rows(widget.data)[1]
    assert (changed["name"], changed["a"], changed["b"]) == ("echo", '"<b>plain</b>"', '"twist"')
    assert widget.data["formats"]["diff"] == "status"

    GATE.set()  # the fork goes on: its column fills in as it journals
    fork.result(timeout=10)
    until(lambda: len(rows(widget.data)) == 5)
    assert marks(widget.data) == [
        (0, "same"),
        (1, "changed"),
        (2, "same"),
        (3, "only in b"),
        ("result", "changed"),
    ]
    rx.widgets.settle(timeout=10)
    html = widget.snapshot()
    assert html.count(">changed<") == 2 and html.count(">same<") == 2
    assert ">only in b<" in html
    assert "&lt;b&gt;plain&lt;/b&gt;" in html and "<b>plain" not in html


def test_compare_says_what_to_pass(store: rx.Store) -> None:
    GATE.set()
    source = story.start(middle="m")
    source.result(timeout=10)
    with pytest.raises(rx.RunError, match=r"give two run ids \(or run handles\), not None"):
        rx.widgets.compare(None, "x")
    with pytest.raises(rx.RunNotFoundError, match=r"no run has id 'x'; pass the ids"):
        rx.widgets.compare(source.id, "x")


def call(comms: Comms, widget: Any, call_id: int, fn: str, **args: Any) -> dict[str, Any]:
    comms.receive(widget, {"type": "call", "id": call_id, "fn": fn, "args": args})
    return until(
        lambda: next(
            (m for m in comms.custom() if m.get("type") == "reply" and m.get("id") == call_id),
            None,
        )
    )


def test_the_timeline_fork_button_forks_through_its_one_bound_function(
    store: rx.Store, comms: Comms, caplog: pytest.LogCaptureFixture
) -> None:
    GATE.set()
    source = story.start(middle="m")
    source.result(timeout=10)
    plain = rx.widgets.timeline(source.id)
    assert plain.functions == []
    widget = rx.widgets.timeline(source.id, fork=True)
    assert widget.functions == ["fork"]

    reply = call(comms, widget, 1, "fork", run_id=source.id, from_step=2)
    assert reply["ok"] is True
    fork = rx.RunHandle(reply["result"], store)
    assert fork.result(timeout=10) == "intro / m / part 2"
    assert fork.run().forked_from == source.id

    refused = call(comms, widget, 2, "fork", run_id=source.id, from_step=7)
    assert refused["ok"] is False
    assert refused["error"]["type"] == "WorkflowError"
    assert "fork from_step <= 3" in refused["error"]["message"]
    with caplog.at_level(logging.WARNING, logger="rxnb.widgets"):
        comms.receive(widget, {"type": "call", "id": 3, "fn": "cancel", "args": {}})
    assert "dropped a message its view does not define" in caplog.text  # not bound

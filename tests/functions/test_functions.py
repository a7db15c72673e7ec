"""@rx.query and @rx.mutation: arguments, results, transactions, re-definition."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any

import pytest
from models import Message, messages, send
from sqlmodel import select

import rxnb as rx
from rxnb.reactive import open_stores


@dataclass(frozen=True)
class BadCall:
    name: str
    args: dict[str, Any]
    says: tuple[str, ...]


BAD_CALLS = [
    BadCall("wrong type", {"thread_id": 5, "text": "x"}, ("thread_id", "5", "str")),
    BadCall("missing", {"thread_id": "t"}, ("text", "missing")),
    BadCall("unexpected", {"thread_id": "t", "text": "x", "colour": "red"}, ("colour",)),
    BadCall("none for str", {"thread_id": None, "text": "x"}, ("thread_id", "None")),
]


@pytest.mark.parametrize("case", BAD_CALLS, ids=lambda c: c.name)
def test_bad_arguments_raise_before_anything_runs(store: rx.Store, case: BadCall) -> None:
    with pytest.raises(rx.ArgumentError) as info:
        send(**case.args)
    for word in case.says:
        assert word in str(info.value)
    assert store.call(messages, thread_id="t") == []
    with pytest.raises(rx.ArgumentError):
        store.subscribe(messages, {"thread_id": 3})


def test_positional_arguments_and_defaults(store: rx.Store) -> None:
    @rx.query
    def page(db: rx.Reader, thread_id: str, limit: int = 2) -> list[str]:
        rows = db.exec(select(Message).where(Message.thread_id == thread_id).limit(limit))
        return [m.content for m in rows]

    for i in range(3):
        send("p", str(i))
    assert page("p") == ["0", "1"]
    assert page(thread_id="p", limit="3") == ["0", "1", "2"]  # lax: "3" is an int


def test_mutation_that_raises_leaves_nothing_written(store: rx.Store) -> None:
    send(thread_id="r", text="keep")

    @rx.mutation
    def half(db: rx.Writer) -> None:
        row = db.exec(select(Message).where(Message.thread_id == "r")).one()
        row.content = "changed"
        db.add(Message(thread_id="r", content="new"))
        db.flush()
        raise ValueError("midway")

    with pytest.raises(ValueError, match="midway"):
        half()
    assert [m.content for m in messages(thread_id="r")] == ["keep"]


def test_nested_mutation_joins_and_rolls_back_only_its_part(store: rx.Store) -> None:
    @rx.mutation
    def inner(db: rx.Writer, fail: bool) -> None:
        db.add(Message(thread_id="n", content=f"inner fail={fail}"))
        db.flush()
        if fail:
            raise RuntimeError("inner failed")

    @rx.mutation
    def outer(db: rx.Writer) -> None:
        db.add(Message(thread_id="n", content="outer"))
        inner(fail=False)
        with pytest.raises(RuntimeError):
            inner(fail=True)

    sub = store.subscribe(messages, {"thread_id": "n"})
    outer()
    assert store.wait_idle(10)
    expected = ["outer", "inner fail=False"]
    assert [m.content for m in messages(thread_id="n")] == expected
    assert [m.content for m in sub.result] == expected


def test_queries_cannot_write(store: rx.Store) -> None:
    @rx.query
    def sneaky(db: rx.Reader) -> None:
        db.add(Message(thread_id="s", content="no"))

    @rx.query
    def calls_mutation(db: rx.Reader) -> int:
        return send(thread_id="s", text="no")

    with pytest.raises(rx.ReadOnlyError, match="mutation"):
        sneaky()
    with pytest.raises(rx.ReadOnlyError):
        calls_mutation()
    assert messages(thread_id="s") == []


def test_unserializable_result_is_a_clear_error(store: rx.Store) -> None:
    @rx.query
    def opaque(db: rx.Reader) -> object:
        return threading.Lock()

    @rx.mutation
    def opaque_write(db: rx.Writer) -> object:
        db.add(Message(thread_id="u", content="x"))
        return object()

    with pytest.raises(rx.ResultError, match="cannot serialize"):
        opaque()
    with pytest.raises(rx.ResultError):
        opaque_write()
    assert messages(thread_id="u") == []  # the failed mutation wrote nothing


def test_no_store_open_is_a_clear_error() -> None:
    for s in open_stores():
        s.close()
    with pytest.raises(rx.NoStoreError, match=r"rx\.open\(\)"):
        messages(thread_id="t")


def test_redefining_a_query_reruns_its_subscriptions(store: rx.Store) -> None:
    namespace: dict[str, Any] = {"rx": rx, "select": select, "Message": Message}
    cell = """
@rx.query
def shout(db: rx.Reader, thread_id: str) -> list[str]:
    rows = db.exec(select(Message).where(Message.thread_id == thread_id)).all()
    return [m.content{suffix} for m in rows]
"""
    namespace["__name__"] = "notebook_cell"
    exec(cell.format(suffix=""), namespace)
    send(thread_id="c", text="hi")
    seen: list[Any] = []
    sub = store.subscribe(namespace["shout"], {"thread_id": "c"}, seen.append)
    assert sub.result == ["hi"]
    for i in range(3):  # the cell is run again with new code
        exec(cell.format(suffix=f".upper() + '{'!' * (i + 1)}'"), namespace)
        assert store.wait_idle(10)
        assert sub.result == ["HI" + "!" * (i + 1)]
    assert len(store.subscriptions()) == 1


def test_failing_query_reports_and_recovers(store: rx.Store) -> None:
    @rx.query
    def first(db: rx.Reader, thread_id: str) -> str:
        rows = db.exec(select(Message).where(Message.thread_id == thread_id)).all()
        return rows[0].content

    errors: list[BaseException] = []
    sub = store.subscribe(first, {"thread_id": "e"}, on_error=errors.append)
    assert isinstance(sub.error, IndexError) and len(errors) == 1
    send(thread_id="e", text="now there is one")
    assert store.wait_idle(10)
    assert sub.error is None and sub.result == "now there is one"


def test_callback_that_raises_does_not_stop_others(
    store: rx.Store, caplog: pytest.LogCaptureFixture
) -> None:
    def bad(_: Any) -> None:
        raise RuntimeError("subscriber bug")

    good: list[Any] = []
    store.subscribe(messages, {"thread_id": "b"}, bad)
    store.subscribe(messages, {"thread_id": "b"}, good.append)
    send(thread_id="b", text="x")
    assert store.wait_idle(10)
    assert [m.content for m in good[-1]] == ["x"]
    assert "subscriber bug" in caplog.text


def test_subscription_close_stops_updates(store: rx.Store) -> None:
    seen: list[Any] = []
    with store.subscribe(messages, {"thread_id": "k"}, seen.append) as sub:
        pass
    assert sub.closed
    send(thread_id="k", text="x")
    assert store.wait_idle(10)
    assert len(seen) == 1
    assert store.subscriptions() == []


def test_callbacks_run_off_the_committing_thread(store: rx.Store) -> None:
    threads: list[str] = []
    store.subscribe(
        messages, {"thread_id": "th"}, lambda _: threads.append(threading.current_thread().name)
    )
    send(thread_id="th", text="x")
    assert store.wait_idle(10)
    assert threads and set(threads) == {"rxnb-reactor"}

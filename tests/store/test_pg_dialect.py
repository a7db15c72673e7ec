"""The PostgreSQL dialect: URLs, the change feed's holes and reconnects, lost connections."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest
import sqlalchemy as sa
from models import Message, messages, send
from pgtools import terminate_backends
from polling import until

import rxnb as rx
from rxnb.reactive import ChangeFeed
from rxnb.store import PostgresDatabase, RowWrite, Write

pytestmark = pytest.mark.postgres_only


class Seen:
    """What a change feed delivered: the contents of inserted messages, and gaps."""

    def __init__(self) -> None:
        self.contents: list[str] = []
        self.gaps: list[str] = []

    def writes(self, writes: Sequence[Write]) -> None:
        for w in writes:
            if isinstance(w, RowWrite) and w.table == Message.__tablename__ and w.new:
                self.contents.append(str(w.new["content"]))


@pytest.fixture
def databases(url: str) -> Iterator[tuple[PostgresDatabase, PostgresDatabase]]:
    """Two databases on one store, as two processes would have (two origins)."""
    first, second = PostgresDatabase(url), PostgresDatabase(url)
    yield first, second
    first.close()
    second.close()


def add(content: str) -> Any:
    return lambda db: db.add(Message(thread_id="t", content=content))


def test_url_spellings_open_one_store_and_other_drivers_are_refused(url: str) -> None:
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    with rx.open(url) as store:
        assert rx.open(plain) is store
        assert store.database.channel.startswith("rxnb_")
    with pytest.raises(rx.StoreOpenError, match=r"psycopg 3.*postgresql\+psycopg://"):
        rx.open(url.replace("postgresql+psycopg://", "postgresql+psycopg2://"))


def test_an_unreachable_server_fails_open_at_once_with_the_fix() -> None:
    started = time.monotonic()
    with pytest.raises(rx.StoreOpenError, match=r"Cannot connect to PostgreSQL.*start the server"):
        rx.open("postgresql+psycopg://postgres@127.0.0.1:1/test")
    assert time.monotonic() - started < 5  # not the reconnect budget of an open store


def test_a_missing_schema_is_named_with_the_fix(url: str) -> None:
    missing = sa.make_url(url).update_query_dict({"options": "-csearch_path=no_such_schema"})
    with pytest.raises(rx.StoreOpenError, match="create the schema first"):
        rx.open(missing.render_as_string(hide_password=False))


def test_a_commit_that_took_its_number_first_but_committed_last_is_delivered(
    databases: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    """Sequence numbers are taken before commit: "late" takes n, "early" n+1 and
    commits first; the feed, having read n+1, must still deliver n when it lands."""
    reader, writer = databases
    seen = Seen()
    feed = ChangeFeed(reader, seen.writes, seen.gaps.append)
    appended, go = threading.Event(), threading.Event()
    original = writer.append_changes

    def append_then_hold(conn: sa.Connection, rows: list[tuple[object, ...]]) -> None:
        original(conn, rows)
        if threading.current_thread().name == "late":
            appended.set()
            assert go.wait(10)

    writer.append_changes = append_then_hold  # type: ignore[method-assign]
    late = threading.Thread(target=writer.write, args=(add("late"),), name="late")
    late.start()
    assert appended.wait(10)
    writer.write(add("early"))
    until(lambda: seen.contents == ["early"], timeout=10)
    go.set()
    late.join(10)
    until(lambda: sorted(seen.contents) == ["early", "late"], timeout=10)
    feed.stop()
    assert seen.contents == ["early", "late"]  # each once
    assert seen.gaps == []


def test_the_feed_reconnects_after_its_backend_is_terminated_and_catches_up(
    databases: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    reader, writer = databases
    seen = Seen()
    feed = ChangeFeed(reader, seen.writes, seen.gaps.append)
    writer.write(add("before"))
    until(lambda: seen.contents == ["before"], timeout=10)
    assert terminate_backends() >= 1  # the feed's LISTEN connection among them
    writer.write(add("after"))  # its pooled connections were killed too: replaced
    until(lambda: seen.contents == ["before", "after"], timeout=20)
    until(lambda: len(seen.gaps) == 1, timeout=10)  # subscriptions re-run once
    assert "lost and remade" in seen.gaps[0]
    feed.stop()


def test_a_write_whose_connection_dies_midway_is_retried_and_commits_once(
    databases: tuple[PostgresDatabase, PostgresDatabase],
) -> None:
    _, writer = databases
    attempts = 0

    def dies_the_first_time(db: rx.Writer) -> None:
        nonlocal attempts
        attempts += 1
        db.add(Message(thread_id="t", content="once"))
        db.flush()
        if attempts == 1:
            db.exec(sa.text("SELECT pg_terminate_backend(pg_backend_pid())"))  # type: ignore[call-overload]

    writer.write(dies_the_first_time)
    assert attempts == 2
    rows = writer.read(lambda db: db.exec(sa.select(Message.content)).all())[0]  # type: ignore[call-overload]
    assert list(rows) == [("once",)]


def test_a_live_query_in_another_process_catches_up_after_all_backends_die(url: str) -> None:
    """A subscription here; writes from a subprocess before and after every rxnb
    backend on the server is terminated: the subscription sees both."""
    from procs import finish, python

    contents: list[list[str]] = []
    with rx.open(url) as store:
        sub = store.subscribe(
            messages,
            {"thread_id": "x"},
            lambda result: contents.append([m.content for m in result]),  # type: ignore[attr-defined]
        )
        code = """
            import sys, rxnb as rx
            from models import send
            rx.open(sys.argv[1])
            send(thread_id="x", text=sys.argv[2])
        """
        finish(python(code, url, "one"))
        until(lambda: contents and contents[-1] == ["one"], timeout=15)
        assert terminate_backends() >= 2  # this process's pools and its feed
        finish(python(code, url, "two"))
        until(lambda: contents and contents[-1] == ["one", "two"], timeout=20)
        send(thread_id="x", text="three")  # this process writes again after the cut
        assert [m.content for m in messages(thread_id="x")] == ["one", "two", "three"]
        until(lambda: contents[-1] == ["one", "two", "three"], timeout=10)
        sub.close()

"""Mutations on a busy store: retried while another connection holds the write lock
(SQLite) or writes the same rows (PostgreSQL: serialization failures, then retries)."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import sqlalchemy as sa
from models import Counter, counter, increment, messages, send

import rxnb as rx
from rxnb.store import _sqlite


@contextmanager
def write_lock_held(url: str, seconds: float) -> Iterator[None]:
    """Another connection takes SQLite's write lock and keeps it for `seconds`."""
    conn = sqlite3.connect(
        url.removeprefix("sqlite:///"), isolation_level=None, check_same_thread=False
    )
    conn.execute("BEGIN IMMEDIATE")
    release = threading.Timer(seconds, lambda: conn.execute("ROLLBACK"))
    release.start()
    try:
        yield
    finally:
        release.cancel()
        release.join()
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        conn.close()


@pytest.mark.sqlite_only
def test_busy_store_is_waited_for_then_commits(store: rx.Store, url: str) -> None:
    with write_lock_held(url, 0.8):
        started = time.monotonic()
        send(thread_id="busy", text="after the lock")
        waited = time.monotonic() - started
    assert waited >= 0.5  # it really waited for the lock...
    assert [m.content for m in messages(thread_id="busy")] == ["after the lock"]


@pytest.mark.sqlite_only
def test_busy_store_is_retried_past_short_busy_timeouts(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 20)
    with rx.open(url) as store, write_lock_held(url, 0.4):
        attempts = 0
        original = store.database._write_once

        def counting(fn, options):  # type: ignore[no-untyped-def]
            nonlocal attempts
            attempts += 1
            return original(fn, options)

        monkeypatch.setattr(store.database, "_write_once", counting)
        send(thread_id="retry", text="eventually")
        assert attempts > 1
        assert [m.content for m in messages(thread_id="retry")] == ["eventually"]


@pytest.mark.sqlite_only
def test_store_busy_for_too_long_is_a_clear_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 20)
    with rx.open(url) as store:
        with write_lock_held(url, 30), pytest.raises(rx.StoreBusyError, match="attempts"):
            send(thread_id="busy", text="never")
        assert store.call(messages, thread_id="busy") == []


@contextmanager
def pg_row_locked(url: str, seconds: float) -> Iterator[None]:
    """Another PostgreSQL connection updates counter 1 and commits after `seconds`."""
    engine = sa.create_engine(url)
    conn = engine.connect()
    conn.exec_driver_sql("BEGIN ISOLATION LEVEL SERIALIZABLE")
    conn.exec_driver_sql("UPDATE t_counter SET value = value + 100 WHERE id = 1")

    def commit() -> None:
        conn.exec_driver_sql("COMMIT")

    release = threading.Timer(seconds, commit)
    release.start()
    try:
        yield
    finally:
        release.join()
        conn.close()
        engine.dispose()


@pytest.mark.postgres_only
def test_conflicting_writers_are_retried_to_an_exact_total(
    store: rx.Store, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    increment()
    attempts = 0
    original = store.database._write_once
    this = threading.current_thread()

    def counting(fn, options):  # type: ignore[no-untyped-def]
        nonlocal attempts
        attempts += threading.current_thread() is this  # not the store's own threads' writes
        return original(fn, options)

    monkeypatch.setattr(store.database, "_write_once", counting)
    with pg_row_locked(url, 0.5):
        started = time.monotonic()
        assert increment() == 102  # it waited for the other writer, failed, ran again
        waited = time.monotonic() - started
    assert waited >= 0.4
    assert attempts == 2  # the first attempt hit a serialization failure (40001)
    assert counter() == 102
    assert store.database.read(lambda db: db.get(Counter, 1))[0].value == 102  # type: ignore[union-attr]


@pytest.mark.postgres_only
def test_writers_conflicting_past_the_retries_get_a_clear_error(
    store: rx.Store, url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    increment()
    monkeypatch.setattr(type(store.database), "max_write_attempts", 3)
    rival = sa.create_engine(url)

    def always_conflicting(db: rx.Writer) -> None:
        row = db.get(Counter, 1)  # this transaction's snapshot is taken here
        assert row is not None
        with rival.begin() as other:  # another writer changes the row and commits first
            other.exec_driver_sql("UPDATE t_counter SET value = value + 10 WHERE id = 1")
        row.value += 1
        db.flush()  # 40001: could not serialize access due to concurrent update

    with pytest.raises(rx.StoreBusyError, match="after 3 attempts"):
        store.database.write(always_conflicting)
    rival.dispose()
    assert counter() == 31  # the three rivals' writes, none of ours

"""Mutations on a busy store: retried while another connection holds the write lock."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from models import messages, send

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


def test_busy_store_is_waited_for_then_commits(store: rx.Store, url: str) -> None:
    with write_lock_held(url, 0.8):
        started = time.monotonic()
        send(thread_id="busy", text="after the lock")
        waited = time.monotonic() - started
    assert waited >= 0.5  # it really waited for the lock...
    assert [m.content for m in messages(thread_id="busy")] == ["after the lock"]


def test_busy_store_is_retried_past_short_busy_timeouts(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 20)
    with rx.open(url) as store, write_lock_held(url, 0.4):
        attempts = 0
        original = store.database._write_once

        def counting(fn):  # type: ignore[no-untyped-def]
            nonlocal attempts
            attempts += 1
            return original(fn)

        monkeypatch.setattr(store.database, "_write_once", counting)
        send(thread_id="retry", text="eventually")
        assert attempts > 1
        assert [m.content for m in messages(thread_id="retry")] == ["eventually"]


def test_store_busy_for_too_long_is_a_clear_error(
    url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_sqlite, "BUSY_TIMEOUT_MS", 20)
    with rx.open(url) as store:
        with write_lock_held(url, 30), pytest.raises(rx.StoreBusyError, match="attempts"):
            send(thread_id="busy", text="never")
        assert store.call(messages, thread_id="busy") == []

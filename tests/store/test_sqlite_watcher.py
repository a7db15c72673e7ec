"""The SQLite change watcher: woken by a write to the WAL file (inotify, on Linux), or
polling where it cannot be; either way it sees another connection's commit at once
and an idle store costs no wake-ups beyond its check."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
from pathlib import Path

import pytest

import rxnb as rx
from rxnb.store import _sqlite
from rxnb.store._inotify import FileWrites

pytestmark = pytest.mark.sqlite_only


def commit_elsewhere(path: Path) -> None:
    """A commit by a plain sqlite3 connection, as another process would make."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS t_elsewhere (n INTEGER)")
        conn.execute("INSERT INTO t_elsewhere VALUES (1)")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="inotify is Linux's")
def test_file_writes_wake_on_a_write_and_on_wake(tmp_path: Path) -> None:
    path = tmp_path / "watched"
    path.write_bytes(b"")
    writes = FileWrites.watch(path)
    assert writes is not None
    try:
        assert not writes.wait(0.05)  # nothing written
        with path.open("ab") as out:
            out.write(b"x")
        assert writes.wait(5.0)
        assert not writes.wait(0.05)  # the events were read
        threading.Timer(0.05, writes.wake).start()
        started = time.monotonic()
        assert not writes.wait(5.0)  # woken, not written
        assert time.monotonic() - started < 2.0
    finally:
        writes.close()


@pytest.mark.parametrize("inotify", [True, False], ids=["inotify", "polling"])
def test_the_watcher_sees_another_connections_commit(
    tmp_path: Path, inotify: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not inotify:
        monkeypatch.setattr(_sqlite.FileWrites, "watch", staticmethod(lambda path: None))
    monkeypatch.setattr(_sqlite, "CHECK_SECONDS", 5.0)  # only a wake-up can be quick
    store = rx.open(f"sqlite:///{tmp_path / 'store.db'}")
    watcher = store.database.open_watcher()
    try:
        assert (getattr(watcher, "_writes", None) is not None) == (
            inotify and sys.platform.startswith("linux")
        )
        stop = threading.Event()
        assert not watcher.wait(0.1, stop)
        threading.Timer(0.05, commit_elsewhere, [tmp_path / "store.db"]).start()
        started = time.monotonic()
        assert watcher.wait(5.0, stop)
        assert time.monotonic() - started < 2.5  # woken: not the 5 s check, nor the timeout
        while watcher.wait(0.3, stop):  # the store's own commits since, if any
            pass

        def stopping() -> None:
            stop.set()
            watcher.interrupt()

        stopper = threading.Timer(0.05, stopping)
        stopper.start()
        started = time.monotonic()
        while watcher.wait(5.0, stop):  # a commit of the store's own is reported first
            pass
        assert time.monotonic() - started < 2.5  # the feed stopping does not wait for a check
        stopper.join()
    finally:
        watcher.close()
        store.close()

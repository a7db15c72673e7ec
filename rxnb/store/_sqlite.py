"""The SQLite dialect: WAL, `BEGIN IMMEDIATE` writers, a `PRAGMA data_version` watcher."""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event

from rxnb.errors import StoreOpenError
from rxnb.store._changelog import INSERT_CHANGE, LoggedChange, decode_rows
from rxnb.store._database import ChangeWatcher, Database
from rxnb.store._inotify import FileWrites

BUSY_TIMEOUT_MS: Final = int(os.environ.get("RXNB_BUSY_TIMEOUT_MS", "10000"))
POLL_SECONDS: Final = 0.004
"""How often the watcher asks SQLite whether another connection committed, where it
cannot be woken by a write to the WAL file (no inotify), and for `BURST_SECONDS`
after such a wake-up (SQLite marks the commit in its shared memory just after writing
the WAL, which no file event tells)."""
BURST_SECONDS: Final = 0.02
CHECK_SECONDS: Final = 0.25
"""With inotify, the longest the watcher sleeps without asking SQLite anyway."""

_HEADER: Final = b"SQLite format 3\x00"


def sqlite_path(url: sa.URL) -> Path:
    """The absolute file path of a SQLite URL; refuses in-memory databases."""
    database = url.database
    if not database or database == ":memory:" or database.startswith("file::memory:"):
        raise StoreOpenError(
            f"rxnb cannot use an in-memory SQLite database ({url}): its threads and other "
            "processes could not see it. Use a file, e.g. rx.open('sqlite:///notes.db')"
        )
    return Path(database).expanduser().resolve()


def prepare_file(path: Path) -> None:
    """Create the folder; refuse a file that is not SQLite or cannot be written."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StoreOpenError(
            f"Cannot create the folder {path.parent} for the store ({exc.strerror}); "
            "choose a writable location with rx.open('sqlite:///path/to/file.db') or RXNB_URL"
        ) from exc
    if path.is_dir():
        raise StoreOpenError(f"{path} is a folder, not a database file; name a file inside it")
    if path.exists():
        with path.open("rb") as f:
            header = f.read(len(_HEADER))
        if header and header != _HEADER:
            raise StoreOpenError(
                f"{path} is not a SQLite database (it starts with {header[:8]!r}); point "
                "rx.open() or RXNB_URL at another file, or move this one away"
            )
        if not os.access(path, os.W_OK):
            raise StoreOpenError(
                f"{path} is not writable by this user; fix its permissions or choose another file"
            )
    elif not os.access(path.parent, os.W_OK | os.X_OK):
        raise StoreOpenError(
            f"Cannot create {path}: the folder {path.parent} is not writable by this user; "
            "choose a writable location with rx.open('sqlite:///path/to/file.db') or RXNB_URL"
        )


class SQLiteDatabase(Database):
    """SQLite in WAL mode; writers take turns in-process, then `BEGIN IMMEDIATE`."""

    string_ranges = True  # BINARY collation orders strings as Python does
    serialize_writers = True

    _appender: Any = None
    """The pooled connection `_insert_once` keeps, checked out on first use."""

    def __init__(self, url: str, *, migrate: bool = False) -> None:
        self.path = sqlite_path(sa.make_url(url))
        prepare_file(self.path)
        if not self.path.exists() or self.path.stat().st_size == 0:
            _enable_wal(self.path)  # a new file: nothing to compare, WAL from the start
        super().__init__(url, migrate=migrate)
        try:
            _enable_wal(self.path)  # an existing file passed the schema check: now it may change
        except BaseException:
            self.close()
            raise

    def _create_engines(self) -> tuple[sa.Engine, sa.Engine]:
        return self._engine(read_only=True), self._engine(read_only=False)

    def _engine(self, *, read_only: bool) -> sa.Engine:
        engine = sa.create_engine(
            f"sqlite:///{self.path}",
            connect_args={"check_same_thread": False, "timeout": BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
            max_overflow=32,
        )
        begin = "BEGIN" if read_only else "BEGIN IMMEDIATE"

        @event.listens_for(engine, "connect")
        def _setup(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # rxnb issues BEGIN itself, below
            dbapi_conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
            dbapi_conn.execute("PRAGMA synchronous=NORMAL")
            dbapi_conn.execute("PRAGMA foreign_keys=ON")
            if read_only:
                dbapi_conn.execute("PRAGMA query_only=ON")

        @event.listens_for(engine, "begin")
        def _begin(conn: sa.Connection) -> None:
            # On the DB-API connection, so that statement tracking does not see it.
            driver = conn.connection.driver_connection
            assert isinstance(driver, sqlite3.Connection)
            driver.execute(begin)

        return engine

    def is_retryable(self, exc: BaseException) -> bool:
        # The BEGIN that rxnb issues itself raises sqlite3's error unwrapped.
        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        message = str(cause).lower()
        return isinstance(cause, sqlite3.OperationalError) and (
            "locked" in message or "busy" in message
        )

    def _translate_open_error(self, exc: sa.exc.DBAPIError) -> BaseException | None:
        message = str(exc.orig)
        if "not a database" in message or "malformed" in message:
            return _unusable(self.path, exc.orig or exc)
        if "unable to open" in message or "readonly" in message:
            return StoreOpenError(
                f"Cannot open {self.path} for writing ({message}); check the permissions of "
                "the file and its folder, or choose another location"
            )
        return None

    def append_changes(self, conn: sa.Connection, rows: list[tuple[object, ...]]) -> None:
        driver = conn.connection.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        if len(rows) == 1:
            driver.execute(INSERT_CHANGE, rows[0])  # the common case; cheaper than executemany
        else:
            driver.executemany(INSERT_CHANGE, rows)

    def open_watcher(self) -> ChangeWatcher:
        return _DataVersionWatcher(self.path)

    def vacuum(self) -> int:
        """`VACUUM` on a connection of its own (it cannot run in a transaction), then a
        WAL checkpoint that truncates the log the copy went through."""
        self._check_open()
        before = self._size()

        def once() -> None:
            with self._write_lock:  # this process's writers wait; others, busy_timeout
                conn = sqlite3.connect(
                    self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000
                )
                try:
                    conn.execute("VACUUM")
                    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                finally:
                    conn.close()

        self._retrying("A vacuum", once)
        return max(0, before - self._size())

    def _size(self) -> int:
        """Bytes of the file and its write-ahead log."""
        wal = self.path.with_name(self.path.name + "-wal")
        return sum(p.stat().st_size for p in (self.path, wal) if p.exists())

    def _insert_once(
        self, table: sa.Table, rows: Sequence[dict[str, Any]], changes: list[tuple[object, ...]]
    ) -> None:
        """On the sqlite3 connection itself: a journal write costs a few tens of µs
        instead of SQLAlchemy's hundreds."""
        columns = list(rows[0])
        sql = (
            f"INSERT INTO {table.name} ({', '.join(columns)}) "
            f"VALUES ({', '.join('?' for _ in columns)})"
        )
        if self._appender is None:  # one connection kept for these writes (the lock is held)
            self._appender = self._write_engine.raw_connection()
        driver = self._appender.driver_connection
        assert isinstance(driver, sqlite3.Connection)
        driver.execute("BEGIN IMMEDIATE")
        try:
            if len(rows) == 1:
                driver.execute(sql, tuple(rows[0][c] for c in columns))
            else:
                driver.executemany(sql, [tuple(row[c] for c in columns) for row in rows])
            for change in changes:
                driver.execute(INSERT_CHANGE, change)
            driver.execute("COMMIT")
        except BaseException:
            driver.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._appender is not None:
            self._appender.close()
            self._appender = None
        super().close()


def _enable_wal(path: Path) -> None:
    """Switch the file to WAL (persistent), waiting out other processes doing the same.

    Changing the journal mode needs an exclusive lock, and SQLite may refuse it at
    once (SQLITE_BUSY, no busy handler) while another process opens the same new file.
    """
    deadline = time.monotonic() + BUSY_TIMEOUT_MS / 1000
    delay = 0.005
    while True:
        conn = sqlite3.connect(path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            if conn.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc):
                raise _unusable(path, exc) from exc
            if time.monotonic() >= deadline:
                raise StoreOpenError(
                    f"{path} stayed locked by another process for "
                    f"{BUSY_TIMEOUT_MS / 1000:.0f} s while rxnb tried to open it ({exc}); "
                    "close what holds it, or raise RXNB_BUSY_TIMEOUT_MS"
                ) from exc
        except sqlite3.DatabaseError as exc:
            raise _unusable(path, exc) from exc
        finally:
            conn.close()
        time.sleep(delay)
        delay = min(0.2, delay * 2)


def _unusable(path: Path, exc: BaseException) -> StoreOpenError:
    return StoreOpenError(
        f"{path} is not a usable SQLite database ({exc}); point rx.open() or RXNB_URL at "
        "another file, or move this one away"
    )


class _DataVersionWatcher(ChangeWatcher):
    """Asks `PRAGMA data_version` on its own connection when the store's WAL file is
    written (Linux's inotify: an idle process costs next to nothing), else every few
    milliseconds. The value changes whenever another connection, in any process,
    commits.
    """

    def __init__(self, path: Path) -> None:
        self._conn = sqlite3.connect(
            path, isolation_level=None, check_same_thread=False, timeout=BUSY_TIMEOUT_MS / 1000
        )
        self._lock = threading.Lock()
        self._version = self._data_version()  # a read: the WAL file exists after it
        self._writes = FileWrites.watch(path.with_name(path.name + "-wal"))
        self._burst_until = 0.0

    def _data_version(self) -> int:
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        deadline = time.monotonic() + timeout
        while True:
            version = self._data_version()
            if version != self._version:
                self._version = version
                return True
            now = time.monotonic()
            if stop.is_set() or now >= deadline:
                return False
            if self._writes is None or now < self._burst_until:
                if stop.wait(POLL_SECONDS):
                    return False
            elif self._writes.wait(min(CHECK_SECONDS, deadline - now)):
                self._burst_until = time.monotonic() + BURST_SECONDS

    def read_since(self, seq: int, limit: int, own_origin: str) -> list[LoggedChange]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT seq, origin, tbl, key, old, new FROM rx_changes "
                "WHERE seq > ? ORDER BY seq LIMIT ?",
                (seq, limit),
            ).fetchall()
        return decode_rows(rows, own_origin)

    def last_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT max(seq) FROM rx_changes").fetchone()
        return int(row[0] or 0)

    def prune(self, older_than: float) -> int:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM rx_changes WHERE at < ?", (older_than,))
            return cursor.rowcount

    def contiguous(self) -> bool:
        return True  # writers are serialized and AUTOINCREMENT never reuses a number

    def interrupt(self) -> None:
        if self._writes is not None:
            self._writes.wake()

    def close(self) -> None:
        if self._writes is not None:
            self._writes.close()
        with self._lock:
            self._conn.close()

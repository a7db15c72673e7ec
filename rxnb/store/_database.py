"""The abstract store: engines, tracked transactions, the change log, commit listeners.

Dialects subclass `Database` (`SQLiteDatabase`, `PostgresDatabase`) and supply what
differs by engine: connection setup, how a write transaction begins, which errors are
worth retrying (conflicts, and lost connections), how the change log is appended to
and watched.
"""

from __future__ import annotations

import contextlib
import logging
import random
import threading
import time
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, TypeVar

import sqlalchemy as sa
from sqlmodel import SQLModel

from rxnb.errors import (
    ReadOnlyError,
    SchemaMismatchError,
    StoreBusyError,
    StoreClosedError,
    StoreUnavailableError,
)
from rxnb.store._changelog import LoggedChange, encode, internal_metadata
from rxnb.store._readset import ReadSet
from rxnb.store._schema import DataProblem, apply_plan, check_rows, plan_schema
from rxnb.store._sessions import Reader, Writer
from rxnb.store._tracking import TRACKER, RowWrite, Tracker, Write, install_engine_hooks

log = logging.getLogger("rxnb.store")

T = TypeVar("T")
CommitListener = Callable[[Sequence[Write]], None]


class ChangeWatcher(ABC):
    """One process's dedicated view of the change log, used by the change feed."""

    @abstractmethod
    def wait(self, timeout: float, stop: threading.Event) -> bool:
        """Block until another connection may have committed, `stop` is set, or timeout."""

    @abstractmethod
    def read_since(self, seq: int, limit: int, own_origin: str) -> list[LoggedChange]:
        """Log entries after `seq`, oldest first; those of `own_origin` left undecoded."""

    @abstractmethod
    def last_seq(self) -> int:
        """The newest sequence number in the log (0 when empty)."""

    @abstractmethod
    def prune(self, older_than: float) -> int:
        """Delete entries written before `older_than` (epoch seconds); return how many."""

    @abstractmethod
    def contiguous(self) -> bool:
        """Whether sequence numbers are committed without gaps (a gap then means pruned)."""

    def reconnected(self) -> bool:
        """Whether the watcher lost its connection and made a new one since last asked
        (whatever readers saw meanwhile may have been an error: they read again)."""
        return False

    def interrupt(self) -> None:
        """Make a `wait` in progress return now (the feed is stopping)."""
        return  # a watcher whose `wait` looks at `stop` often enough needs nothing

    @abstractmethod
    def close(self) -> None:
        """Release the watcher's connection."""


class Database(ABC):
    """An open store's storage.

    Responsibilities: create the engines; run read transactions that record a read
    set and write transactions (serializable, retried when busy) that record a write
    set and append it to the change log before committing; tell commit listeners what
    each commit wrote; check the schema when opened and when new table classes appear.
    """

    string_ranges: ClassVar[bool] = True
    """Whether string comparisons in SQL follow Python's order (ranges on strings index)."""
    serialize_writers: ClassVar[bool] = True
    """Whether writers in this process take turns before asking the database."""
    max_write_attempts: ClassVar[int] = 8
    outage_seconds: ClassVar[float] = 0.0
    """How long transactions keep retrying while the server cannot be reached."""

    def __init__(self, url: str, *, migrate: bool = False) -> None:
        self.url = sa.make_url(url).render_as_string(hide_password=True)
        """The URL for messages and display: never with a password."""
        self.origin = uuid.uuid4().hex
        self._local = threading.local()
        self._write_lock = threading.Lock()
        self._schema_lock = threading.RLock()
        self._schema_seen: tuple[int, ...] = ()
        self._listeners: list[CommitListener] = []
        self._closed = False
        self._opened = False
        """False while opening: a server that cannot be reached fails `open` at once."""
        self._read_engine, self._write_engine = self._create_engines()
        for engine in (self._read_engine, self._write_engine):
            install_engine_hooks(engine)
        try:
            self.ensure_schema(migrate=migrate)
        except BaseException:
            self.close()
            raise
        self._opened = True

    # -- what dialects provide -------------------------------------------------------

    @abstractmethod
    def _create_engines(self) -> tuple[sa.Engine, sa.Engine]:
        """(read engine, write engine), with tracking-free connection setup done."""

    @abstractmethod
    def is_retryable(self, exc: BaseException) -> bool:
        """Whether a write transaction that raised `exc` should be run again."""

    def is_outage(self, exc: BaseException) -> bool:
        """Whether `exc` means the server could not be reached (retried for a while)."""
        return False

    def locking_options(self) -> dict[str, Any]:
        """Execution options of a transaction that orders itself with locks (a queue
        claim, see `write(claim=True)`; the schema check, under `lock_schema`), so that
        it reads what was committed before it got them."""
        return {}

    def lock_schema(self, conn: sa.Connection) -> None:  # noqa: B027 (optional: SQLite's writer lock does it)
        """Keep other processes from checking the schema until `conn` commits."""

    def settle_columns(self, conn: sa.Connection, tables: Sequence[sa.Table]) -> None:  # noqa: B027 (optional: only PostgreSQL stores a type two ways)
        """Before the schema is compared, decide how columns whose storage depends on
        the database (pgvector) are stored, for both engines."""

    @abstractmethod
    def append_changes(self, conn: sa.Connection, rows: list[tuple[object, ...]]) -> None:
        """Insert encoded change-log rows inside the transaction open on `conn`."""

    @abstractmethod
    def open_watcher(self) -> ChangeWatcher:
        """A new dedicated watcher of the change log."""

    @abstractmethod
    def vacuum(self) -> int:
        """Give the space of deleted rows back; how many bytes the store shrank by."""

    def _translate_open_error(self, exc: sa.exc.DBAPIError) -> BaseException | None:
        """A clearer error for a failure while opening, or None to keep the original."""
        return None

    # -- transactions ----------------------------------------------------------------

    def engines(self) -> tuple[sa.Engine, sa.Engine]:
        """The read and the write engine (to tell which store a session belongs to)."""
        return self._read_engine, self._write_engine

    def add_commit_listener(self, listener: CommitListener) -> None:
        """Call `listener(writes)` after every commit in this process that wrote."""
        self._listeners.append(listener)

    def read(self, fn: Callable[[Reader], T]) -> tuple[T, ReadSet]:
        """Run `fn` in a read-only transaction; return its result and what it read."""
        active = self._active()
        if active is not None:
            session, tracker = active
            return fn(session), tracker.reads
        self._check_open()
        self._check_new_tables()

        def once() -> tuple[T, ReadSet]:
            with self._read_engine.connect() as conn:
                tracker = Tracker(writing=False, string_ranges=self.string_ranges)
                session = Reader(bind=conn, expire_on_commit=False, autoflush=False)
                with _Tracked(self, conn, session, tracker):
                    result = fn(session)
            return result, tracker.reads

        return self._retrying("A query", once)

    def write(self, fn: Callable[[Writer], T], *, claim: bool = False) -> T:
        """Run `fn` in a serializable transaction, committed only if it returns.

        Inside another write on this thread it joins that transaction through a
        savepoint, so an error in it undoes only its own part. `claim=True` marks a
        queue claim: `fn` locks the rows it takes (`FOR UPDATE SKIP LOCKED`), so the
        dialect may run it at a weaker isolation, where claimers skip each other's
        rows instead of failing on them (PostgreSQL: READ COMMITTED).
        """
        active = self._active()
        if active is not None:
            session, tracker = active
            if not isinstance(session, Writer):
                raise ReadOnlyError(
                    "A mutation was called from inside a query; queries are read-only. "
                    "Call the mutation from a cell, an action, or another mutation"
                )
            return self._write_nested(session, tracker, fn)
        self._check_open()
        self._check_new_tables()
        options = self.locking_options() if claim else {}
        result, writes = self._retrying("A mutation", lambda: self._serialized(fn, options))
        if writes:
            self._publish(writes)
        return result

    def insert_rows(self, table: sa.Table, rows: Sequence[dict[str, Any]]) -> None:
        """Insert `rows` into `table` and their change-log entries in one transaction,
        through SQLAlchemy Core: the hot path of append-only tables (a workflow's
        journal), a fraction of an ORM session's cost. Inside a write on this thread,
        it joins that write's transaction instead."""
        active = self._active()
        if active is not None and isinstance(active[0], Writer):
            active[0].execute(table.insert(), list(rows))
            return
        self._check_open()
        self._check_new_tables()
        keys = [c.name for c in table.primary_key.columns]
        writes: list[Write] = [
            RowWrite(table.name, tuple(row[k] for k in keys), None, row) for row in rows
        ]
        changes = encode(writes, self.origin)

        def once() -> None:
            with self._write_lock if self.serialize_writers else _NO_LOCK:
                self._insert_once(table, rows, changes)

        self._retrying("A journal write", once)
        self._publish(writes)

    def _insert_once(
        self, table: sa.Table, rows: Sequence[dict[str, Any]], changes: list[tuple[object, ...]]
    ) -> None:
        """One transaction of `insert_rows` (a dialect may do it closer to the driver)."""
        with self._write_engine.begin() as conn:
            conn.execute(table.insert(), list(rows))
            self.append_changes(conn, changes)

    def _serialized(
        self, fn: Callable[[Writer], T], options: dict[str, Any]
    ) -> tuple[T, list[Write]]:
        if not self.serialize_writers:
            return self._write_once(fn, options)
        with self._write_lock:
            return self._write_once(fn, options)

    def _retrying(self, what: str, attempt_once: Callable[[], T]) -> T:
        """Run `attempt_once` again, with backoff, while the database is busy, or
        (once open) while the server cannot be reached, for `outage_seconds`."""
        attempt = 0
        outage_since: float | None = None
        while True:
            attempt += 1
            try:
                return attempt_once()
            except Exception as exc:
                if self._opened and not self._closed and self.is_outage(exc):
                    now = time.monotonic()
                    outage_since = now if outage_since is None else outage_since
                    if now - outage_since >= self.outage_seconds:
                        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
                        raise StoreUnavailableError(
                            f"{what} on {self.url} could not reach the database for "
                            f"{now - outage_since:.0f} s ({cause}); check that the server "
                            "is up, or raise RXNB_RECONNECT_SECONDS to wait longer"
                        ) from exc
                    if outage_since == now:
                        log.warning("rxnb: %s lost the database (%s); retrying", what, exc)
                    time.sleep(min(1.0, 0.05 * 2 ** min(attempt, 5)) * (0.5 + random.random()))
                    attempt = min(attempt, 5)
                    continue
                if not self.is_retryable(exc):
                    raise
                if attempt >= self.max_write_attempts:
                    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
                    raise StoreBusyError(
                        f"{what} on {self.url} could not commit after {attempt} attempts "
                        f"({cause}); another process keeps the store busy. Keep mutations "
                        "short (no I/O inside them), or use PostgreSQL for many writers"
                    ) from exc
                time.sleep(min(1.0, 0.005 * 2**attempt) * (0.5 + random.random()))

    def _active(self) -> tuple[Reader, Tracker] | None:
        session = getattr(self._local, "session", None)
        if session is None:
            return None
        tracker: Tracker = self._local.tracker
        return session, tracker

    def _write_once(
        self, fn: Callable[[Writer], T], options: dict[str, Any]
    ) -> tuple[T, list[Write]]:
        with self._write_engine.connect() as conn:
            if options:
                conn.execution_options(**options)
            tracker = Tracker(writing=True, string_ranges=self.string_ranges)
            session = Writer(bind=conn, expire_on_commit=False)
            session._rx_tracker = tracker
            with _Tracked(self, conn, session, tracker):
                try:
                    result = fn(session)
                    session.flush()
                    writes = tracker.writes()
                    if writes:
                        self.append_changes(conn, encode(writes, self.origin))
                    session.commit()
                except BaseException:
                    session.rollback()
                    raise
        return result, writes

    def _write_nested(self, session: Writer, tracker: Tracker, fn: Callable[[Writer], T]) -> T:
        savepoint = session.begin_nested()
        tracker.push_frame()
        try:
            result = fn(session)
            savepoint.commit()
        except BaseException:
            if savepoint.is_active:
                savepoint.rollback()
            tracker.pop_frame(keep=False)
            raise
        tracker.pop_frame(keep=True)
        return result

    def _publish(self, writes: Sequence[Write]) -> None:
        for listener in list(self._listeners):
            try:
                listener(writes)
            except Exception:
                log.exception("rxnb commit listener %r failed", listener)

    # -- schema ----------------------------------------------------------------------

    def ensure_schema(self, *, migrate: bool = False) -> None:
        """Check every table class against the database; create what is missing.

        Raises SchemaMismatchError, having written nothing, when any table differs.
        """
        with self._schema_lock:
            seen = _metadata_fingerprint()
            tables = [*internal_metadata.sorted_tables, *SQLModel.metadata.sorted_tables]

            def check_and_apply() -> None:
                with self._write_engine.connect() as conn:
                    # Not at SERIALIZABLE: its snapshot would predate the lock, and a
                    # process that waited for another to create the tables would not
                    # see them and create them again.
                    conn.execution_options(**self.locking_options())
                    with conn.begin():
                        self.lock_schema(conn)
                        self.settle_columns(conn, tables)
                        plan = plan_schema(conn, tables, migrate=migrate)
                        if plan.problems:
                            raise SchemaMismatchError(self.url, plan.problems)
                        apply_plan(conn, plan)

            try:
                self._retrying("Checking the schema", check_and_apply)
            except sa.exc.DBAPIError as exc:
                better = self._translate_open_error(exc)
                if better is not None:
                    raise better from exc
                raise
            self._schema_seen = seen

    def _check_new_tables(self) -> None:
        # Rule of DESIGN.md §11: tables of classes defined after open are created on
        # first use. A cheap fingerprint tells whether any class appeared since.
        if _metadata_fingerprint() != self._schema_seen:
            self.ensure_schema()

    def check_data(self, limit: int | None = None) -> list[DataProblem]:
        """Every stored row that fails validation against its model (at most `limit`)."""
        self._check_open()
        with self._read_engine.connect() as conn:
            return check_rows(conn, limit)

    # -- lifecycle -------------------------------------------------------------------

    @property
    def closed(self) -> bool:
        return self._closed

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosedError(
                f"The store at {self.url} is closed; call rx.open() again to reopen it"
            )

    def close(self) -> None:
        """Release every connection. Idempotent.

        A thread still in a transaction (an action whose run ends as its store
        closes) keeps its connection until it is done: that connection is closed when
        it is given back, and no new one is made, so none is left open behind the
        disposed pools."""
        self._closed = True
        self._listeners.clear()
        for engine in (self._read_engine, self._write_engine):
            if not sa.event.contains(engine, "checkin", _close_given_back):
                sa.event.listen(engine, "checkin", _close_given_back)
                sa.event.listen(engine, "do_connect", self._refuse_to_connect)
            engine.dispose()

    def _refuse_to_connect(self, *_: Any) -> None:
        self._check_open()


def _close_given_back(dbapi_connection: Any, _record: Any) -> None:
    """A connection given back to a closed store's pool: closed (see `Database.close`)."""
    if dbapi_connection is not None:
        with contextlib.suppress(Exception):
            dbapi_connection.close()


class _Tracked:
    """Binds a session and its tracker to a connection and this thread for one transaction."""

    def __init__(
        self, database: Database, conn: sa.Connection, session: Reader, tracker: Tracker
    ) -> None:
        self._local = database._local
        self._conn, self._session, self._tracker = conn, session, tracker

    def __enter__(self) -> None:
        # Kept: a connection that broke inside the transaction raises on `.info`, and
        # that error must not replace the outage being reported (it would not retry).
        self._info = self._conn.info
        self._info[TRACKER] = self._tracker
        self._local.session, self._local.tracker = self._session, self._tracker

    def __exit__(self, *exc_info: Any) -> None:
        self._local.session = self._local.tracker = None
        self._info.pop(TRACKER, None)
        self._session.close()


_NO_LOCK = contextlib.nullcontext()


def _metadata_fingerprint() -> tuple[int, ...]:
    return tuple(id(t) for t in SQLModel.metadata.tables.values())

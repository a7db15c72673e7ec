"""The PostgreSQL dialect (psycopg 3): SERIALIZABLE writers retried on conflicts, lost
connections retried for a while, and a LISTEN/NOTIFY watcher of the change log.

Many processes on many hosts share one store here, so three things differ from SQLite:

- Writers do not take turns in-process: each write is a SERIALIZABLE transaction, run
  again with backoff on a serialization failure or a deadlock (SQLSTATE 40001, 40P01).
  Queue claims run at READ COMMITTED with `FOR UPDATE SKIP LOCKED` instead, so that
  claimers skip each other's rows rather than fail on them.
- Each commit that writes appends its change-log rows and sends `pg_notify` with the
  newest sequence number (never the data: payloads are capped at 8,000 bytes) in the
  same transaction; each process LISTENs on one dedicated connection.
- Sequence numbers are taken before commit, so they become visible out of order and
  rolled-back transactions leave holes. The watcher remembers the holes below what it
  has read and reads them again until they fill or age out, so a late commit is not
  missed (see `_ListenWatcher`).
"""

from __future__ import annotations

import hashlib
import os
import select
import threading
import time
from collections.abc import Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlalchemy import event
from sqlmodel import SQLModel

from rxnb.errors import StoreOpenError
from rxnb.store._changelog import LoggedChange, decode_rows, internal_metadata
from rxnb.store._database import ChangeWatcher, Database
from rxnb.store._pgvector import settle_vector_columns

CONFLICT_STATES: Final = frozenset({"40001", "40P01"})
"""serialization_failure, deadlock_detected: the transaction is run again."""
OUTAGE_STATES: Final = frozenset({"57P01", "57P02", "57P03", "53300"})
"""admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections (and class
08, connection exceptions): the server restarts, the connection broke, or the server
has no connection to spare for now."""

RECONNECT_SECONDS: Final = float(os.environ.get("RXNB_RECONNECT_SECONDS", "60"))
"""How long a transaction keeps retrying while the server cannot be reached."""
POOL_SIZE: Final = int(os.environ.get("RXNB_PG_POOL", "4"))
"""Connections each engine (reads, writes) keeps open; twice as many more are opened
under load, so a process holds at most 6 x 2 of them, and one for its change feed."""
HOLE_SECONDS: Final = 60.0
"""How long a missing sequence number is read again before it counts as rolled back."""
MAX_HOLES: Final = 10_000

_APPENDED: Final = """appended AS (
    INSERT INTO rx_changes (at, origin, tbl, key, old, new)
    SELECT * FROM unnest(%b::float8[], %b::text[], %b::text[], %b::text[], %b::text[],
                         %b::text[])
    RETURNING seq
)
SELECT pg_notify(%s, (SELECT max(seq) FROM appended)::text || ' ' || %s)"""
"""The change-log rows (as binary arrays: text arrays of JSON cost ~7x more to escape)
and the notification with the newest number, in one statement."""
_APPEND: Final = f"WITH {_APPENDED}"

_READ_SINCE: Final = """SELECT * FROM (
    (SELECT seq, origin, tbl, key, old, new FROM rx_changes
     WHERE seq > %s AND seq <= (SELECT max(seq) FROM rx_changes) ORDER BY seq LIMIT %s)
    UNION ALL
    (SELECT seq, origin, tbl, key, old, new FROM rx_changes
     WHERE seq = ANY(%s) AND seq <= %s)
) AS changes ORDER BY seq LIMIT %s"""
"""The entries after `seq` and the holes below it, the first `limit` of them, as two
bounded index scans. `seq > %s OR seq = ANY(%s)` ran as a scan of the whole log from
its start (filtering on the OR, or a sequential scan and a sort) whenever the planner
guessed that a third of the log lay past `seq`: on a log without statistics yet (a new
store filling up), and in the generic plan of the statement psycopg prepares. Every
process ran it on every notification, at O(log size) each (the log holds
`RXNB_CHANGE_RETENTION` of commits): 4 workers draining 2,000 runs into a new store
fetched 3,700 log entries per run, now 14 (pg_stat_user_tables). The upper bound from
the log's newest entry (an index lookup) makes the range look narrow to the planner,
and changes nothing: the statement sees no entry past it."""


def postgres_url(url: str | sa.URL) -> sa.URL:
    """`url` with the psycopg 3 driver (`postgresql://` and `postgres://` mean it too)."""
    parsed = sa.make_url(url)
    driver = parsed.get_driver_name()
    if parsed.drivername in ("postgres", "postgresql"):
        return parsed.set(drivername="postgresql+psycopg")
    if driver != "psycopg":
        raise StoreOpenError(
            f"rxnb talks to PostgreSQL through psycopg 3, not {driver!r}; write the URL as "
            f"{parsed.set(drivername='postgresql+psycopg').render_as_string()!r}"
        )
    return parsed


def libpq_conninfo(url: sa.URL) -> str:
    """The URL as libpq takes it (for connections made without SQLAlchemy)."""
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


class PostgresDatabase(Database):
    """PostgreSQL through psycopg 3; see the module docstring."""

    string_ranges = False  # a collation need not order strings as Python does
    serialize_writers = False
    max_write_attempts = 30
    outage_seconds = RECONNECT_SECONDS

    def __init__(self, url: str, *, migrate: bool = False) -> None:
        try:
            import psycopg  # noqa: F401
        except ImportError as exc:
            raise StoreOpenError(
                "PostgreSQL stores need psycopg 3, which is not installed; install it with "
                "pip install 'rxnb[postgres]'"
            ) from exc
        self._url = postgres_url(url)
        self.schema = ""
        self.channel = ""
        super().__init__(self._url.render_as_string(hide_password=False), migrate=migrate)

    def _create_engines(self) -> tuple[sa.Engine, sa.Engine]:
        write = self._engine("SERIALIZABLE", read_only=False)
        read = self._engine("REPEATABLE READ", read_only=True)
        try:
            with read.connect() as conn:
                schema = conn.exec_driver_sql("SELECT current_schema()").scalar()
        except sa.exc.DBAPIError as exc:
            write.dispose()
            read.dispose()
            raise self._unreachable(exc) from exc
        if schema is None:
            write.dispose()
            read.dispose()
            raise StoreOpenError(
                f"{self.url} has no schema to create tables in (its search_path names none "
                "that exists); create the schema first, or fix `options=-csearch_path=...`"
            )
        self.schema = str(schema)
        digest = hashlib.sha1(f"{self._url.database}/{schema}".encode()).hexdigest()[:24]
        self.channel = f"rxnb_{digest}"
        return read, write

    def _engine(self, isolation: str, *, read_only: bool) -> sa.Engine:
        # No pre-ping (a round trip per transaction): a connection the server dropped
        # fails its transaction as an outage, SQLAlchemy then discards the pool's
        # older connections, and the transaction is run again on a new one.
        engine = sa.create_engine(
            self._url,
            isolation_level=isolation,
            pool_size=POOL_SIZE,
            max_overflow=2 * POOL_SIZE,
            pool_recycle=1800,
            connect_args={"application_name": "rxnb", "connect_timeout": 10},
        )
        if read_only:

            @event.listens_for(engine, "connect")
            def _read_only(dbapi_conn: Any, _record: Any) -> None:
                dbapi_conn.read_only = True

        return engine

    def _unreachable(self, exc: sa.exc.DBAPIError) -> StoreOpenError:
        return StoreOpenError(
            f"Cannot connect to PostgreSQL at {self.url} ({' '.join(str(exc.orig).split())}); "
            "start the "
            "server or fix the URL, e.g. 'postgresql+psycopg://user@host:5432/dbname'"
        )

    def _translate_open_error(self, exc: sa.exc.DBAPIError) -> BaseException | None:
        if self.is_outage(exc):
            return self._unreachable(exc)
        return None

    def is_retryable(self, exc: BaseException) -> bool:
        return _sqlstate(exc) in CONFLICT_STATES

    def is_outage(self, exc: BaseException) -> bool:
        if isinstance(exc, sa.exc.DBAPIError) and exc.connection_invalidated:
            return True
        state = _sqlstate(exc)
        if state is not None:
            return state in OUTAGE_STATES or state.startswith("08")
        import psycopg

        cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
        return isinstance(cause, psycopg.OperationalError)  # no SQLSTATE: a client-side failure

    def locking_options(self) -> dict[str, Any]:
        return {"isolation_level": "READ COMMITTED"}

    def lock_schema(self, conn: sa.Connection) -> None:
        conn.exec_driver_sql(
            "SELECT pg_advisory_xact_lock(hashtext('rxnb schema ' || current_schema()))"
        )

    def settle_columns(self, conn: sa.Connection, tables: Sequence[sa.Table]) -> None:
        settle_vector_columns(conn, tables, [engine.dialect for engine in self.engines()])

    def append_changes(self, conn: sa.Connection, rows: list[tuple[object, ...]]) -> None:
        # On the driver's connection, so that statement tracking does not see it.
        columns = [list(column) for column in zip(*rows, strict=True)]
        driver = conn.connection.driver_connection
        assert driver is not None
        driver.execute(_APPEND, (*columns, self.channel, self.origin))

    def open_watcher(self) -> ChangeWatcher:
        return _ListenWatcher(libpq_conninfo(self._url), self.channel, self.origin)

    def vacuum(self) -> int:
        """`VACUUM (ANALYZE)` of the store's tables (those rxnb and this process's
        SQLModel classes know, in the store's schema), in autocommit (it cannot run in a
        transaction). It takes no lock that stops reads or writes."""
        self._check_open()
        known = {*internal_metadata.tables, *SQLModel.metadata.tables}
        raw = self._write_engine.raw_connection()
        driver: Any = raw.driver_connection
        try:
            driver.autocommit = True
            names = [
                row[0]
                for row in driver.execute(
                    "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
                ).fetchall()
                if row[0] in known
            ]
            if not names:
                return 0
            before = self._bytes(driver, names)
            quote = self._write_engine.dialect.identifier_preparer.quote
            driver.execute(f"VACUUM (ANALYZE) {', '.join(quote(n) for n in names)}")
            return max(0, before - self._bytes(driver, names))
        finally:
            if not (driver.broken or driver.closed):
                driver.autocommit = False
            raw.close()

    @staticmethod
    def _bytes(driver: Any, names: list[str]) -> int:
        row = driver.execute(
            "SELECT coalesce(sum(pg_total_relation_size(c.oid)), 0) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND c.relname = ANY(%s)",
            (names,),
        ).fetchone()
        return int(row[0])

    def _insert_once(
        self, table: sa.Table, rows: Sequence[dict[str, Any]], changes: list[tuple[object, ...]]
    ) -> None:
        """One statement in autocommit (one round trip, atomic as any statement): the
        rows, their change-log entries and the notification. An insert-only statement
        cannot take part in a serialization anomaly."""
        preparer = self._write_engine.dialect.identifier_preparer
        columns = list(rows[0])
        values = ", ".join("(" + ", ".join("%s" for _ in columns) + ")" for _ in rows)
        sql = (
            f"WITH inserted AS (INSERT INTO {preparer.format_table(table)} "
            f"({', '.join(preparer.quote(c) for c in columns)}) VALUES {values} RETURNING 1), "
            f"{_APPENDED}"
        )
        params = [row[c] for row in rows for c in columns]
        params += [list(column) for column in zip(*changes, strict=True)]
        raw = self._write_engine.raw_connection()
        driver: Any = raw.driver_connection
        try:
            driver.autocommit = True
            driver.execute(sql, (*params, self.channel, self.origin))
            driver.autocommit = False
        except BaseException:
            if driver.broken or driver.closed:
                raw.invalidate()
            else:
                driver.autocommit = False
            raise
        finally:
            raw.close()


def _sqlstate(exc: BaseException) -> str | None:
    cause = exc.orig if isinstance(exc, sa.exc.DBAPIError) else exc
    state = getattr(cause, "sqlstate", None)
    return state if isinstance(state, str) else None


class _ListenWatcher(ChangeWatcher):
    """LISTENs on the store's channel on one autocommit connection, reconnecting when
    it breaks (and then reporting a possible change, so that the feed catches up).

    Responsibilities beyond the SQLite watcher's: sequence numbers below the newest
    read that were missing (a transaction that had taken its number but not yet
    committed, or one that rolled back) are read again on every catch-up until they
    appear or are `HOLE_SECONDS` old.
    """

    def __init__(self, conninfo: str, channel: str, origin: str) -> None:
        self._conninfo, self._channel, self._origin = conninfo, channel, origin
        self._lock = threading.RLock()
        self._conn: Any = None
        self._holes: dict[int, float] = {}
        self._reconnected = False
        self._connect()

    def _connect(self) -> None:
        import psycopg

        self._conn = psycopg.connect(
            self._conninfo, autocommit=True, application_name="rxnb-feed", connect_timeout=10
        )
        self._conn.execute(f"LISTEN {self._channel}")

    def _reconnect(self, stop: threading.Event) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
        delay = 0.05
        while not stop.is_set():
            try:
                with self._lock:
                    self._connect()
                self._reconnected = True
                return
            except Exception:
                stop.wait(delay)
                delay = min(1.0, delay * 2)

    def wait(self, timeout: float, stop: threading.Event) -> bool:
        if self._conn is None or self._conn.closed or self._conn.broken:
            self._reconnect(stop)
            return True  # notifications may have been missed while disconnected
        deadline = time.monotonic() + timeout
        while not stop.is_set():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            try:
                # Short slices, so that `stop` is seen within a quarter second.
                ready = select.select([self._conn.fileno()], [], [], min(0.25, remaining))[0]
                if not ready:
                    continue
                with self._lock:
                    got = list(self._conn.notifies(timeout=0))
                if self._conn.broken:
                    raise ConnectionError("the LISTEN connection broke")
                # This process's own commits need no reading: its listeners have them.
                if any(n.payload.partition(" ")[2] != self._origin for n in got):
                    return True
            except Exception:
                if stop.is_set():
                    return False
                self._reconnect(stop)
                return True
        return False

    def read_since(self, seq: int, limit: int, own_origin: str) -> list[LoggedChange]:
        now = time.monotonic()
        for hole, since in list(self._holes.items()):
            if now - since > HOLE_SECONDS:
                del self._holes[hole]
        with self._lock:
            rows = self._conn.execute(
                _READ_SINCE, (seq, limit, list(self._holes), seq, limit)
            ).fetchall()
        expected = seq + 1
        for row in rows:
            number = row[0]
            if number <= seq:
                self._holes.pop(number, None)
                continue
            for missing in range(expected, number):
                self._holes.setdefault(missing, now)
            expected = number + 1
        while len(self._holes) > MAX_HOLES:
            del self._holes[min(self._holes)]
        return decode_rows(rows, own_origin)

    def last_seq(self) -> int:
        with self._lock:
            row = self._conn.execute("SELECT max(seq) FROM rx_changes").fetchone()
        return int(row[0] or 0)

    def prune(self, older_than: float) -> int:
        with self._lock:
            cursor = self._conn.execute("DELETE FROM rx_changes WHERE at < %s", (older_than,))
            return int(cursor.rowcount)

    def contiguous(self) -> bool:
        return False  # numbers are taken before commit: holes are normal (see above)

    def reconnected(self) -> bool:
        was, self._reconnected = self._reconnected, False
        return was

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                self._conn.close()

"""`Store` (what `rx.open()` returns) and the process's open stores."""

from __future__ import annotations

import atexit
import logging
import os
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from rxnb.errors import NoStoreError, StoreOpenError
from rxnb.reactive._feed import ChangeFeed
from rxnb.reactive._reactor import Reactor
from rxnb.reactive._subscription import Callback, ErrorCallback, Subscribable, Subscription
from rxnb.store import (
    EVERYTHING,
    Database,
    DataProblem,
    TableWrite,
    Write,
    open_database,
    postgres_url,
)

DEFAULT_PATH = Path(".rxnb") / "rxnb.db"

log = logging.getLogger("rxnb.reactive")


class Store:
    """An open rxnb store.

    Responsibilities: hold the database, the reactor that keeps subscriptions current,
    and the change feed that brings in other processes' commits; close all of them.
    Queries and mutations run against the current store (the one opened last and not
    closed) unless called through `Store.call`.
    """

    def __init__(self, database: Database) -> None:
        self.database = database
        self._reactor = Reactor(database)
        self._write_listeners: list[Callable[[Sequence[Write]], None]] = []
        database.add_commit_listener(self._on_writes)
        self._feed = ChangeFeed(database, self._on_writes, self._on_gap)
        self._close_lock = threading.Lock()
        self._close_callbacks: list[Callable[[], None]] = []

    @property
    def url(self) -> str:
        """The store's URL, password hidden."""
        return self.database.url

    @property
    def closed(self) -> bool:
        return self.database.closed

    def subscribe(
        self,
        query: Subscribable,
        args: Mapping[str, Any] | None = None,
        callback: Callback | None = None,
        *,
        on_error: ErrorCallback | None = None,
        with_payload: bool = False,
        min_interval: float = 0.0,
    ) -> Subscription:
        """Follow `query(**args)`: `callback(result)` now and after every change.

        Callbacks run on the store's reactor thread, one at a time: keep them short.
        While the query raises, `on_error(exc)` is called instead (or the error is
        logged) and the subscription stays; it recovers when data or code changes.
        Arguments are checked before anything runs (ArgumentError). With
        `with_payload=True` the callback is `callback(result, payload)`, `payload`
        being the result as JSON values. `min_interval` (seconds) spaces re-runs out:
        writes in between are seen by one later re-run, never missed.
        """
        self.database._check_open()
        checked = query.validate(args or {})
        return self._reactor.subscribe(
            query, checked, callback, on_error, with_payload=with_payload, min_interval=min_interval
        )

    def call(self, function: Any, /, *args: Any, **kwargs: Any) -> Any:
        """Run a query or mutation against this store rather than the current one."""
        bound = getattr(function, "call_on", None)
        if bound is None:
            raise TypeError(
                f"store.call takes an @rx.query or @rx.mutation function, not {function!r}"
            )
        return bound(self, *args, **kwargs)

    def check_data(self, limit: int | None = None) -> list[DataProblem]:
        """Every stored row that fails validation against its SQLModel class."""
        return self.database.check_data(limit)

    def vacuum(self) -> int:
        """Give the space of deleted rows (`rx.prune`) back; how many bytes it freed.

        SQLite: `VACUUM` rewrites the file (it waits for, then holds, the write lock
        while it copies). PostgreSQL: `VACUUM (ANALYZE)` of the store's tables makes
        the space reusable and frees only empty pages at their end (space inside is
        given back by `VACUUM FULL`, which locks tables out: a DBA's decision).
        """
        return self.database.vacuum()

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Block until every write reported so far has been reacted to."""
        return self._reactor.wait_idle(timeout)

    def subscriptions(self) -> list[Subscription]:
        """The open subscriptions of this store."""
        return self._reactor.subscriptions()

    def add_write_listener(self, fn: Callable[[Sequence[Write]], None]) -> None:
        """Call `fn(writes)` after every commit, of this process or (via the change
        feed) of another; after a gap in the feed, with one write of everything."""
        self._write_listeners.append(fn)

    def from_elsewhere(self) -> bool:
        """Inside a write listener: whether the writes it is told of are another
        process's (read from the change feed), not this process's own commit."""
        return self._feed.reporting()

    def _on_writes(self, writes: Sequence[Write]) -> None:
        self._reactor.notify_writes(writes)
        self._tell_listeners(writes)

    def _on_gap(self, reason: str) -> None:
        self._reactor.rerun_all(reason)
        self._tell_listeners([TableWrite(EVERYTHING)])

    def _tell_listeners(self, writes: Sequence[Write]) -> None:
        for fn in list(self._write_listeners):
            try:
                fn(writes)
            except Exception:
                log.exception("rxnb: a write listener of %r raised", self)

    def add_close_callback(self, fn: Callable[[], None]) -> None:
        """Call `fn()` when the store closes, before its subscriptions close."""
        self._close_callbacks.append(fn)

    def close(self) -> None:
        """Stop the feed and the reactor, close subscriptions, release connections."""
        with self._close_lock:
            if self.database.closed:
                return
            _forget(self)
            for fn in self._close_callbacks:
                try:
                    fn()
                except Exception:
                    log.exception("rxnb: a close callback of %r raised", self)
            for sub in self._reactor.subscriptions():
                sub.close()
            self._feed.stop()
            self._reactor.stop()
            self.database.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<rxnb.Store {self.url}{' closed' if self.closed else ''}>"


_lock = threading.RLock()
_open: dict[str, Store] = {}
_order: list[Store] = []


def _canonical(url: str | None) -> str:
    if url is None:
        url = os.environ.get("RXNB_URL") or f"sqlite:///{Path.cwd() / DEFAULT_PATH}"
    if not isinstance(url, str):
        raise StoreOpenError(f"rx.open() takes a URL string, not {type(url).__name__} ({url!r})")
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError as exc:
        raise StoreOpenError(
            f"{url!r} is not a database URL; use e.g. 'sqlite:///path/to/file.db'"
        ) from exc
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        path = Path(parsed.database).expanduser().resolve()
        return parsed.set(database=str(path)).render_as_string(hide_password=False)
    if parsed.get_backend_name() in ("postgresql", "postgres"):
        return postgres_url(parsed).render_as_string(hide_password=False)
    return url


def open(url: str | None = None, *, migrate: bool = False) -> Store:
    """Open (or return the already open) store at `url` and make it current.

    `url` defaults to `RXNB_URL`, else `sqlite:///.rxnb/rxnb.db` under the current
    folder. Tables of SQLModel classes are checked against the database first
    (SchemaMismatchError lists every difference, nothing written) and created if
    missing; `migrate=True` adds new columns that have a default or may be NULL.
    """
    key = _canonical(url)
    opened = False
    with _lock:
        store = _open.get(key)
        if store is not None and not store.closed:
            if migrate:
                store.database.ensure_schema(migrate=True)
        else:
            store = Store(open_database(key, migrate=migrate))
            _open[key] = store
            opened = True
        if store in _order:
            _order.remove(store)
        _order.append(store)
    if opened:
        try:
            for hook in list(_open_hooks):
                hook(store)
        except BaseException:  # a later layer refused (a bad setting): nothing stays open
            store.close()
            raise
    return store


_open_hooks: list[Callable[[Store], None]] = []


def on_open(hook: Callable[[Store], None]) -> None:
    """Call `hook(store)` each time a store is newly opened (used by the runs layer)."""
    _open_hooks.append(hook)


def current_store() -> Store:
    """The store opened last and not closed; NoStoreError if there is none."""
    with _lock:
        if not _order:
            raise NoStoreError(
                "No rxnb store is open; call `store = rx.open()` first (or pass a URL)"
            )
        return _order[-1]


def open_stores() -> list[Store]:
    with _lock:
        return list(_order)


def redefined(name: str) -> None:
    """Rule 4 of the reactor, for every open store: query `name` has new code."""
    for store in open_stores():
        store._reactor.redefined(name)


def _forget(store: Store) -> None:
    with _lock:
        if store in _order:
            _order.remove(store)
        for key, value in list(_open.items()):
            if value is store:
                del _open[key]


@atexit.register
def _close_all() -> None:
    for store in reversed(open_stores()):
        store.close()

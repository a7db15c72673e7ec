"""One `VectorIndex` per open store, table and vector column, kept fresh by the
store's writes (`Store.add_write_listener`): this process's and, through the change
feed, other processes'. The store layer's `db.search` asks here for its index.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING

import sqlalchemy as sa

from rxnb.reactive._store import Store, open_stores
from rxnb.store import Reader, SearchTarget, Write, new_vector_index, provide_indexes

if TYPE_CHECKING:
    from rxnb.store import VectorIndex

_lock = threading.Lock()
_indexes: dict[Store, dict[tuple[str, str], VectorIndex]] = {}


def _store_of(db: Reader) -> Store | None:
    bind = db.get_bind()
    engine = getattr(bind, "engine", bind)  # a session bound to a connection
    for store in open_stores():
        if engine in store.database.engines():
            return store
    return None


def index_for(db: Reader, target: SearchTarget) -> VectorIndex:
    """The index of `target` in the store `db` reads (a throwaway one if no open
    store owns `db`)."""
    store = _store_of(db)
    if store is None:
        bind = db.get_bind()
        return new_vector_index(bind if isinstance(bind, sa.Engine) else bind.engine, target)
    key = (target.table.fullname, target.column.name)
    with _lock:
        indexes = _indexes.get(store)
        if indexes is None:
            indexes = _indexes[store] = {}
            store.add_write_listener(lambda writes: _tell(indexes, writes))
            store.add_close_callback(lambda: _forget(store))
        index = indexes.get(key)
        if index is None or index.target.column is not target.column:  # new, or redefined
            index = indexes[key] = new_vector_index(store.database.engines()[0], target)
    return index


def _tell(indexes: dict[tuple[str, str], VectorIndex], writes: Sequence[Write]) -> None:
    with _lock:
        current = list(indexes.values())
    for index in current:
        index.on_writes(writes)


def _forget(store: Store) -> None:
    with _lock:
        _indexes.pop(store, None)


provide_indexes(index_for)

"""The store layer: engines and dialects, tracked transactions, the change log, schema."""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from rxnb.errors import StoreOpenError
from rxnb.store._changelog import LoggedChange
from rxnb.store._database import ChangeWatcher, CommitListener, Database
from rxnb.store._paginate import Page, PinnedEnds
from rxnb.store._postgres import PostgresDatabase, postgres_url
from rxnb.store._readset import Equals, Range, ReadSet, TableRead
from rxnb.store._rows import (
    Row,
    delete_row,
    insert_row,
    load_rows,
    on_row_written,
    update_row,
    update_rows,
)
from rxnb.store._schema import DataProblem, own_table
from rxnb.store._sessions import Reader, Writer
from rxnb.store._sqlite import SQLiteDatabase
from rxnb.store._tracking import EVERYTHING, RowWrite, TableWrite, Write
from rxnb.store._values import UNKNOWN
from rxnb.store._vector import (
    Hit,
    Metric,
    SearchTarget,
    Vector,
    new_vector_index,
    provide_indexes,
)

if TYPE_CHECKING:  # its module imports numpy: only on the first search
    from rxnb.store._vector_search import VectorIndex as VectorIndex

__all__ = [
    "EVERYTHING",
    "UNKNOWN",
    "ChangeWatcher",
    "CommitListener",
    "DataProblem",
    "Database",
    "Equals",
    "Hit",
    "LoggedChange",
    "Metric",
    "Page",
    "PinnedEnds",
    "PostgresDatabase",
    "Range",
    "ReadSet",
    "Reader",
    "Row",
    "RowWrite",
    "SQLiteDatabase",
    "SearchTarget",
    "TableRead",
    "TableWrite",
    "Vector",
    "Write",
    "Writer",
    "delete_row",
    "insert_row",
    "load_rows",
    "new_vector_index",
    "on_row_written",
    "open_database",
    "own_table",
    "postgres_url",
    "provide_indexes",
    "update_row",
    "update_rows",
]


def open_database(url: str, *, migrate: bool = False) -> Database:
    """The Database for `url`, of the dialect its scheme names."""
    try:
        backend = sa.make_url(url).get_backend_name()
    except sa.exc.ArgumentError as exc:
        raise StoreOpenError(
            f"{url!r} is not a database URL; use e.g. 'sqlite:///path/to/file.db'"
        ) from exc
    if backend == "sqlite":
        return SQLiteDatabase(url, migrate=migrate)
    if backend in ("postgresql", "postgres"):
        return PostgresDatabase(url, migrate=migrate)
    raise StoreOpenError(
        f"rxnb does not support {backend!r} URLs ({url}); use 'sqlite:///path/to/file.db' "
        "or 'postgresql+psycopg://user@host:5432/dbname'"
    )

"""Vector columns stored as pgvector's `vector(dim)` on PostgreSQL, and searched there.

`settle_vector_columns` decides, when the store checks its schema, how each `Vector`
column is stored in this database:

1. A column that exists keeps its type: `vector` if pgvector made it, BYTEA if it was
   created before pgvector was installed (searched in memory, as on SQLite).
2. A column about to be created is a `vector` column if the extension is installed in
   the database, or can be installed by the store's user (`CREATE EXTENSION vector`,
   tried once per check, in a savepoint); otherwise BYTEA.

The type and its operators are named with pgvector's schema, so a store whose
search_path does not include that schema still finds them.

`search_in_database` is `db.search` on a `vector` column: one statement, in the
searching transaction (so it sees that transaction's own writes), tracked like any
read. PostgreSQL ranks a shortlist of `k + 16` by sequential scan; its distances are
then computed again exactly (float64) and sorted, ties to the smaller key, as the
in-memory search does, so that both give the same hits.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Final

import sqlalchemy as sa
from sqlalchemy.sql import sqltypes
from sqlmodel import select

from rxnb.errors import ArgumentError
from rxnb.store._vector import SHORTLIST_MARGIN, Hit, SearchTarget, Vector, vector_text

if TYPE_CHECKING:  # numpy is imported on first search, not by `import rxnb`
    import numpy as np
    import numpy.typing as npt

log = logging.getLogger("rxnb.store")

_OPERATORS: Final = {"cosine": "<=>", "l2": "<->", "dot": "<#>"}


class PgVector(sa.types.UserDefinedType[Any]):
    """pgvector's `vector(dim)`, named with the schema the extension lives in."""

    cache_ok = True

    def __init__(self, dim: int, schema: str) -> None:
        self.dim = dim
        self.schema = schema

    def get_col_spec(self, **kw: Any) -> str:
        return f"{_quote_schema(self.schema)}.vector({self.dim})"


def _quote_schema(schema: str) -> str:
    return '"' + schema.replace('"', '""') + '"'


def settle_vector_columns(
    conn: sa.Connection, tables: Sequence[sa.Table], dialects: Sequence[sa.Dialect]
) -> None:
    """Rules 1 and 2: record on each `Vector` column's type, for each of `dialects`
    (the store's engines), whether it is a `vector` column and in which schema."""
    columns = [
        (table, column)
        for table in tables
        for column in table.columns
        if isinstance(column.type, Vector)
    ]
    if not columns:
        return
    # Rule 1: each existing column's pgvector schema, None if it is not a vector column.
    existing: dict[tuple[str, str], str | None] = {
        (table, column): udt_schema if udt_name == "vector" else None
        for table, column, udt_schema, udt_name in conn.execute(
            sa.text(
                "SELECT table_name, column_name, udt_schema, udt_name "
                "FROM information_schema.columns "
                "WHERE table_schema = current_schema() AND table_name IN :tables"
            ).bindparams(sa.bindparam("tables", expanding=True)),
            {"tables": sorted({table.name for table, _ in columns})},
        )
    }
    settled: dict[Vector, tuple[str | None, str]] = {}
    installed = functools.cache(lambda: _pgvector_schema(conn))  # looked up once, if needed
    for table, column in columns:
        vector_type = column.type
        assert isinstance(vector_type, Vector)
        name = (table.name, column.name)
        schema = existing[name] if name in existing else installed()  # rules 1 and 2
        where = f"{table.name}.{column.name}"
        earlier = settled.setdefault(vector_type, (schema, where))
        if earlier[0] != schema:
            raise ArgumentError(
                f"One rx.Vector object is the type of both {earlier[1]} and {where}, which "
                "the database stores differently (one as pgvector's vector, one as BYTEA); "
                "give each Field its own rx.Vector(dim)"
            )
        for dialect in dialects:
            if schema is None:
                vector_type.pgvector.pop(dialect, None)
            else:
                vector_type.pgvector[dialect] = schema
            # The dialect caches each type's implementation: let it choose again.
            dialect._type_memos.pop(vector_type, None)


def _pgvector_schema(conn: sa.Connection) -> str | None:
    """The schema pgvector is installed in, installing it if it is available and this
    user may; None if it is not there."""
    lookup = sa.text(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'vector'"
    )
    schema = conn.execute(lookup).scalar()
    if schema is not None:
        return str(schema)
    available = conn.execute(
        sa.text("SELECT 1 FROM pg_available_extensions WHERE name = 'vector'")
    ).first()
    if available is None:
        return None
    try:
        with conn.begin_nested():
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector")
    except sa.exc.DBAPIError as exc:
        raced = conn.execute(lookup).scalar()  # another store's open installed it first
        if raced is not None:
            return str(raced)
        log.warning(
            "rxnb: pgvector is available but could not be installed in this database (%s); "
            "vector columns are stored as BYTEA and searched in memory. To search in the "
            "database, run CREATE EXTENSION vector as a superuser before creating them",
            str(getattr(exc, "orig", exc)).strip().splitlines()[0],
        )
        return None
    schema = conn.execute(lookup).scalar()
    return None if schema is None else str(schema)


def search_in_database(
    db: Any,
    target: SearchTarget,
    query: npt.NDArray[np.float32],
    *,
    k: int,
    where: sa.ColumnElement[bool] | None,
    metric: str,
    schema: str,
) -> list[Hit[Any]]:
    """`db.search` on a `vector` column (see the module docstring)."""
    import numpy as np

    from rxnb.store._vector_search import distances  # numpy

    column = target.column
    given = sa.cast(sa.literal(vector_text(query), sqltypes.String()), PgVector(target.dim, schema))
    distance: sa.ColumnElement[float] = column.op(
        f"OPERATOR({_quote_schema(schema)}.{_OPERATORS[metric]})", return_type=sa.Float
    )(given)
    if metric == "cosine":  # pgvector gives NaN for a zero vector; rxnb says 1
        nan = sa.cast(sa.literal("NaN"), sa.Float)
        distance = sa.func.coalesce(sa.func.nullif(distance, nan), 1.0)
    stmt = select(target.model).where(column.is_not(None))
    if where is not None:
        stmt = stmt.where(where)
    stmt = stmt.order_by(distance, target.key).limit(k + SHORTLIST_MARGIN)
    rows = list(db.exec(stmt).all())
    if not rows:
        return []
    prop = sa.inspect(target.model).get_property_by_column(column).key
    key = sa.inspect(target.model).get_property_by_column(target.key).key
    vectors = np.asarray([getattr(row, prop) for row in rows], dtype=np.float32)
    exact = distances(vectors, query, metric).tolist()
    ranked = sorted(
        zip(exact, rows, strict=True), key=lambda pair: (pair[0], getattr(pair[1], key))
    )
    return [Hit(row, distance) for distance, row in ranked[:k]]

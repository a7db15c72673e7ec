"""Vector columns (`Vector`), search results (`Hit`) and the checks of `db.search`.

Where a vector lives, decided per column and database when the store checks its schema:

- SQLite, and PostgreSQL without the pgvector extension: float32 bytes, little-endian,
  in a binary column (BLOB, BYTEA); no extension needed. `_vector_search` searches a
  per-process matrix kept fresh from the store's writes.
- PostgreSQL with pgvector (installed in the database, or installable by the store's
  user): a `vector(dim)` column, searched by the database (`_pgvector`). A column
  created as BYTEA before pgvector was installed stays BYTEA and is searched in memory.

Both searches are exact and give the same hits and distances.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final, Generic, Literal, TypeVar, get_args

import sqlalchemy as sa
from sqlalchemy.orm import Mapper

from rxnb.errors import ArgumentError

if TYPE_CHECKING:  # numpy is imported on first use, not by `import rxnb`
    import numpy as np
    import numpy.typing as npt

    from rxnb.store._sessions import Reader
    from rxnb.store._vector_search import VectorIndex

SHORTLIST_MARGIN: Final = 16
"""Searches rank `k + 16` candidates in float32, then order those by exact distances."""

Metric = Literal["cosine", "l2", "dot"]
METRICS: tuple[str, ...] = get_args(Metric)
Row = TypeVar("Row")


@dataclass(frozen=True)
class Hit(Generic[Row]):
    """One result of `db.search`: the row and its distance to the query vector.

    Distances: cosine `1 - cos(a, b)` (0 same direction, 2 opposite), l2 the Euclidean
    distance, dot the negated dot product (so that smaller is always nearer).
    """

    row: Row
    distance: float


def as_vector(value: object, dim: int, what: str) -> npt.NDArray[np.float32]:
    """`value` (a sequence of numbers or a 1-D numpy array) as float32; ArgumentError
    if it is not `dim` finite numbers."""
    import numpy as np

    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        raise ArgumentError(
            f"{what} is a list of {dim} floats or a numpy array, not {type(value).__name__}"
        )
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise ArgumentError(f"{what} must hold numbers only, not {value!r:.80}") from None
    if array.ndim != 1 or array.shape[0] != dim:
        raise ArgumentError(
            f"{what} has {array.shape[0] if array.ndim == 1 else array.shape} values where "
            f"{dim} were expected; give a vector of length {dim}"
        )
    if not np.isfinite(array).all():
        raise ArgumentError(f"{what} holds NaN or infinity; every value must be finite")
    return array


class Vector(sa.types.TypeDecorator[list[float]]):
    """A column of `dim` float32 numbers: `Field(sa_type=rx.Vector(384))`.

    Assign a list of floats or a numpy array; rows read back hold a list of floats.
    A value of another length is refused (ArgumentError) before anything is written.
    """

    impl = sa.LargeBinary
    cache_ok = True

    def __init__(self, dim: int) -> None:
        given: object = dim
        if isinstance(given, bool) or not isinstance(given, int) or given < 1:
            raise ArgumentError(f"rx.Vector(dim) takes a positive int, not {dim!r}")
        super().__init__()
        self.dim = dim
        self.pgvector: weakref.WeakKeyDictionary[sa.Dialect, str] = weakref.WeakKeyDictionary()
        """The schema of pgvector's `vector` type, for each dialect (one per engine) on
        which this column is stored as one (set by the schema check; copies of this
        type share it)."""

    def native_schema(self, dialect: sa.Dialect) -> str | None:
        """pgvector's schema if this column is a `vector` column on `dialect`'s database."""
        return self.pgvector.get(dialect)

    def load_dialect_impl(self, dialect: sa.Dialect) -> sa.types.TypeEngine[Any]:
        schema = self.pgvector.get(dialect)
        if schema is None:
            return dialect.type_descriptor(sa.LargeBinary())
        from rxnb.store._pgvector import PgVector

        return PgVector(self.dim, schema)

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> bytes | str | None:
        if value is None:
            return None
        array = as_vector(value, self.dim, f"A value for a Vector({self.dim}) column")
        if dialect in self.pgvector:
            return vector_text(array)
        return encode(array)

    def process_result_value(self, value: Any, dialect: sa.Dialect) -> list[float] | None:
        if value is None:
            return None
        if isinstance(value, str):  # pgvector's text form
            return parse_vector_text(value, self.dim)
        vector: list[float] = decode(bytes(value), self.dim).tolist()
        return vector

    def copy_value(self, value: Any) -> Any:
        return None if value is None else list(value)

    def compare_values(self, x: Any, y: Any) -> bool:
        # numpy arrays compare elementwise: compare as lists so the ORM sees changes.
        if x is None or y is None:
            return x is y
        import numpy as np

        return bool(np.array_equal(np.asarray(x), np.asarray(y)))

    def __repr__(self) -> str:
        return f"Vector({self.dim})"


def encode(array: npt.NDArray[np.float32]) -> bytes:
    return array.astype("<f4", copy=False).tobytes()


def vector_text(array: npt.NDArray[np.float32]) -> str:
    """pgvector's input form, `[1.5,2,...]`: each float32 written so that it reads back
    exactly (the shortest repr of its float64 value, which rounds to it again)."""
    return "[" + ",".join(map(repr, array.tolist())) + "]"


def parse_vector_text(text: str, dim: int) -> list[float]:
    """A vector in pgvector's text form as a list of floats (each a float32 value, as
    read from bytes), or ArgumentError."""
    import numpy as np

    inner = text.strip("[]")
    values = np.asarray(inner.split(",") if inner else [], dtype=np.float32)
    if len(values) != dim:
        raise ArgumentError(
            f"A stored vector has {len(values)} values, not the {dim} of Vector({dim}); "
            "rewrite the row's vector (or fix the column's dimension)"
        )
    result: list[float] = values.tolist()
    return result


def decode(data: bytes, dim: int) -> npt.NDArray[np.float32]:
    import numpy as np

    if len(data) != 4 * dim:
        raise ArgumentError(
            f"A stored vector has {len(data)} bytes, not the {4 * dim} of Vector({dim}); "
            "rewrite the row's vector (or fix the column's dimension)"
        )
    return np.frombuffer(data, dtype="<f4").astype(np.float32, copy=False)


IndexProvider = Callable[["Reader", "SearchTarget"], "VectorIndex"]
index_providers: list[IndexProvider] = []


def provide_indexes(provider: IndexProvider) -> None:
    """Set where `db.search` gets its indexes (the reactivity layer keeps one per store,
    table and column); without one, each search reads the whole column."""
    index_providers[:] = [provider]


def new_vector_index(engine: sa.Engine, target: SearchTarget) -> VectorIndex:
    """An empty index of `target`, loaded on its first search (numpy is imported here,
    not by `import rxnb`)."""
    from rxnb.store._vector_search import VectorIndex

    return VectorIndex(engine, target)


@dataclass(frozen=True, eq=False)
class SearchTarget:
    """The column `db.search` was given, seen through the ORM."""

    model: type[Any]
    table: sa.Table
    column: sa.Column[Any]
    key: sa.Column[Any]
    dim: int


def search_target(attribute: object) -> SearchTarget:
    """What `Model.embedding` names, or ArgumentError saying what to pass instead."""
    prop = getattr(attribute, "property", None)
    columns = getattr(prop, "columns", None)
    model = getattr(attribute, "class_", None)
    if not columns or model is None:
        raise ArgumentError(
            f"db.search takes a vector column of a table class, e.g. Doc.embedding, "
            f"not {attribute!r:.80}"
        )
    column = columns[0]
    if not isinstance(column, sa.Column) or not isinstance(column.type, Vector):
        raise ArgumentError(
            f"db.search needs a column of type rx.Vector(dim); {attribute} is "
            f"{getattr(column, 'type', '?')}. Declare it with Field(sa_type=rx.Vector(dim))"
        )
    table = column.table
    if not isinstance(table, sa.Table):
        raise ArgumentError(f"db.search needs a column of a table, not of {table!r:.80}")
    keys = list(table.primary_key.columns)
    if len(keys) != 1:
        raise ArgumentError(
            f"db.search needs a table with a one-column primary key; {table.name} has "
            f"{len(keys)} ({', '.join(k.name for k in keys) or 'none'})"
        )
    return SearchTarget(model, table, column, keys[0], column.type.dim)


def check_search(k: object, metric: object) -> None:
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ArgumentError(f"db.search takes k= a positive int (how many hits), not {k!r}")
    if metric not in METRICS:
        raise ArgumentError(
            f"db.search takes metric= one of {', '.join(map(repr, METRICS))}, not {metric!r}"
        )


def _checker(dim: int, what: str) -> Any:
    def check(target: object, value: Any, oldvalue: object, initiator: object) -> Any:
        if value is None:
            return None
        return as_vector(value, dim, what).tolist()

    return check


@sa.event.listens_for(Mapper, "mapper_configured")
def _check_on_assignment(mapper: Mapper[Any], cls: type[Any]) -> None:
    """A vector of the wrong length is refused where it is assigned, not at commit."""
    for prop in mapper.column_attrs:
        column = prop.columns[0]
        if isinstance(column, sa.Column) and isinstance(column.type, Vector):
            what = f"{cls.__name__}.{prop.key}"
            sa.event.listen(
                getattr(cls, prop.key), "set", _checker(column.type.dim, what), retval=True
            )

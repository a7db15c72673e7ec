"""Exact vector search: `db.search`, over a matrix of a vector column kept in memory.

A `VectorIndex` holds, per process, the vectors of one column of one table as a
float32 matrix. It is loaded on first use, in a transaction of its own, and kept fresh
by `on_writes`, which the reactivity layer calls with every write of this process and
(through the change feed) of others. The rules of a search, cited by number below:

1. The read is tracked like any other, so a live search re-runs when a row it could
   match is written. a) With `where=`, the candidates are the keys
   `SELECT key FROM table WHERE <where>` returns in the searching transaction (its
   cost is that of the SQL: index the columns `where=` tests). b) Without, they are
   the rows the index holds, and a whole-table read is recorded without a scan.
2. Before scoring, the index re-reads (in a fresh transaction) the rows written since
   it last looked, or everything after a table-wide write.
3. Candidates the index does not hold (rows committed after its refresh), and rows
   written by the searching transaction itself, are read in that transaction.
4. Scores are computed in float32 over the matrix to pick a shortlist of `k + 16`,
   whose distances are then computed exactly (float64) and sorted; equal distances
   are ordered by key.
5. The rows of the hits are read in the searching transaction (`key IN (...)`); a
   key it does not see (a row inserted after it began) is passed over.

Not covered, both seen by a live search, which re-runs on those writes (rule 1): a
vector rewritten by a transaction that committed after the searching one began is
scored with its new value; a write of another process is known to the index only
once the change feed has brought it (milliseconds), so a search just before may
score an updated vector with its old value, or (without `where=`) miss a new row.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt
import sqlalchemy as sa
from sqlmodel import select

from rxnb.errors import ArgumentError
from rxnb.store._pgvector import search_in_database
from rxnb.store._tracking import EVERYTHING, TRACKER, RowWrite, TableWrite, Tracker, Write
from rxnb.store._vector import (
    SHORTLIST_MARGIN,
    Hit,
    SearchTarget,
    Vector,
    as_vector,
    check_search,
    decode,
    index_providers,
    search_target,
)

if TYPE_CHECKING:
    from rxnb.store._sessions import Reader

_MISSING: Final = -1
_NULL: Final = -2
_CHUNK: Final = 500
_LOAD_BATCH: Final = 5000

Matrix = npt.NDArray[np.float32]


class VectorIndex:
    """The vectors of one column, for searching.

    Responsibilities: load the column once; note which rows writes touched; re-read
    those before a search (rule 2); map keys to matrix rows; score the matrix.
    """

    def __init__(self, engine: sa.Engine, target: SearchTarget) -> None:
        self.target = target
        self._engine = engine
        self.lock = threading.Lock()
        """Held while searching: the matrix does not change under a search."""
        self._marks = threading.Lock()
        self._stale = True
        self._dirty: set[object] = set()
        dim = target.dim
        self._slot: dict[object, int] = {}
        self._keys: list[object] = []
        self._free: list[int] = []
        self.matrix: Matrix = np.zeros((0, dim), dtype=np.float32)
        self._sq: Matrix = np.zeros(0, dtype=np.float32)
        """Squared norm of each matrix row."""
        self._live = np.zeros(0, dtype=bool)
        """Whether each matrix row holds a row's vector (not freed)."""
        self.size = 0
        """Rows of `matrix` in use or freed (the high-water mark)."""
        self._int_keys = isinstance(target.key.type, sa.Integer)
        self._lookup: tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]] | None = None
        self.loads = 0
        """How many times the whole column was read (for tests and benchmarks)."""

    # -- kept fresh --------------------------------------------------------------------

    def on_writes(self, writes: Sequence[Write]) -> None:
        """Note what `writes` touched; nothing is read until the next search."""
        table = self.target.table.fullname
        with self._marks:
            for write in writes:
                if isinstance(write, TableWrite):
                    if write.table in (table, EVERYTHING):
                        self._stale = True
                elif write.table == table:
                    key = write.key[0] if len(write.key) == 1 else None
                    # Exactly int or str: a bool or other type cannot be compared.
                    if type(key) is (int if self._int_keys else str):
                        self._dirty.add(key)
                    else:  # a key the index cannot compare with its own: read it all
                        self._stale = True

    def refresh(self) -> None:
        """Rule 2. Call with `lock` held."""
        with self._marks:
            stale, dirty = self._stale, self._dirty
            if len(dirty) > max(1000, len(self._slot) // 4):
                stale = True
            self._stale, self._dirty = False, set()
        try:
            if stale:
                self._load()
            elif dirty:
                self._reread(list(dirty))
        except BaseException:
            with self._marks:  # not brought up to date: the next search reads it all
                self._stale = True
            raise

    def _raw(self) -> sa.ColumnElement[Any]:
        return sa.type_coerce(self.target.column, sa.LargeBinary)

    def _load(self) -> None:
        """Read the whole column, a batch at a time into a matrix sized up front, so
        that memory peaks near the matrix itself rather than twice or thrice it."""
        table, key, dim = self.target.table, self.target.key, self.target.dim
        with self._engine.connect() as conn, conn.begin():
            expected = conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one()
            matrix = np.zeros((max(16, expected), dim), dtype=np.float32)
            keys: list[object] = []
            slot: dict[object, int] = {}
            stmt = sa.select(key, self._raw()).select_from(table)
            result = conn.execution_options(yield_per=_LOAD_BATCH).execute(stmt)
            for part in result.partitions():
                held = [(k, bytes(blob)) for k, blob in part if blob is not None]
                slot.update((k, _NULL) for k, blob in part if blob is None)
                for _, blob in held:
                    if len(blob) != 4 * dim:
                        decode(blob, dim)  # raises, saying what is wrong
                if not held:
                    continue
                start = len(keys)
                if start + len(held) > len(matrix):  # rows inserted since the count
                    matrix = np.concatenate([matrix, np.zeros_like(matrix)])
                block = np.frombuffer(b"".join(blob for _, blob in held), dtype="<f4")
                matrix[start : start + len(held)] = block.reshape(len(held), dim)
                for offset, (k, _) in enumerate(held):
                    slot[k] = start + offset
                    keys.append(k)
        self.matrix, self.size, self._keys, self._slot = matrix, len(keys), keys, slot
        self._sq = np.einsum("ij,ij->i", matrix, matrix)
        self._live = np.zeros(len(matrix), dtype=bool)
        self._live[: len(keys)] = True
        self._free = []
        self._lookup = None
        self.loads += 1

    def _reread(self, keys: list[object]) -> None:
        found: dict[object, bytes | None] = {}
        with self._engine.connect() as conn:
            for chunk in _chunks(keys):
                stmt = sa.select(self.target.key, self._raw()).where(self.target.key.in_(chunk))
                found.update(
                    (r[0], None if r[1] is None else bytes(r[1])) for r in conn.execute(stmt)
                )
        for key in keys:
            blob = found.get(key, b"")
            slot = self._slot.get(key, _MISSING)
            if blob == b"" or blob is None:  # deleted, or its vector set to NULL
                if slot >= 0:
                    self._keys[slot] = None
                    self._live[slot] = False
                    self._free.append(slot)
                if blob is None:
                    self._slot[key] = _NULL
                else:
                    self._slot.pop(key, None)
                continue
            vector = decode(blob, self.target.dim)
            if slot < 0:
                slot = self._new_slot()
                self._keys[slot] = key
                self._slot[key] = slot
            self.matrix[slot] = vector
            self._sq[slot] = float(vector @ vector)
            self._live[slot] = True
        self._lookup = None

    def _new_slot(self) -> int:
        if self._free:
            return self._free.pop()
        if self.size == self.matrix.shape[0]:
            grown = np.zeros((max(16, 2 * self.size), self.target.dim), dtype=np.float32)
            grown[: self.size] = self.matrix[: self.size]
            self.matrix = grown
            self._sq = np.resize(self._sq, len(grown))
            self._live = np.resize(self._live, len(grown))
            self._live[self.size :] = False
        self._keys.append(None)
        self.size += 1
        return self.size - 1

    # -- searched ----------------------------------------------------------------------

    def slots_of(self, keys: Sequence[object]) -> npt.NDArray[np.int64]:
        """The matrix row of each key: -1 not held, -2 held with a NULL vector."""
        if not self._int_keys:
            return np.fromiter(
                (self._slot.get(k, _MISSING) for k in keys), dtype=np.int64, count=len(keys)
            )
        if self._lookup is None:
            held = np.fromiter(self._slot.keys(), dtype=np.int64, count=len(self._slot))
            slots = np.fromiter(self._slot.values(), dtype=np.int64, count=len(self._slot))
            order = np.argsort(held, kind="stable")
            self._lookup = held[order], slots[order]
        held, slots = self._lookup
        wanted = np.asarray(keys, dtype=np.int64)
        if len(held) == 0:
            return np.full(len(wanted), _MISSING, dtype=np.int64)
        at = np.minimum(np.searchsorted(held, wanted), len(held) - 1)
        return np.where(held[at] == wanted, slots[at], _MISSING)

    def key_at(self, slot: int) -> object:
        return self._keys[slot]

    def live_slots(self) -> npt.NDArray[np.int64]:
        """Every matrix row that holds a row's vector."""
        return np.flatnonzero(self._live[: self.size])

    def shortlist(
        self, slots: npt.NDArray[np.int64], query: Matrix, metric: str, count: int
    ) -> npt.NDArray[np.int64]:
        """Rule 4: the `count` of `slots` (ascending) nearest to `query` by float32
        scores."""
        whole = len(slots) == self.size  # every row, in order: no gathers
        if whole:
            scores = self.matrix[: self.size] @ query
        elif len(slots) > self.size // 4:  # one product over the matrix beats a gather
            scores = (self.matrix[: self.size] @ query)[slots]
        else:
            scores = self.matrix[slots] @ query
        if metric == "dot":
            approx = -scores
        else:
            sq = self._sq[: self.size] if whole else self._sq[slots]
            if metric == "l2":
                approx = sq - 2 * scores
            else:
                scores /= np.sqrt(sq, where=sq > 0, out=np.ones_like(sq))
                approx = -scores
        if count < len(slots):
            return slots[np.argpartition(approx, count)[:count]]
        return slots


def distances(
    vectors: npt.NDArray[np.float32], query: npt.NDArray[np.float32], metric: str
) -> npt.NDArray[np.float64]:
    """Exact distances (float64) of each row of `vectors` to `query`, as `Hit` defines."""
    m = vectors.astype(np.float64)
    q = query.astype(np.float64)
    if metric == "l2":
        diff = m - q
        l2: npt.NDArray[np.float64] = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        return l2
    dots = m @ q
    if metric == "dot":
        return -dots
    norms = np.linalg.norm(m, axis=1) * float(np.linalg.norm(q))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    return 1.0 - cos


def _chunks(keys: Sequence[object]) -> Iterable[Sequence[object]]:
    for start in range(0, len(keys), _CHUNK):
        yield keys[start : start + _CHUNK]


def _index_for(db: Reader, target: SearchTarget) -> VectorIndex:
    if index_providers:
        return index_providers[0](db, target)
    bind = db.get_bind()
    return VectorIndex(bind if isinstance(bind, sa.Engine) else bind.engine, target)


def _own_writes(db: Reader, table: str) -> set[object] | None:
    """Keys of `table` this transaction wrote; None if it may have written any."""
    tracker = db.connection().info.get(TRACKER)
    if not isinstance(tracker, Tracker) or not tracker.writing:
        return set()
    keys: set[object] = set()
    for write in tracker.writes():
        if isinstance(write, TableWrite) and write.table in (table, EVERYTHING):
            return None
        if isinstance(write, RowWrite) and write.table == table and len(write.key) == 1:
            keys.add(write.key[0])
    return keys


def search(
    db: Reader,
    column: object,
    vector: object,
    *,
    k: int,
    where: object,
    metric: str,
) -> list[Hit[Any]]:
    """`db.search`: the `k` rows nearest to `vector`, nearest first (rules 1-5)."""
    target = search_target(column)
    check_search(k, metric)
    query = as_vector(vector, target.dim, "The vector given to db.search")
    if where is not None and not isinstance(where, sa.ColumnElement):
        raise ArgumentError(
            f"db.search takes where= a SQL condition such as Doc.topic == 'news', not {where!r:.80}"
        )
    db.flush()  # this transaction's own pending rows are part of what it reads
    assert isinstance(target.column.type, Vector)
    schema = target.column.type.native_schema(db.connection().dialect)
    if schema is not None:  # a pgvector column: searched by PostgreSQL
        return search_in_database(db, target, query, k=k, where=where, metric=metric, schema=schema)
    own = _own_writes(db, target.table.fullname)
    stmt = sa.select(target.key).select_from(target.table)
    candidates: Sequence[object] | None = None
    if where is None and own is not None:
        # Rule 1b: a whole-table read, recorded without scanning the table.
        db.connection().execute(stmt.where(sa.false()))
    else:
        if where is not None:
            stmt = stmt.where(where)
        candidates = db.connection().execute(stmt).scalars().all()  # rule 1a
        if not candidates:
            return []
    index = _index_for(db, target)
    with index.lock:
        index.refresh()  # rule 2
        if candidates is None:
            slots = index.live_slots()
            missing = list(own or ())  # rule 3: read in this transaction
            if missing:
                mine = index.slots_of(missing)
                slots = slots[~np.isin(slots, mine)]
        else:
            slots = index.slots_of(candidates)
            if own is None:
                slots[:] = _MISSING
            elif own:
                mine = np.fromiter((c in own for c in candidates), bool, count=len(candidates))
                slots[mine] = _MISSING
            missing = [c for c, s in zip(candidates, slots.tolist(), strict=True) if s == _MISSING]
            slots = np.sort(slots[slots >= 0])  # in matrix order, as shortlist wants
        short = index.shortlist(slots, query, metric, k + SHORTLIST_MARGIN)
        keys = [index.key_at(slot) for slot in short.tolist()]
        found = index.matrix[short]
    extra_keys, extra = _read_vectors(db, target, missing)  # rule 3
    keys += extra_keys
    vectors = np.concatenate([found, extra]) if extra_keys else found
    if not keys:
        return []
    dist = distances(vectors, query, metric)  # rule 4, exact
    # Ties go to the smaller key, so that equal distances come out in a stable order.
    ranked = sorted(zip(dist.tolist(), keys, strict=True), key=lambda pair: (pair[0], pair[1]))
    chosen = [(key, distance) for distance, key in ranked[: k + SHORTLIST_MARGIN]]
    return _hits(db, target, chosen)[:k]


def _read_vectors(
    db: Reader, target: SearchTarget, keys: list[object]
) -> tuple[list[object], Matrix]:
    got_keys: list[object] = []
    blobs: list[bytes] = []
    raw = sa.type_coerce(target.column, sa.LargeBinary)
    for chunk in _chunks(keys):
        stmt = sa.select(target.key, raw).where(target.key.in_(chunk))
        for key, blob in db.connection().execute(stmt):
            if blob is not None:
                got_keys.append(key)
                blobs.append(bytes(blob))
    if not blobs:
        return [], np.zeros((0, target.dim), dtype=np.float32)
    return got_keys, np.stack([decode(b, target.dim) for b in blobs])


def _hits(db: Reader, target: SearchTarget, chosen: list[tuple[object, float]]) -> list[Hit[Any]]:
    """Rule 5."""
    attribute = sa.inspect(target.model).get_property_by_column(target.key).key
    wanted = [key for key, _ in chosen]
    rows = db.exec(select(target.model).where(target.key.in_(wanted))).all()
    by_key = {getattr(row, attribute): row for row in rows}
    return [Hit(by_key[key], distance) for key, distance in chosen if key in by_key]

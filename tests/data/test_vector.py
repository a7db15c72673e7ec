"""`db.search` over `rx.Vector` columns: exact against brute force, live, refused input."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
import sqlalchemy as sa
from procs import finish, python
from sqlmodel import Field, SQLModel, select

import rxnb as rx
from rxnb.llm import offline_embedding
from rxnb.reactive import index_for
from rxnb.store import SearchTarget
from rxnb.store._vector import search_target
from rxnb.store._vector_search import VectorIndex

DIM = 32
WORDS = ["cat", "dog", "bird", "fish", "tree", "river", "stone", "cloud"]
WORDS += ["rain", "snow", "wind", "fire", "light", "dark", "moon", "sun"]


class VecDoc(SQLModel, table=True):
    __tablename__ = "vec_doc"
    id: int | None = Field(default=None, primary_key=True)
    topic: str = ""
    text: str = ""
    embedding: list[float] | None = Field(default=None, sa_type=rx.Vector(DIM))


def _embed(text: str) -> list[float]:
    return offline_embedding(text, DIM)


@rx.mutation
def add_docs(db: rx.Writer, docs: list[tuple[str, str]]) -> list[int]:
    rows = [VecDoc(topic=topic, text=text, embedding=_embed(text)) for topic, text in docs]
    db.add_all(rows)
    db.flush()
    return [row.id for row in rows if row.id is not None]


@rx.mutation
def rewrite(db: rx.Writer, doc_id: int, text: str | None) -> None:
    doc = db.get(VecDoc, doc_id)
    assert doc is not None
    doc.text = text or ""
    doc.embedding = None if text is None else _embed(text)
    db.add(doc)


@rx.mutation
def remove(db: rx.Writer, doc_id: int) -> None:
    doc = db.get(VecDoc, doc_id)
    if doc is not None:
        db.delete(doc)


@rx.query
def nearest(
    db: rx.Reader, text: str, k: int = 10, topic: str | None = None, metric: str = "cosine"
) -> list[tuple[int, float]]:
    where = VecDoc.topic == topic if topic is not None else None
    hits = db.search(VecDoc.embedding, _embed(text), k=k, where=where, metric=metric)  # type: ignore[arg-type]
    return [(hit.row.id, hit.distance) for hit in hits]


@rx.query
def all_docs(db: rx.Reader) -> list[VecDoc]:
    return list(db.exec(select(VecDoc)).all())


def _brute_force(
    text: str, k: int, metric: str, keep: Callable[[VecDoc], bool] = lambda d: True
) -> list[tuple[int, float]]:
    docs = [d for d in all_docs() if d.embedding is not None and keep(d)]
    m = np.array([d.embedding for d in docs], dtype=np.float64)
    q = np.array(_embed(text), dtype=np.float64)
    if metric == "l2":
        dist = np.linalg.norm(m - q, axis=1)
    elif metric == "dot":
        dist = -(m @ q)
    else:
        norms = np.linalg.norm(m, axis=1) * np.linalg.norm(q)
        dist = 1 - np.where(norms > 0, (m @ q) / np.where(norms > 0, norms, 1), 0)
    ranked = sorted((float(d), doc.id) for d, doc in zip(dist, docs, strict=True))
    return [(doc_id, d) for d, doc_id in ranked[:k]]  # type: ignore[misc]


def _same(got: list[tuple[int, float]], want: list[tuple[int, float]]) -> None:
    assert [i for i, _ in got] == [i for i, _ in want], (got, want)
    assert np.allclose([d for _, d in got], [d for _, d in want], atol=1e-5)


def _texts(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    return [(rng.choice("ab"), " ".join(rng.sample(WORDS, 3)) + f" n{i}") for i in range(n)]


def _in_memory(store: rx.Store) -> bool:
    """Whether this store keeps VecDoc's vectors as bytes, searched in a matrix in
    memory (SQLite; PostgreSQL without pgvector), rather than in a pgvector column."""
    embedding = VecDoc.__table__.c.embedding.type  # type: ignore[attr-defined]
    assert isinstance(embedding, rx.Vector)
    return embedding.native_schema(store.database.engines()[0].dialect) is None


def _index(store: rx.Store) -> VectorIndex:
    target: SearchTarget = search_target(VecDoc.embedding)
    index, _ = store.database.read(lambda db: index_for(db, target))
    return index


def test_k_nearest_match_brute_force_through_writes(store: rx.Store) -> None:
    ids = add_docs(docs=_texts(300, seed=1))
    for metric in ("cosine", "l2", "dot"):
        for query in ("cat river", "moon sun light", "n17 stone"):
            _same(nearest(text=query, metric=metric), _brute_force(query, 10, metric))
    _same(
        nearest(text="fire wind", topic="a", k=7),
        _brute_force("fire wind", 7, "cosine", lambda d: d.topic == "a"),
    )
    # Updates, NULLs, deletes and inserts after the index was loaded.
    rewrite(doc_id=ids[0], text="snow snow dark moon")
    rewrite(doc_id=ids[1], text=None)
    remove(doc_id=ids[2])
    add_docs(docs=[("a", "snow dark moon"), ("b", "dark moon snow cloud")])
    for metric in ("cosine", "l2"):
        _same(
            nearest(text="snow dark moon", metric=metric),
            _brute_force("snow dark moon", 10, metric),
        )
    assert ids[1] not in [i for i, _ in nearest(text="cat", k=300)]
    assert ids[2] not in [i for i, _ in nearest(text="cat", k=300)]
    for _ in range(2):  # a where= matching every row, before and after a write
        hits, _ = store.database.read(
            lambda db: db.search(VecDoc.embedding, _embed("cat river"), where=VecDoc.id > 0)
        )
        _same([(h.row.id, h.distance) for h in hits], _brute_force("cat river", 10, "cosine"))
        rewrite(doc_id=ids[3], text="cat river cat")
    if _in_memory(store):
        assert _index(store).loads == 1  # kept fresh row by row, never re-read whole
    assert nearest(text="cat", topic="nothing") == []


def test_search_inside_a_mutation_sees_its_own_writes(store: rx.Store) -> None:
    ids = add_docs(docs=_texts(50, seed=2))
    nearest(text="warm up")  # the index is loaded before the mutation

    @rx.mutation
    def move_and_search(db: rx.Writer) -> list[int]:
        doc = db.get(VecDoc, ids[5])
        assert doc is not None
        doc.embedding = _embed("zebra quartz")
        db.add(VecDoc(topic="a", text="zebra", embedding=_embed("zebra quartz")))
        hits = db.search(VecDoc.embedding, _embed("zebra quartz"), k=2)
        return [h.row.id for h in hits]

    found = move_and_search()
    assert ids[5] in found
    assert len(found) == 2


def test_a_table_wide_write_reloads_the_index(store: rx.Store) -> None:
    ids = add_docs(docs=_texts(20, seed=6))
    nearest(text="warm up")
    target = _embed("glacier")

    @rx.mutation
    def flatten_topic_a(db: rx.Writer) -> list[int]:
        db.exec(sa.update(VecDoc).where(VecDoc.topic == "a").values(embedding=target))  # type: ignore[call-overload]
        hits = db.search(VecDoc.embedding, target, k=3, metric="l2")  # sees its own write
        return [h.row.id for h in hits if h.distance < 1e-6]

    inside = flatten_topic_a()
    flattened = [d.id for d in all_docs() if d.topic == "a"]
    assert len(inside) == min(3, len(flattened)) and set(inside) <= set(flattened)
    after = nearest(text="glacier", k=len(ids), metric="l2")
    assert {i for i, d in after if d < 1e-6} == set(flattened)
    if _in_memory(store):
        assert _index(store).loads == 2  # the UPDATE statement: read the column again


def test_live_search_updates_when_a_matching_row_is_inserted(store: rx.Store) -> None:
    add_docs(docs=_texts(40, seed=3))
    results: list[list[tuple[int, float]]] = []
    changed = threading.Event()

    def on_result(result: list[tuple[int, float]]) -> None:
        results.append(result)
        if len(results) > 1:
            changed.set()

    sub = store.subscribe(nearest, {"text": "volcano lava", "k": 3, "topic": "a"}, on_result)
    assert store.wait_idle(10)
    add_docs(docs=[("b", "volcano lava")])  # does not match where=: no re-run
    assert store.wait_idle(10)
    assert sub.runs == 1
    (new_id,) = add_docs(docs=[("a", "volcano lava eruption")])
    assert changed.wait(10), results
    assert results[-1][0][0] == new_id
    assert results[-1] == nearest(text="volcano lava", k=3, topic="a")
    sub.close()


def test_a_vector_rewritten_in_another_process_is_searched_with_its_new_value(
    store: rx.Store, url: str
) -> None:
    ids = add_docs(docs=_texts(30, seed=4))
    assert nearest(text="quasar pulsar", k=1)[0][0] != ids[7]
    proc = python(
        f"""
        import sys
        import rxnb as rx
        from rxnb.llm import offline_embedding
        from sqlmodel import Field, SQLModel

        class VecDoc(SQLModel, table=True):
            __tablename__ = "vec_doc"
            id: int | None = Field(default=None, primary_key=True)
            topic: str = ""
            text: str = ""
            embedding: list[float] | None = Field(default=None, sa_type=rx.Vector({DIM}))

        @rx.mutation
        def move(db: rx.Writer) -> None:
            doc = db.get(VecDoc, {ids[7]})
            doc.embedding = offline_embedding("quasar pulsar", {DIM})
            db.add(doc)

        rx.open(sys.argv[1])
        move()
        """,
        url,
    )
    finish(proc)
    deadline = time.monotonic() + 10
    while nearest(text="quasar pulsar", k=1)[0][0] != ids[7]:
        assert time.monotonic() < deadline, "the change feed never brought the new vector"
        time.sleep(0.02)
    _same(nearest(text="quasar pulsar"), _brute_force("quasar pulsar", 10, "cosine"))
    if _in_memory(store):
        assert _index(store).loads == 1


def test_bad_input_is_refused_and_nothing_is_written(store: rx.Store) -> None:
    add_docs(docs=_texts(5, seed=5))
    with pytest.raises(rx.ArgumentError, match=r"VecDoc.embedding has 3 values where 32"):
        VecDoc(text="x", embedding=[1.0, 2.0, 3.0])

    @rx.mutation
    def bad_batch(db: rx.Writer) -> None:
        db.add(VecDoc(text="first", embedding=_embed("first")))
        db.add(VecDoc(text="second", embedding=[float("nan")] * DIM))

    with pytest.raises(rx.ArgumentError, match="NaN or infinity"):
        bad_batch()
    assert len(all_docs()) == 5

    def searching(**kwargs: object) -> Callable[[rx.Reader], object]:
        def run(db: rx.Reader) -> object:
            args: dict[str, object] = {"column": VecDoc.embedding, "vector": _embed("x")}
            args.update(kwargs)
            return db.search(args.pop("column"), args.pop("vector"), **args)  # type: ignore[arg-type]

        return run

    cases = [
        ({"vector": [0.0] * 5}, r"has 5 values where 32 were expected"),
        ({"vector": "cat"}, r"a list of 32 floats or a numpy array, not str"),
        ({"k": 0}, r"k= a positive int"),
        ({"metric": "hamming"}, r"metric= one of 'cosine', 'l2', 'dot', not 'hamming'"),
        ({"column": VecDoc.text}, r"needs a column of type rx.Vector\(dim\); VecDoc.text is"),
        ({"where": "topic = 'a'"}, r"where= a SQL condition"),
    ]
    for kwargs, message in cases:
        with pytest.raises(rx.ArgumentError, match=message):
            store.database.read(searching(**kwargs))


def test_numpy_arrays_are_accepted_and_read_back_as_lists(store: rx.Store) -> None:
    vector = np.linspace(-1, 1, DIM, dtype=np.float64)

    @rx.mutation
    def put(db: rx.Writer) -> int:
        doc = VecDoc(text="np", embedding=vector)  # type: ignore[arg-type]
        db.add(doc)
        db.flush()
        assert doc.id is not None
        return doc.id

    doc_id = put()
    (doc,) = all_docs()
    assert doc.embedding == pytest.approx(vector.astype(np.float32).tolist())
    hits, _ = store.database.read(lambda db: db.search(VecDoc.embedding, vector, k=1, metric="l2"))
    assert hits[0].row.id == doc_id
    assert hits[0].distance == pytest.approx(0.0, abs=1e-6)
    with store.database.engines()[0].connect() as conn:
        raw = conn.execute(sa.text("SELECT embedding FROM vec_doc")).scalar()
    if _in_memory(store):
        assert len(bytes(raw)) == 4 * DIM  # float32, as documented
    else:  # pgvector's text form, each value exactly the float32 given
        assert raw.startswith("[") and raw.endswith("]")
        stored = np.asarray(raw[1:-1].split(","), dtype=np.float32)
        assert np.array_equal(stored, vector.astype(np.float32))


def _bytea_store(url: str) -> rx.Store:
    """A store whose vec_doc table was created before pgvector was installed: its
    vectors are BYTEA, as on SQLite (the table is made here, as an older rxnb did)."""
    if url.startswith("postgresql"):
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "CREATE TABLE vec_doc (id SERIAL PRIMARY KEY, topic VARCHAR NOT NULL, "
                    "text VARCHAR NOT NULL, embedding BYTEA)"
                )
            )
        engine.dispose()
    return rx.open(url)


@pytest.mark.postgres_only
def test_postgres_keeps_vectors_in_pgvector_columns_and_searches_there(
    store: rx.Store, url: str, pgvector: bool
) -> None:
    with store.database.engines()[0].connect() as conn:
        udt = conn.execute(
            sa.text(
                "SELECT udt_name FROM information_schema.columns WHERE table_schema = "
                "current_schema() AND table_name = 'vec_doc' AND column_name = 'embedding'"
            )
        ).scalar()
    assert udt == "vector"
    add_docs(docs=_texts(60, seed=8))
    for metric in ("cosine", "l2", "dot"):
        _same(nearest(text="cloud rain", metric=metric), _brute_force("cloud rain", 10, metric))
    assert _index(store).loads == 0  # no matrix in this process: PostgreSQL ranked them
    zero = [0.0] * DIM  # cosine to a zero vector: 1 (pgvector says NaN)

    @rx.mutation
    def add_zero(db: rx.Writer) -> int:
        doc = VecDoc(topic="z", text="zero", embedding=zero)
        db.add(doc)
        db.flush()
        assert doc.id is not None
        return doc.id

    zero_id = add_zero()
    assert nearest(text="cloud", topic="z") == [(zero_id, pytest.approx(1.0))]
    store.close()
    again = rx.open(url)  # another open finds the column as it is, and searches there
    try:
        _same(nearest(text="cloud rain"), _brute_force("cloud rain", 10, "cosine"))
        assert _index(again).loads == 0
    finally:
        again.close()


def test_a_corrupt_stored_vector_is_reported_and_the_index_recovers(url: str) -> None:
    store = _bytea_store(url)  # on PostgreSQL too: a pgvector column cannot hold 3 bytes
    try:
        _check_a_corrupt_vector(store)
        if url.startswith("postgresql"):  # the column stayed BYTEA, searched in memory
            assert _in_memory(store)
            add_docs(docs=_texts(40, seed=9))
            _same(nearest(text="fire moon"), _brute_force("fire moon", 10, "cosine"))
            assert _index(store).loads >= 1  # searched over a matrix in memory
    finally:
        store.close()


def _check_a_corrupt_vector(store: rx.Store) -> None:
    (doc_id,) = add_docs(docs=[("a", "good text")])
    with store.database.engines()[1].begin() as conn:  # behind rxnb's back: 3 bytes
        conn.execute(sa.text("UPDATE vec_doc SET embedding = :b"), {"b": b"abc"})
    with pytest.raises(rx.ArgumentError, match=r"has 3 bytes, not the 128 of Vector\(32\)"):
        nearest(text="good")

    @rx.mutation
    def repair(db: rx.Writer) -> None:  # an UPDATE statement: the ORM cannot load the row
        db.exec(sa.update(VecDoc).values(embedding=_embed("good text")))  # type: ignore[call-overload]

    repair()
    assert nearest(text="good text", k=1) == [(doc_id, pytest.approx(0.0, abs=1e-6))]

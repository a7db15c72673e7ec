"""Searching a turn's own thread for context (`retrieve=rx.agents.search_thread()`):
the earlier messages of a long conversation that the model is no longer sent.

1. The question is the thread's last user message before the turn's reply, as for a
   table search (`_retrieve` rule 1). The candidates are the thread's finished
   (`done`) messages of `roles` with text, before the reply, that the model is not
   sent anyway: not among the latest `history` messages (with `context=`, not among
   the messages it returns), and never the question itself.
2. Embeddings are stored, one row per message and model, in `rx_message_embeddings`
   (`MessageEmbedding`: the message, the model, its thread, the vector). A search
   with no candidates embeds nothing and finds nothing; otherwise it embeds the
   question and the candidates that have none for its model, in batches
   of `BATCH` texts (a message's first `EMBED_CHARS` characters), outside any
   transaction, and writes them in one transaction: later turns embed only what is
   new since. A message stored with another dimension than this search's vectors
   (the model's `size=` or `dimensions=` changed) is embedded again, its row replaced.
3. The vectors are float32 bytes, so one table holds any model's, of any dimension.
   A search reads its own thread's vectors (joined to its messages) and scores them
   exactly in numpy, ties ordered by message id: its cost grows with the thread, not
   the store, and no process keeps other threads' vectors (an `rx.Vector` column has
   one dimension and, without pgvector, keeps the whole column in every process).
4. The hits (message, role, text cut to `chars`, distance) are journaled with a table
   search's, in the turn's `retrieve` step: a resumed turn neither embeds nor searches
   again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col, select

from rxnb.agents._model import Message, MessageStatus, Role
from rxnb.agents._retrieve import CHARS, cut
from rxnb.errors import AgentError, ArgumentError
from rxnb.llm import OFFLINE_MODEL, embed
from rxnb.store import Database, Reader, Writer, own_table

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from rxnb.agents._agent import Agent

    Vector = npt.NDArray[np.float32]

BATCH = 256
"""How many texts one embedding request carries (rule 2)."""
EMBED_CHARS = 8000
"""How many characters of a message are embedded (rule 2): within common models'
input limits."""
ROLES = (Role.USER.value, Role.ASSISTANT.value)
_METRICS = ("cosine", "l2", "dot")


class MessageEmbedding(SQLModel, table=True):
    """A message's embedding, stored for searches of its thread (rule 2)."""

    __tablename__ = "rx_message_embeddings"
    __table_args__ = own_table()

    message_id: int = Field(primary_key=True)
    """The `rx_messages` row embedded."""
    model: str = Field(primary_key=True)
    """The litellm embedding model that made `vector`."""
    thread_id: str = Field(index=True)
    dim: int
    vector: bytes = Field(sa_type=sa.LargeBinary)
    """`dim` float32 numbers, little-endian."""


_MESSAGES = Message.__table__  # type: ignore[attr-defined]
_EMBEDDINGS = MessageEmbedding.__table__  # type: ignore[attr-defined]


@dataclass(frozen=True)
class Row:
    """A message the search reads (rule 1), with its stored vector if it has one for
    the search's model."""

    id: int
    role: str
    text: str
    vector: Vector | None


@dataclass(frozen=True)
class ThreadSearch:
    """What a turn searches in its own thread (`rx.agents.search_thread(...)`)."""

    k: int = 5
    model: str = OFFLINE_MODEL
    roles: tuple[str, ...] = ROLES
    chars: int = CHARS
    metric: str = "cosine"
    embed_kwargs: dict[str, Any] = field(default_factory=dict)

    def find(
        self, database: Database, agent: Agent, thread_id: str, reply_id: int
    ) -> list[dict[str, Any]]:
        """The hits the turn's `retrieve` step journals (rules 1-4)."""
        rows, window = database.read(
            lambda db: (self.rows(db, thread_id, reply_id), _window(db, agent, thread_id, reply_id))
        )[0]
        question = next((r for r in reversed(rows) if r.role == Role.USER.value), None)
        if question is None or not question.text.strip():
            return []
        candidates = [
            r
            for r in rows
            if r.role in self.roles
            and r.id not in window
            and r.id != question.id
            and r.text.strip()
        ]
        if not candidates:
            return []  # a thread the model is sent whole: nothing to embed
        vectors = self.vectors(database, thread_id, [question, *candidates])
        return self.nearest(vectors[question.id], candidates, vectors)

    def rows(self, db: Reader, thread_id: str, reply_id: int) -> list[Row]:
        """Rule 1: the thread's finished messages of `roles` and the user's before the
        reply, in order, each with its stored vector for this model."""
        m, e = _MESSAGES.c, _EMBEDDINGS.c
        query = (
            sa.select(m.id, m.role, m.text, e.vector)
            .select_from(
                _MESSAGES.outerjoin(
                    _EMBEDDINGS, sa.and_(e.message_id == m.id, e.model == self.model)
                )
            )
            .where(
                m.thread_id == thread_id,
                m.id < reply_id,
                m.status == MessageStatus.DONE.value,
                m.role.in_({*self.roles, Role.USER.value}),
            )
            .order_by(m.id)
        )
        return [
            Row(id, role, text or "", _decoded(vector))
            for id, role, text, vector in db.connection().execute(query)
        ]

    def vectors(self, database: Database, thread_id: str, rows: list[Row]) -> dict[int, Vector]:
        """Rule 2: each row's vector, embedding (and storing) those it lacks."""
        fresh = self.embedded([r for r in rows if r.vector is None])
        dim = len(next(iter(fresh.values()))) if fresh else len(_stored(rows[0]))
        stale = [r for r in rows if r.vector is not None and len(r.vector) != dim]
        fresh.update(self.embedded(stale))
        vectors = {r.id: fresh[r.id] if r.id in fresh else _stored(r) for r in rows}
        if any(len(v) != dim for v in vectors.values()):
            raise AgentError(
                f"search_thread: {self.model} returned vectors of different lengths; "
                "give it the same size or dimensions for every text"
            )
        if fresh:
            database.write(lambda db: _save(db, thread_id, self.model, fresh))
        return vectors

    def embedded(self, rows: Sequence[Row]) -> dict[int, Vector]:
        """Rule 2: `rows` embedded, `BATCH` texts a request."""
        import numpy as np

        out: dict[int, Vector] = {}
        for start in range(0, len(rows), BATCH):
            batch = rows[start : start + BATCH]
            texts = [r.text[:EMBED_CHARS] for r in batch]
            found = embed(texts, model=self.model, **self.embed_kwargs)
            for row, vector in zip(batch, found, strict=True):
                out[row.id] = np.asarray(vector, dtype=np.float32)
        return out

    def nearest(
        self, question: Vector, candidates: list[Row], vectors: dict[int, Vector]
    ) -> list[dict[str, Any]]:
        """Rule 3: the `k` candidates nearest the question, nearest first."""
        import numpy as np

        ids = np.array([r.id for r in candidates])
        matrix = np.stack([vectors[r.id] for r in candidates]).astype(np.float64)
        distance = _distances(matrix, question.astype(np.float64), self.metric)
        order = np.lexsort((ids, distance))[: self.k]
        return [_hit(candidates[i], float(distance[i]), self.chars) for i in order]


def _window(db: Reader, agent: Agent, thread_id: str, reply_id: int) -> set[int]:
    """Rule 1: the ids of the messages the model is sent for the reply anyway."""
    if agent.context is not None:
        return {m.id for m in agent.context(db, thread_id) if m.id is not None}
    latest = (
        select(Message.id)
        .where(Message.thread_id == thread_id, col(Message.id) < reply_id)
        .order_by(col(Message.id).desc())
        .limit(agent.history)
    )
    return {i for i in db.exec(latest).all() if i is not None}


def _decoded(data: bytes | None) -> Vector | None:
    import numpy as np

    return None if data is None else np.frombuffer(bytes(data), dtype="<f4")


def _stored(row: Row) -> Vector:
    assert row.vector is not None
    return row.vector


def _save(db: Writer, thread_id: str, model: str, vectors: dict[int, Vector]) -> None:
    """Rule 2: one row per message embedded by `model`, replacing one stored before."""
    ids = list(vectors)
    taken: set[int] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        taken.update(
            db.exec(
                select(MessageEmbedding.message_id).where(
                    MessageEmbedding.model == model, col(MessageEmbedding.message_id).in_(chunk)
                )
            ).all()
        )
    for message_id, vector in vectors.items():
        data = vector.astype("<f4").tobytes()
        row = db.get(MessageEmbedding, (message_id, model)) if message_id in taken else None
        if row is None:
            row = MessageEmbedding(
                message_id=message_id, model=model, thread_id=thread_id, dim=0, vector=b""
            )
        row.dim, row.vector = len(vector), data
        db.add(row)


def _distances(matrix: Any, question: Any, metric: str) -> Any:
    """Rule 3, as `db.search` measures: cosine `1 - cos` (1 for a zero vector), l2,
    or the negated dot product."""
    import numpy as np

    if metric == "l2":
        return np.linalg.norm(matrix - question, axis=1)
    dots = matrix @ question
    if metric == "dot":
        return -dots
    norms = np.linalg.norm(matrix, axis=1) * float(np.linalg.norm(question))
    cos = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 0.0)
    return 1.0 - cos


def _hit(row: Row, distance: float, chars: int) -> dict[str, Any]:
    return {
        "key": row.id,
        "role": row.role,
        "source": f"{row.role} message {row.id}",
        "text": cut(row.text, chars),
        "distance": round(distance, 6),
    }


def search_thread(
    *,
    k: int = 5,
    model: str = OFFLINE_MODEL,
    roles: Sequence[str] = ROLES,
    chars: int = CHARS,
    metric: str = "cosine",
    **embed_kwargs: Any,
) -> ThreadSearch:
    """What `rx.Agent(..., retrieve=...)` searches in the turn's own thread before its
    first model call: the `k` earlier messages (of `roles`, finished, that the model
    is not sent anyway: older than its `history` window) nearest to the user's message
    embedded by `model` (`rx.llm.embed`; other keywords go to it), each cut to `chars`
    characters. Embeddings are stored (`rx_message_embeddings`): a message is embedded
    once, when a search first needs it."""
    counts: tuple[tuple[str, Any], ...] = (("k", k), ("chars", chars))
    for label, value in counts:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(
                f"rx.agents.search_thread: {label}= is a whole number >= 1, not {value!r}"
            )
    name: Any = model
    if not isinstance(name, str) or not name:
        raise ArgumentError(
            f"rx.agents.search_thread: model= is a litellm embedding model name, not {model!r}"
        )
    given: Any = roles
    if (
        isinstance(given, str)
        or not isinstance(given, Sequence)
        or not given
        or not set(given) <= set(ROLES)
    ):
        raise ArgumentError(
            f"rx.agents.search_thread: roles= is a tuple of 'user' and/or 'assistant', "
            f"e.g. ('user',), not {roles!r:.80}"
        )
    if metric not in _METRICS:
        raise ArgumentError(
            f"rx.agents.search_thread: metric= is one of {_METRICS}, not {metric!r}"
        )
    return ThreadSearch(k, model, tuple(dict.fromkeys(given)), chars, metric, embed_kwargs)

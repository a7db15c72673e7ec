"""Retrieval: a turn that searches stored documents for context before its first model
call (`rx.Agent(..., retrieve=rx.agents.search(Doc.embedding, text=Doc.body))`).

1. The question is the text of the thread's last user message before the turn's
   first reply.
2. It is embedded outside any transaction (I/O), then `db.search` runs in a read; the
   hits (key, source, text cut to `chars`, distance) are the result of one journaled
   step, `retrieve`: a turn that resumes after a crash or a hand-over finds them in
   its journal, and neither embeds nor searches again (a document written since does
   not change what the model is told in that turn).
3. A mutation step stores them as a `system` message of the thread, its `parent_id`
   the turn's first reply, its `note` listing the sources (the chat shows it). The
   model is sent it just before that reply (`_threads`, rule 2), in this turn's model
   calls and, within `history`, later turns'. No hits: no message.

`retrieve=` may list several searches (`rx.agents.search_thread` searches the turn's
own thread, `_thread_search`): one step runs them in order and one message holds all
their hits, the documents first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import col, select

from rxnb.agents._model import Message, Role
from rxnb.errors import ArgumentError
from rxnb.execution import ActionContext
from rxnb.functions import Mutation
from rxnb.llm import OFFLINE_MODEL, embed
from rxnb.store import Database, Reader, Vector, Writer

if TYPE_CHECKING:
    from rxnb.agents._agent import Agent

CHARS = 1000
"""How many characters of each document the model is sent by default."""

_METRICS = ("cosine", "l2", "dot")


@dataclass(frozen=True, eq=False)  # where= is SQL: == would build a condition
class Retrieval:
    """What a turn searches (`rx.agents.search(...)`), checked when it is made."""

    column: Any
    """The `rx.Vector` column searched (`Doc.embedding`)."""
    text: Any
    """The column whose text the model is sent (`Doc.body`)."""
    k: int = 5
    where: Any = None
    model: str = OFFLINE_MODEL
    metric: str = "cosine"
    title: Any = None
    """A column naming each document in the note and the message (else `table key`)."""
    chars: int = CHARS
    embed_kwargs: dict[str, Any] = field(default_factory=dict)

    def question(self, db: Reader, thread_id: str, reply_id: int) -> str:
        """Rule 1."""
        row = db.exec(
            select(Message)
            .where(
                Message.thread_id == thread_id,
                Message.role == Role.USER.value,
                col(Message.id) < reply_id,
            )
            .order_by(col(Message.id).desc())
            .limit(1)
        ).first()
        return row.text if row is not None else ""

    def find(
        self, database: Database, agent: Agent, thread_id: str, reply_id: int
    ) -> list[dict[str, Any]]:
        """Rules 1-2: the hits the turn's `retrieve` step journals."""
        question = database.read(lambda db: self.question(db, thread_id, reply_id))[0]
        if not question.strip():
            return []
        vector = embed([question], model=self.model, **self.embed_kwargs)[0]
        return database.read(lambda db: self.hits(db, vector))[0]

    def hits(self, db: Reader, vector: list[float]) -> list[dict[str, Any]]:
        """Rule 2's search, as what the step journals."""
        found = db.search(self.column, vector, k=self.k, where=self.where, metric=self.metric)  # type: ignore[arg-type]
        table = self.column.class_.__tablename__
        out = []
        for hit in found:
            key = sa.inspect(hit.row).identity[0]
            key = key if isinstance(key, int | str) else str(key)  # journaled as JSON
            name = getattr(hit.row, self.title.key) if self.title is not None else None
            out.append(
                {
                    "key": key,
                    "source": str(name) if name else f"{table} {key}",
                    "text": cut(str(getattr(hit.row, self.text.key) or ""), self.chars),
                    "distance": round(hit.distance, 6),
                }
            )
        return out


def search(
    column: Any,
    *,
    text: Any,
    k: int = 5,
    where: Any = None,
    model: str = OFFLINE_MODEL,
    metric: str = "cosine",
    title: Any = None,
    chars: int = CHARS,
    **embed_kwargs: Any,
) -> Retrieval:
    """What `rx.Agent(..., retrieve=...)` searches before each turn's first model call:
    the `k` rows whose `column` (an `rx.Vector`) is nearest to the user's message
    embedded by `model` (`rx.llm.embed`; other keywords go to it), among those matching
    `where`; the model is sent each one's `text` column, cut to `chars` characters."""
    owner: Any = getattr(column, "class_", None)
    columns = getattr(getattr(column, "property", None), "columns", None)
    if owner is None or not columns or not isinstance(columns[0].type, Vector):
        raise ArgumentError(
            f"rx.agents.search takes a vector column of a table class, e.g. Doc.embedding "
            f"(Field(sa_type=rx.Vector(dim))), not {column!r:.80}"
        )
    for label, value in (("text", text), ("title", title)):
        if value is None and label == "title":
            continue
        if getattr(value, "class_", None) is not owner or not hasattr(value, "key"):
            raise ArgumentError(
                f"rx.agents.search: {label}= is a column of {owner.__name__} holding the "
                f"documents' {label}, e.g. {owner.__name__}.body, not {value!r:.80}"
            )
    counts: tuple[tuple[str, Any], ...] = (("k", k), ("chars", chars))
    for label, value in counts:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ArgumentError(f"rx.agents.search: {label}= is a whole number >= 1, not {value!r}")
    if where is not None and not isinstance(where, sa.ColumnElement):
        raise ArgumentError(
            f"rx.agents.search: where= is a SQL condition such as Doc.topic == 'news', not "
            f"{where!r:.80}"
        )
    name: Any = model
    if not isinstance(name, str) or not name:
        raise ArgumentError(
            f"rx.agents.search: model= is a litellm embedding model name, not {model!r}"
        )
    if metric not in _METRICS:
        raise ArgumentError(f"rx.agents.search: metric= is one of {_METRICS}, not {metric!r}")
    return Retrieval(column, text, k, where, model, metric, title, chars, embed_kwargs)


def cut(text: str, chars: int) -> str:
    """`text` on one paragraph's worth of whitespace, cut at a word within `chars`."""
    text = " ".join(text.split())
    if len(text) <= chars:
        return text
    head = text[: chars - 1]
    space = len(head) if text[len(head)] == " " else head.rfind(" ")  # a whole word
    return (head[:space] if space > chars // 2 else head).rstrip() + "…"


def retrieve(ctx: ActionContext, agent: Agent, thread_id: str, reply_id: int) -> list[Any]:
    """Rule 2: the step; the hits it journals, each search's in the order given."""
    searches = agent.retrieve
    assert searches is not None
    hits: list[Any] = []
    for search in searches:
        hits.extend(search.find(ctx.store.database, agent, thread_id, reply_id))
    return hits


def context_text(hits: list[dict[str, Any]]) -> str:
    """Rule 3: what the model is told: the documents, then the thread's own earlier
    messages (`rx.agents.search_thread`, hits with a `role`)."""
    documents = [h for h in hits if "role" not in h]
    earlier = [h for h in hits if "role" in h]
    parts = []
    if documents:
        parts.append(
            "Context retrieved for the user's next message (the nearest stored documents, "
            "nearest first). Answer from it where it is relevant and name the sources you use."
        )
        parts += [f"[{i}] {h['source']}\n{h['text']}" for i, h in enumerate(documents, 1)]
    if earlier:
        parts.append(
            "Earlier messages of this conversation, retrieved for the user's next message "
            "(the nearest, nearest first; older than the messages you are sent). Use them "
            "where they are relevant."
        )
        first = len(documents) + 1
        parts += [f"[{i}] {h['source']}\n{h['text']}" for i, h in enumerate(earlier, first)]
    return "\n\n".join(parts)


def _note(hits: list[dict[str, Any]]) -> str:
    """Rule 3: the context message's note, naming the sources."""
    parts = []
    for what, found in (
        ("document", [h for h in hits if "role" not in h]),
        ("earlier message", [h for h in hits if "role" in h]),
    ):
        if found:
            sources = ", ".join(str(h["source"]) for h in found)
            parts.append(f"{len(found)} {what}{'s' if len(found) != 1 else ''}: {sources}")
    return "retrieved " + "; ".join(parts)


def _add_context(
    db: Writer, thread_id: str, reply_id: int, run_id: str | None, hits: list[dict[str, Any]]
) -> int:
    """Rule 3: the context as a `system` message for reply `reply_id`; its id."""
    message = Message(
        thread_id=thread_id,
        role=Role.SYSTEM.value,
        text=context_text(hits),
        run_id=run_id,
        parent_id=reply_id,
        note=_note(hits),
    )
    db.add(message)
    db.flush()
    assert message.id is not None
    return message.id


add_context: Mutation[..., int] = Mutation(_add_context)

"""Agents that search their own thread for context (`retrieve=rx.agents.search_thread()`):
a fact that fell out of the `history` window reaches the model, the messages'
embeddings are stored so a later turn embeds only what is new, a resumed turn does
not search again, the hits are brute force's over the thread alone, and bad
arguments say what to fix. Offline models only (`rxnb/scripted`, `rxnb/embed`);
SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from agent_jobs import RetrievalDoc
from polling import until
from sqlmodel import col, select

import rxnb as rx
from rxnb.agents import Message, MessageEmbedding
from rxnb.workflows import JournalEntry

FACT = "My sister Zelda moved to Reykjavik last spring."
DECOY = "My sister Brunhilde moved to Oslo last spring."
QUESTION = "Where did my sister Zelda move to?"


def seed(store: rx.Store, thread_id: str, count: int, fact: str) -> None:
    """`count` finished messages, user and assistant in turn, the third one `fact`."""

    def write(db: rx.Writer) -> None:
        for i in range(count):
            role = "user" if i % 2 == 0 else "assistant"
            text = fact if i == 2 else f"{role} small talk {i} about the weather"
            db.add(Message(thread_id=thread_id, role=role, text=text))

    store.database.write(write)


def context_message(thread_id: str, turn: int = 0) -> Message:
    """The context stored for the `turn`-th turn of the thread."""
    return [m for m in rx.agents.messages(thread_id) if m.role == "system"][turn]


def embedded(store: rx.Store, thread_id: str) -> dict[int, int]:
    """The thread's stored embeddings: message id -> dimension."""
    rows = store.database.read(
        lambda db: db.exec(
            select(MessageEmbedding).where(MessageEmbedding.thread_id == thread_id)
        ).all()
    )[0]
    return {r.message_id: r.dim for r in rows}


def brute_force(
    store: rx.Store,
    thread_id: str,
    before: int,
    history: int,
    k: int,
    roles: tuple[str, ...] = ("user", "assistant"),
) -> list[str]:
    """The sources of the `k` messages nearest the last question before message
    `before`, worked out here from every message of the thread: cosine over fresh
    embeddings of its messages of `roles` older than the window."""
    rows = store.database.read(
        lambda db: db.exec(
            select(Message)
            .where(Message.thread_id == thread_id, col(Message.id) < before)
            .order_by(col(Message.id))
        ).all()
    )[0]
    question = [m for m in rows if m.role == "user"][-1]
    older = [m for m in rows[:-history] if m.role in roles and m.text]
    vectors = np.array(rx.llm.embed([m.text for m in older]), dtype=np.float64)
    q = np.array(rx.llm.embed([question.text])[0], dtype=np.float64)
    distances = 1 - vectors @ q / (np.linalg.norm(vectors, axis=1) * np.linalg.norm(q))
    order = sorted(range(len(older)), key=lambda i: (round(distances[i], 6), older[i].id))
    return [f"{older[i].role} message {older[i].id}" for i in order[:k]]


def test_a_fact_out_of_the_window_reaches_the_model(
    store: rx.Store, requests: list[list[dict[str, Any]]], embeds: list[list[str]]
) -> None:
    seed(store, "t-long", 150, FACT)
    seed(store, "t-other", 150, DECOY)
    agent = rx.Agent(
        "rememberer",
        model="rxnb/scripted",
        history=10,
        retrieve=rx.agents.search_thread(k=3),
        script="Reykjavik.",
    )
    # Another thread searched first: its embeddings are stored beside this one's.
    agent.send("t-other", QUESTION).result(timeout=30)
    assert agent.send("t-long", QUESTION).result(timeout=30) == "Reykjavik."

    sent = requests[-1]
    assert len(sent) == 11 and sent[-1]["role"] == "system"  # the window, then the context
    assert FACT not in [m["content"] for m in sent[:-1]], "the fact is older than the window"
    context = sent[-1]["content"]
    assert context.startswith("Earlier messages of this conversation")
    assert context.split("\n\n")[1].endswith(FACT)  # nearest first
    assert "Brunhilde" not in context
    stored = context_message("t-long")
    assert stored.text == context and stored.note is not None
    reply = rx.agents.messages("t-long")[-2]
    assert stored.parent_id == reply.id
    assert reply.id is not None
    assert stored.note == "retrieved 3 earlier messages: " + ", ".join(
        brute_force(store, "t-long", reply.id, history=10, k=3)
    )
    # The question and the 141 messages older than the window (the question and 9).
    assert embeds[-1][0] == QUESTION and len(embeds[-1]) == 142
    assert len(embedded(store, "t-long")) == 142
    assert set(embedded(store, "t-long").values()) == {384}


def test_a_later_turn_embeds_only_the_new_messages(
    store: rx.Store, requests: list[list[dict[str, Any]]], embeds: list[list[str]]
) -> None:
    seed(store, "t-grow", 150, FACT)
    agent = rx.Agent(
        "growing",
        model="rxnb/scripted",
        history=10,
        retrieve=rx.agents.search_thread(k=2, roles=("user",)),
        script="Noted.",
    )
    agent.send("t-grow", "Tell me about the weather").result(timeout=30)
    first = embedded(store, "t-grow")
    agent.send("t-grow", QUESTION).result(timeout=30)
    after = embedded(store, "t-grow")

    # The new question, and the user's message among the three seeded ones that the
    # first turn's question, reply and context pushed out of the window (141-143).
    assert embeds[-1] == [QUESTION, "user small talk 142 about the weather"]
    assert len(after) == len(first) + 2 and set(first) <= set(after)
    texts = [t for call in embeds for t in call]
    assert len(texts) == len(set(texts))
    assert FACT in context_message("t-grow", 1).text
    assert requests[-1][-1]["content"] == context_message("t-grow", 1).text
    reply = rx.agents.messages("t-grow")[-2]
    assert reply.id is not None
    nearest = brute_force(store, "t-grow", reply.id, history=10, k=2, roles=("user",))
    assert context_message("t-grow", 1).note == "retrieved 2 earlier messages: " + ", ".join(
        nearest
    )


def test_a_resumed_turn_does_not_search_again(
    url: str, requests: list[list[dict[str, Any]]], embeds: list[list[str]]
) -> None:
    words = " ".join(f"w{i}" for i in range(200))  # litellm stops a stream that repeats
    agent = rx.Agent(
        "slow-rememberer",
        model="rxnb/scripted",
        history=4,
        retrieve=rx.agents.search_thread(k=1),
        script=words,
        delay=0.01,
    )
    store = rx.open(url)
    seed(store, "t-resume", 20, FACT)
    run = agent.send("t-resume", QUESTION)
    until(lambda: reply_of("t-resume").status == "streaming", timeout=30)
    store.close()  # a hand-over, as when the kernel restarts
    store = rx.open(url)
    try:
        assert rx.RunHandle(run.id, store).result(timeout=60) == words
        assert len(requests) == 2, "the model call ran again"
        assert requests[0][-1] == requests[1][-1] and FACT in requests[1][-1]["content"]
        assert len(embeds) == 1, "the resumed turn embedded again"
        journal = store.database.read(
            lambda db: [
                (e.kind, e.name)
                for e in db.exec(
                    select(JournalEntry)
                    .where(JournalEntry.run_id == run.id)
                    .order_by(col(JournalEntry.seq))
                ).all()
            ]
        )[0]
        assert journal == [
            ("step", "retrieve"),
            ("mutation", "rxnb.agents._retrieve._add_context"),
            ("step", "model"),
        ]
        assert [m.role for m in rx.agents.messages("t-resume")][-2:] == ["assistant", "system"]
    finally:
        store.close()


@rx.mutation
def add_doc(db: rx.Writer, title: str, body: str, vector: list[float]) -> None:
    db.add(RetrievalDoc(title=title, topic="any", body=body, embedding=vector))


def reply_of(thread_id: str) -> Message:
    return [m for m in rx.agents.messages(thread_id) if m.role == "assistant"][-1]


def test_a_table_and_the_thread_searched_together(
    store: rx.Store, requests: list[list[dict[str, Any]]]
) -> None:
    body = "Reykjavik is the capital of Iceland."
    add_doc(title="city", body=body, vector=rx.llm.embed([body])[0])
    seed(store, "t-both", 30, FACT)
    agent = rx.Agent(
        "both",
        model="rxnb/scripted",
        history=6,
        retrieve=[
            rx.agents.search(
                RetrievalDoc.embedding, text=RetrievalDoc.body, title=RetrievalDoc.title, k=1
            ),
            rx.agents.search_thread(k=1),
        ],
        script="Iceland.",
    )
    agent.send("t-both", QUESTION).result(timeout=30)
    context = requests[-1][-1]["content"]
    parts = context.split("\n\n")
    assert parts[1] == f"[1] city\n{body}"
    assert parts[2].startswith("Earlier messages of this conversation")
    assert parts[3].startswith("[2] user message ") and parts[3].endswith(FACT)
    assert context_message("t-both").note.startswith(
        "retrieved 1 document: city; 1 earlier message: user message "
    )  # type: ignore[union-attr]


def test_another_dimension_is_embedded_again(store: rx.Store, embeds: list[list[str]]) -> None:
    seed(store, "t-dim", 12, FACT)
    for name, size in (("dim-384", 384), ("dim-64", 64)):
        agent = rx.Agent(
            name,
            model="rxnb/scripted",
            history=2,
            retrieve=rx.agents.search_thread(k=2, size=size),  # the last question too
            script="Ok.",
        )
        agent.send("t-dim", f"{QUESTION} ({name})").result(timeout=30)
        assert set(embedded(store, "t-dim").values()) == {size}
        assert FACT in context_message("t-dim", -1).text
    assert len(embeds) == 3  # 384: all; 64: the new ones, then the 384-long ones again


def test_a_thread_the_model_is_sent_whole_embeds_nothing(
    store: rx.Store, embeds: list[list[str]]
) -> None:
    seed(store, "t-short", 6, FACT)
    agent = rx.Agent(
        "short", model="rxnb/scripted", retrieve=rx.agents.search_thread(), script="Ok."
    )
    agent.send("t-short", QUESTION).result(timeout=30)
    assert embeds == [] and embedded(store, "t-short") == {}
    assert [m.role for m in rx.agents.messages("t-short")][-2:] == ["user", "assistant"]


def test_bad_arguments_say_what_to_fix() -> None:
    cases: list[tuple[dict[str, Any], str]] = [
        ({"k": 0}, "k= is a whole number >= 1"),
        ({"chars": True}, "chars= is a whole number >= 1"),
        ({"model": ""}, "model= is a litellm embedding model name"),
        ({"roles": "user"}, r"roles= is a tuple of 'user' and/or 'assistant', e.g. \('user',\)"),
        ({"roles": ("user", "tool")}, "roles= is a tuple"),
        ({"roles": ()}, "roles= is a tuple"),
        ({"metric": "ip"}, "metric= is one of"),
    ]
    for kwargs, message in cases:
        with pytest.raises(rx.ArgumentError, match=f"rx.agents.search_thread: {message}"):
            rx.agents.search_thread(**kwargs)
    with pytest.raises(rx.ArgumentError, match=r"or rx.agents.search_thread\(\) returns, or a"):
        rx.Agent("bad-thread-retrieve", model="rxnb/scripted", retrieve=[3])  # type: ignore[list-item]

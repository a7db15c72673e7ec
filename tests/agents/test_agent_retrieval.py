"""Agents that search stored documents for context (`retrieve=rx.agents.search(...)`):
the model is sent the nearest documents, the search is a journaled step that a turn
resumed after a hand-over or a kill -9 of its worker does not run again, and bad
definitions say what to fix. Offline models only
(`rxnb/scripted`, `rxnb/embed`); SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import agent_jobs
import pytest
from agent_jobs import RetrievalDoc
from polling import until
from run_procs import Processes
from sqlmodel import select

import rxnb as rx
from rxnb.agents import Message
from rxnb.workflows import JournalEntry

DOCS = [
    ("bread", "food", "Sourdough bread needs a starter, flour, water and salt."),
    ("stocks", "money", "The stock market fell as quarterly earnings disappointed."),
    ("river", "nature", "A river carries stones and sand down to the sea."),
    ("soup", "food", "Tomato soup: tomatoes, onion, garlic, simmered and blended."),
]


@rx.mutation
def add_docs(db: rx.Writer, docs: list[list[str]], vectors: list[list[float]]) -> None:
    for (title, topic, body), vector in zip(docs, vectors, strict=True):
        db.add(RetrievalDoc(title=title, topic=topic, body=body, embedding=vector))


def store_docs(docs: list[tuple[str, str, str]]) -> None:
    add_docs(docs=[list(d) for d in docs], vectors=rx.llm.embed([d[2] for d in docs]))


def test_the_model_is_sent_the_nearest_documents(
    store: rx.Store, requests: list[list[dict[str, Any]]], embeds: list[list[str]]
) -> None:
    store_docs(DOCS)
    agent = rx.Agent(
        "librarian",
        model="rxnb/scripted",
        instructions="Answer from the documents.",
        retrieve=rx.agents.search(
            RetrievalDoc.embedding,
            text=RetrievalDoc.body,
            title=RetrievalDoc.title,
            k=2,
            where=RetrievalDoc.topic == "food",
            chars=40,
        ),
        script="Use a starter.",
    )
    assert agent.send("t-lib", "How do I bake sourdough bread?").result(timeout=30) == (
        "Use a starter."
    )
    assert embeds == [["How do I bake sourdough bread?"]]
    sent = requests[-1]
    assert [m["role"] for m in sent] == ["system", "user", "system"]
    context = sent[2]["content"]
    # The nearest food documents, nearest first, cut at a word within 40 characters.
    assert "[1] bread\nSourdough bread needs a starter, flour,…" in context
    assert "[2] soup\nTomato soup:" in context
    assert "stock market" not in context and "river" not in context  # where= holds
    rows = rx.agents.messages("t-lib")
    assert [(m.role, m.status) for m in rows] == [
        ("user", "done"),
        ("assistant", "done"),
        ("system", "done"),
    ]
    assert rows[2].note == "retrieved 2 documents: bread, soup"
    assert rows[2].parent_id == rows[1].id and rows[2].text == context

    # The next turn searches for its own message; the first turn's context stays
    # before the reply it was retrieved for.
    agent.send("t-lib", "And tomato soup?").result(timeout=30)
    sent = requests[-1]
    assert [m["role"] for m in sent] == ["system", "user", "system", "assistant", "user", "system"]
    assert sent[2]["content"] == context and sent[3]["content"] == "Use a starter."
    assert "[1] soup" in sent[5]["content"]
    assert embeds[-1] == ["And tomato soup?"]


def test_context_keeps_its_meaning_and_the_turn_its_retrieval(
    store: rx.Store, requests: list[list[dict[str, Any]]]
) -> None:
    store_docs(DOCS)

    def last_question(db: rx.Reader, thread_id: str) -> list[Message]:
        asked = select(Message).where(Message.thread_id == thread_id, Message.role == "user")
        return list(db.exec(asked).all())[-1:]

    agent = rx.Agent(
        "forgetful-librarian",
        model="rxnb/scripted",
        context=last_question,
        retrieve=rx.agents.search(RetrievalDoc.embedding, text=RetrievalDoc.body, k=1),
        script="Noted.",
    )
    agent.send("t-ctx", "Tell me about the stock market").result(timeout=30)
    agent.send("t-ctx", "What does a river carry?").result(timeout=30)
    # Only the last question, as context= says, and the context retrieved for it
    # (the first turn's went with the reply it was retrieved for).
    sent = requests[-1]
    assert [(m["role"], m["content"][:24]) for m in sent] == [
        ("user", "What does a river carry?"),
        ("system", "Context retrieved for th"),
    ]
    assert "A river carries stones" in sent[1]["content"]


def test_no_hits_send_no_context(store: rx.Store, requests: list[list[dict[str, Any]]]) -> None:
    store_docs(DOCS)
    agent = rx.Agent(
        "nothing-found",
        model="rxnb/scripted",
        retrieve=rx.agents.search(
            RetrievalDoc.embedding, text=RetrievalDoc.body, where=RetrievalDoc.topic == "none"
        ),
        script="I do not know.",
    )
    assert agent.send("t-none", "Anything?").result(timeout=30) == "I do not know."
    assert [m["role"] for m in requests[-1]] == ["user"]
    assert [m.role for m in rx.agents.messages("t-none")] == ["user", "assistant"]


def test_a_resumed_turn_does_not_search_again(
    url: str, requests: list[list[dict[str, Any]]], embeds: list[list[str]]
) -> None:
    words = " ".join(f"w{i}" for i in range(200))  # litellm stops a stream that repeats
    agent = rx.Agent(
        "slow-librarian",
        model="rxnb/scripted",
        retrieve=rx.agents.search(RetrievalDoc.embedding, text=RetrievalDoc.body, k=1),
        script=words,
        delay=0.01,
    )
    store = rx.open(url)
    store_docs(DOCS)
    run = agent.send("t-resume", "What does a river carry?")
    until(lambda: rx.agents.messages("t-resume")[1].status == "streaming", timeout=30)
    # A document nearer to the question, written after the search: the resumed turn
    # must not see it (its search is journaled).
    store_docs([("river2", "nature", "What does a river carry? A river carries water.")])
    store.close()  # a hand-over, as when the kernel restarts
    store = rx.open(url)
    try:
        assert rx.RunHandle(run.id, store).result(timeout=60) == words
        assert len(requests) == 2, "the model call ran again"
        first, second = (r[-1]["content"] for r in requests)
        assert first == second and "[1] agent_test_retrieval_doc 3\n" in first
        assert "A river carries stones and sand down to the sea." in second
        assert "river2" not in second and "carries water" not in second
        assert embeds == [["What does a river carry?"]]
        journal = store.database.read(
            lambda db: [
                (e.kind, e.name)
                for e in db.exec(
                    select(JournalEntry)
                    .where(JournalEntry.run_id == run.id)
                    .order_by(JournalEntry.seq)  # type: ignore[arg-type]
                ).all()
            ]
        )[0]
        assert journal == [
            ("step", "retrieve"),
            ("mutation", "rxnb.agents._retrieve._add_context"),
            ("step", "model"),
        ]
        rows = rx.agents.messages("t-resume")
        assert [m.role for m in rows] == ["user", "assistant", "system"]
        assert rows[1].note == "resumed after its store was closed (attempt 2)"
        assert rows[2].text == first and rows[2].parent_id == rows[1].id
    finally:
        store.close()


@pytest.fixture
def queuing(url: str) -> Iterator[rx.Store]:
    """A store this process only queues runs in: the workers run them."""
    os.environ["RXNB_EXECUTE"] = "0"
    try:
        store = rx.open(url)
    finally:
        del os.environ["RXNB_EXECUTE"]
    yield store
    store.close()


def test_a_turn_killed_after_its_search_resumes_without_searching_again(
    url: str, queuing: rx.Store, procs: Processes, tmp_path: Path
) -> None:
    effects = tmp_path / "effects"
    procs.env.update(
        RXNB_TEST_EFFECTS=str(effects), RXNB_TEST_COUNT_EMBEDS="1", RXNB_LEASE_SECONDS="2"
    )
    store_docs(DOCS)
    run = agent_jobs.reader.send("t-kill-search", "What does a river carry?")
    first = procs.worker(url, "agent_jobs")
    until(lambda: rx.agents.messages("t-kill-search")[1].status == "streaming", timeout=60)
    first.kill()  # kill -9, while the model call streams
    first.wait(10)
    store_docs([("river2", "nature", "What does a river carry? A river carries water.")])
    second = procs.worker(url, "agent_jobs")
    assert run.result(timeout=60).startswith("w0 w1"), procs.output(second)
    assert run.run().crashes == 1
    assert agent_jobs.effects(effects) == ["embed What does a river carry?"]
    rows = rx.agents.messages("t-kill-search")
    assert [(m.role, m.status) for m in rows] == [
        ("user", "done"),
        ("assistant", "done"),
        ("system", "done"),
    ]
    assert rows[2].note == "retrieved 1 document: river"  # not river2, written since
    journal = queuing.database.read(
        lambda db: [
            e.name
            for e in db.exec(
                select(JournalEntry).where(JournalEntry.run_id == run.id).order_by(JournalEntry.seq)  # type: ignore[arg-type]
            ).all()
        ]
    )[0]
    assert journal == ["retrieve", "rxnb.agents._retrieve._add_context", "model"]


def test_bad_definitions_say_what_to_fix() -> None:
    search = rx.agents.search
    doc = RetrievalDoc
    cases: list[tuple[dict[str, Any], str]] = [
        ({"column": doc.body, "text": doc.body}, "a vector column of a table class"),
        ({"column": "embedding", "text": doc.body}, "a vector column of a table class"),
        ({"column": doc.embedding, "text": "body"}, "text= is a column of RetrievalDoc"),
        ({"column": doc.embedding, "text": doc.body, "title": 3}, "title= is a column"),
        ({"column": doc.embedding, "text": doc.body, "k": 0}, "k= is a whole number >= 1"),
        ({"column": doc.embedding, "text": doc.body, "chars": True}, "chars= is a whole"),
        ({"column": doc.embedding, "text": doc.body, "where": "topic"}, "where= is a SQL"),
        ({"column": doc.embedding, "text": doc.body, "metric": "ip"}, "metric= is one of"),
        ({"column": doc.embedding, "text": doc.body, "model": ""}, "model= is a litellm"),
    ]
    for kwargs, message in cases:
        column = kwargs.pop("column")
        with pytest.raises(rx.ArgumentError, match=message):
            search(column, **kwargs)
    with pytest.raises(rx.ArgumentError, match=r"retrieve= is what rx.agents.search"):
        rx.Agent("bad-retrieve", model="rxnb/scripted", retrieve=doc.embedding)  # type: ignore[arg-type]

"""Tools and agents of the agents tests, importable by worker processes too.

Tools append what they do to the file named by RXNB_TEST_EFFECTS (one line per start
and end), so a test counts how many times each ran, whichever process ran it. The
model of `helper` is the loopback OpenAI-compatible server at RXNB_TEST_API_BASE when
that is set (litellm's real HTTP path), else the offline `rxnb/scripted`.
"""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from sqlmodel import Field, SQLModel, select

import rxnb as rx

GATE = threading.Event()


def effect(line: str) -> None:
    path = os.environ.get("RXNB_TEST_EFFECTS")
    if path:
        with open(path, "a") as out:
            out.write(line + "\n")


def effects(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


@rx.tool
def weather(city: str) -> str:
    """Today's weather in `city`."""
    effect(f"start {city}")
    time.sleep(float(os.environ.get("RXNB_TEST_TOOL_SECONDS", "0")))
    effect(f"end {city}")
    return f"sunny in {city}"


@rx.tool(approval=True)
def send_email(to: str, body: str) -> str:
    """Send an email."""
    effect(f"email {to}")
    return f"sent to {to}"


@rx.tool
def explode(reason: str) -> str:
    """Always fails."""
    raise ValueError(f"the tool broke: {reason}")


@rx.tool
def count(n: int) -> int:
    """Counts to n."""
    return n


def model() -> dict[str, object]:
    base = os.environ.get("RXNB_TEST_API_BASE")
    if base:
        return {"model": "openai/fake", "api_base": base, "api_key": "sk-test-agent"}
    return {"model": "rxnb/scripted", "delay": 0.0}


helper = rx.Agent(
    "helper",
    instructions="Be brief.",
    tools=[weather, send_email, explode, count],
    max_steps=4,
    **model(),  # type: ignore[arg-type]
)


class Verdict(BaseModel):
    city: str
    sunny: bool


mailer = rx.Agent(
    "mailer",
    model="rxnb/scripted",
    tools=[send_email],
    delay=0.0,
    turns=[
        {
            "script": "I will send it.",
            "tool_calls": [
                {"name": "send_email", "arguments": {"to": "ana@example.com", "body": "hi"}}
            ],
        },
        {"script": "Done."},
    ],
)


@rx.action
def hold(ctx: rx.ActionContext, release: str) -> str:
    """Holds its thread until the file `release` exists (or it is cancelled)."""
    effect("hold start")
    while not os.path.exists(release):
        if ctx.wait(0.02):
            return "cancelled"
    effect("hold end")
    return "released"


class Note(SQLModel, table=True):
    """A table the store tools read and write."""

    __tablename__ = "agent_test_note"
    id: int | None = Field(default=None, primary_key=True)
    text: str


@rx.query
def notes(db: rx.Reader, prefix: str = "") -> list[str]:
    """The notes starting with `prefix`."""
    return [n.text for n in db.exec(select(Note)).all() if n.text.startswith(prefix)]


@rx.mutation
def add_note(db: rx.Writer, text: str) -> int:
    """Store a note; its id."""
    note = Note(text=text)
    db.add(note)
    db.flush()
    assert note.id is not None
    return note.id


@rx.action
def shout(ctx: rx.ActionContext, text: str) -> str:
    """The text in capitals, as a run of its own."""
    return text.upper()


class RetrievalDoc(SQLModel, table=True):
    """Documents the retrieving agents search."""

    __tablename__ = "agent_test_retrieval_doc"
    id: int | None = Field(default=None, primary_key=True)
    title: str
    topic: str = Field(index=True)
    body: str
    embedding: list[float] | None = Field(default=None, sa_type=rx.Vector(384))


if os.environ.get("RXNB_TEST_COUNT_EMBEDS"):  # a worker that says what it embeds
    from rxnb.agents import _retrieve

    _embed = _retrieve.embed

    def _counted(texts: list[str], **kwargs: Any) -> list[list[float]]:
        effect(f"embed {' | '.join(texts)}")
        return _embed(texts, **kwargs)

    _retrieve.embed = _counted  # type: ignore[assignment]


reader = rx.Agent(
    "reader",
    model="rxnb/scripted",
    retrieve=rx.agents.search(
        RetrievalDoc.embedding, text=RetrievalDoc.body, title=RetrievalDoc.title, k=1
    ),
    script=" ".join(f"w{i}" for i in range(300)),  # litellm stops a stream that repeats
    delay=0.01,
)

"""The chat app of `01_chat.ipynb`: one table, one query, one mutation, one action.

It lives in a module so that a worker can run the generations while no notebook is
open: `rxnb worker --import chat_app` in this folder.

The model is `rxnb/scripted` (offline, no key), set by `RXNB_CHAT_MODEL`; any litellm
model name works too (`openai/gpt-4o-mini` with `OPENAI_API_KEY` set), and then the
whole thread is sent as the conversation.
"""

from __future__ import annotations

import os
import time

from sqlmodel import Field, SQLModel, select

import rxnb as rx

MODEL = os.environ.get("RXNB_CHAT_MODEL", "rxnb/scripted")
DELAY = float(os.environ.get("RXNB_CHAT_DELAY", "0.06"))
"""Seconds per token of the offline model: slow enough to watch, and to abort."""


class Message(SQLModel, table=True):
    __tablename__ = "chat_message"

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str
    content: str = ""
    status: str = "done"  # pending | streaming | done | cancelled | failed
    created_at: float = Field(default_factory=time.time)


@rx.query
def messages(db: rx.Reader, thread_id: str) -> list[Message]:
    return db.exec(select(Message).where(Message.thread_id == thread_id).order_by(Message.id)).all()  # type: ignore[arg-type]


@rx.mutation
def send(db: rx.Writer, thread_id: str, text: str) -> int:
    """Store the user's message and a pending reply; the reply's generation is
    scheduled in the same transaction, so it exists if and only if they do."""
    reply_id = add_turn(db, thread_id, text)
    db.schedule(generate, message_id=reply_id)
    return reply_id


@rx.mutation
def ask(db: rx.Writer, thread_id: str, text: str) -> int:
    """Like `send`, without scheduling the reply: start `generate` yourself."""
    return add_turn(db, thread_id, text)


def add_turn(db: rx.Writer, thread_id: str, text: str) -> int:
    """The user's message and an empty assistant reply after it; the reply's id."""
    text = text.strip()
    if not text:
        raise rx.RxnbError("send: the message is empty; type something first")
    if len(text) > 20_000:
        raise rx.RxnbError(f"send: the message has {len(text)} characters; keep it under 20,000")
    db.add(Message(thread_id=thread_id, role="user", content=text))
    reply = Message(thread_id=thread_id, role="assistant", status="pending")
    db.add(reply)
    db.flush()
    assert reply.id is not None
    return reply.id


@rx.query
def history(db: rx.Reader, message_id: int) -> list[dict[str, str]]:
    """The conversation before `message_id`, as the model is sent it."""
    reply = db.get(Message, message_id)
    if reply is None:
        return []
    rows = db.exec(
        select(Message)
        .where(Message.thread_id == reply.thread_id, Message.id < message_id)  # type: ignore[operator]
        .order_by(Message.id)  # type: ignore[arg-type]
    ).all()
    return [{"role": m.role, "content": m.content} for m in rows if m.content]


@rx.action
def generate(ctx: rx.ActionContext, message_id: int) -> str:
    """Stream the reply to the conversation into message `message_id`."""
    conversation = ctx.query(history, message_id=message_id)
    options = {}
    if MODEL.startswith("rxnb/"):
        question = conversation[-1]["content"] if conversation else ""
        options = {"script": offline_answer(question), "delay": DELAY}
    return rx.llm.stream_into(
        ctx, Message, message_id, model=MODEL, messages=conversation, **options
    )


def offline_answer(question: str) -> str:
    """What the offline model says: a few paragraphs of markdown about the question."""
    return (
        f"You asked: *{question}*\n\n"
        "This answer comes from rxnb's offline model, a few words at a time. Every "
        "word is written to the store as it arrives, so:\n\n"
        "- a **second window** on this notebook shows the same text, live;\n"
        "- **Abort** in either window cancels the generation, and both show where it "
        "stopped;\n"
        "- **reloading** the page loses nothing: the widget resumes from the store;\n"
        "- **restarting** the kernel loses nothing either: the reply starts again, in "
        "`rxnb worker` if one runs, else here once you run the cells again.\n\n"
        "```python\n"
        "rx.chat('demo', send=send, messages=messages)\n"
        "```\n\n"
        "Set `RXNB_CHAT_MODEL` to any litellm model name to talk to a real model; the "
        "provider's key stays in its environment variable, never in the store or the "
        "notebook."
    )

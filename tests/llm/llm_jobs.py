"""Rows and actions for the llm tests (importable by subprocesses too)."""

from __future__ import annotations

from typing import Any

from sqlmodel import Field, SQLModel

import rxnb as rx
from rxnb import llm


class Reply(SQLModel, table=True):
    __tablename__ = "t_reply"
    id: int | None = Field(default=None, primary_key=True)
    content: str = ""
    status: str = "pending"


@rx.mutation
def new_reply(db: rx.Writer) -> int:
    reply = Reply()
    db.add(reply)
    db.flush()
    assert reply.id is not None
    return reply.id


@rx.query
def reply(db: rx.Reader, reply_id: int) -> dict[str, Any] | None:
    row = db.get(Reply, reply_id)
    return None if row is None else {"content": row.content, "status": row.status}


@rx.action
def generate(
    ctx: rx.ActionContext,
    reply_id: int,
    script: str,
    delay: float = 0.0,
    chunking: str = "clause",
    throttle_ms: float = 100,
) -> str:
    return from_script(
        ctx, reply_id, script, delay=delay, chunking=chunking, throttle_ms=throttle_ms
    )


def from_script(ctx: rx.ActionContext, reply_id: int, script: str, **extra: Any) -> str:
    """Stream the offline scripted model's `script` into reply `reply_id`."""
    return llm.stream_into(
        ctx,
        Reply,
        reply_id,
        model="rxnb/scripted",
        messages=[{"role": "user", "content": "go"}],
        script=script,
        **extra,
    )


def from_fake_server(ctx: rx.ActionContext, reply_id: int, api_base: str, **extra: Any) -> str:
    """Stream the loopback OpenAI-compatible server's answer into reply `reply_id`."""
    return llm.stream_into(
        ctx,
        Reply,
        reply_id,
        model="openai/fake",
        api_base=api_base,
        api_key="not-a-secret",
        messages=[{"role": "user", "content": "go"}],
        throttle_ms=0,
        **extra,
    )


@rx.action
def generate_http(
    ctx: rx.ActionContext,
    reply_id: int,
    api_base: str,
    stream_timeout: float | None = None,
    chunking: str | None = None,
) -> str:
    extra: dict[str, Any] = {} if stream_timeout is None else {"stream_timeout": stream_timeout}
    if chunking is not None:
        extra["chunking"] = chunking
    return from_fake_server(ctx, reply_id, api_base, **extra)


@rx.action(retries=1, backoff=0.05)
def generate_http_retried(ctx: rx.ActionContext, reply_id: int, api_base: str) -> str:
    return from_fake_server(ctx, reply_id, api_base)

"""The reply table and the generating action of the model-limit tests, imported by
them and by their worker processes."""

from __future__ import annotations

from sqlmodel import Field, SQLModel, select

import rxnb as rx


class LimitedReply(SQLModel, table=True):
    __tablename__ = "t_limited_reply"
    id: int | None = Field(default=None, primary_key=True)
    content: str = ""
    status: str = "pending"


@rx.mutation
def new_replies(db: rx.Writer, count: int) -> list[int]:
    rows = [LimitedReply() for _ in range(count)]
    db.add_all(rows)
    db.flush()
    return [row.id for row in rows if row.id is not None]


@rx.query
def replies(db: rx.Reader) -> dict[int, str]:
    return {row.id or 0: row.status for row in db.exec(select(LimitedReply))}


@rx.action
def answer(ctx: rx.ActionContext, reply_id: int, api_base: str, model: str) -> str:
    return rx.llm.stream_into(
        ctx,
        LimitedReply,
        reply_id,
        model=model,
        api_base=api_base,
        api_key="not-a-secret",
        messages=[{"role": "user", "content": "go"}],
        max_tokens=20,
        throttle_ms=0,
    )

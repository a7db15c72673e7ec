"""A chat's pages: the latest messages of a thread, and earlier ones on demand.

A chat on a long thread follows only the pages its view shows (the widgets layer
subscribes to each): the latest page, newest first, which grows as messages arrive,
and each earlier page the reader scrolled up to, chained by cursors
(`Reader.paginate`). Each page reads only its own key range, so a write re-runs the
pages it touches and no other.

1. A page's result is `{"rows": [...], "cursor": c, "done": d}`: its rows newest
   first (the view shows them reversed, oldest at the top), the cursor of the page
   before it (older messages), and whether there is none.
2. `rx.chat` pages when its messages query takes a `cursor` argument and returns
   `db.paginate(...)` of the thread's rows newest first (`rxnb.agents._chats`).
3. An agent's chat pages its thread's `rx_messages` by id (`AgentChatPages`).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlmodel import col, select

from rxnb.agents._chat import row_of
from rxnb.agents._model import Message
from rxnb.agents._threads import messages
from rxnb.errors import ArgumentError
from rxnb.store import Reader

CURSOR = "cursor"
"""The argument that names a page: None for the latest, else a page's `cursor`."""

PAGE_SIZE = 50
"""Messages per page of an agent's chat."""


def page_result(rows: list[dict[str, Any]], cursor: str | None, done: bool) -> dict[str, Any]:
    """Rule 1: one page of a chat as its subscription delivers it."""
    return {"rows": rows, CURSOR: cursor, "done": done}


class AgentChatPages:
    """Rule 3: one page of an agent's thread as the chat view's rows (subscribable)."""

    key_names = ("id",)
    status = "status"
    paged = True

    def __init__(self, thread_id: str, size: int = PAGE_SIZE) -> None:
        self.thread_id = thread_id
        self.size = size

    @property
    def name(self) -> str:
        return messages.name

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(args) - {"thread_id", CURSOR})
        cursor = args.get(CURSOR)
        if unknown or args.get("thread_id") != self.thread_id:
            raise ArgumentError(
                f"an agent chat's page takes thread_id={self.thread_id!r} and a cursor, "
                f"not {dict(args)!r}"
            )
        if cursor is not None and not isinstance(cursor, str):
            raise ArgumentError(f"a page's cursor is a str or None, not {cursor!r}")
        return {"thread_id": self.thread_id, CURSOR: cursor}

    def run(self, reader: Reader, args: Mapping[str, Any]) -> dict[str, Any]:
        newest_first = (
            select(Message)
            .where(Message.thread_id == self.thread_id)
            .order_by(col(Message.id).desc())
        )
        page = reader.paginate(newest_first, cursor=args.get(CURSOR), size=self.size)
        return page_result([row_of(m) for m in page.items], page.cursor, page.done)

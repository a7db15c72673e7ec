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
4. A live page is patched rather than re-read (`AgentChatPages.patch`, the reactor's
   rule 11) when every write is an update of one of its rows that leaves the row's
   thread and id as they were, whose old image matches the row as shown on every
   column it changes, whose images hold every value (none UNKNOWN: another
   process's long text is not in the change log), and that changes only columns
   shown as they are (all but `usage`: a streamed reply's text, a status): the row
   takes the new values.
   Writes to other threads' rows are passed over. Anything else re-reads the page.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlmodel import col, select

from rxnb.agents._chat import row_of
from rxnb.agents._model import Message
from rxnb.agents._threads import messages
from rxnb.errors import ArgumentError
from rxnb.store import UNKNOWN, Reader, RowWrite, Write

CURSOR = "cursor"
"""The argument that names a page: None for the latest, else a page's `cursor`."""

_PLAIN = frozenset(Message.model_fields) - {"id", "thread_id", "usage"}
"""Rule 4: the `rx_messages` columns a chat row shows as stored (`row_of`)."""

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

    def patch(self, result: Any, writes: Sequence[Write]) -> dict[str, Any] | None:
        """Rule 4: `result` with `writes` applied, or None if the page must be read."""
        rows: list[dict[str, Any]] = result["rows"]
        at = {row["id"]: i for i, row in enumerate(rows)}
        patched: dict[int, dict[str, Any]] = {}
        for write in writes:
            if not isinstance(write, RowWrite) or write.table != _TABLE:
                return None
            old, new = write.old, write.new
            if old is None or new is None:
                return None  # an insert or a delete: the page's rows change
            if old.get("thread_id") != self.thread_id and new.get("thread_id") != self.thread_id:
                continue  # another thread's row
            if old.get("thread_id") != new.get("thread_id") or old.get("id") != new.get("id"):
                return None
            index = at.get(new.get("id"))
            if index is None:
                return None
            row = patched.get(index, rows[index])
            if any(v is UNKNOWN for v in (*old.values(), *new.values())):
                return None  # a value not in the images (too long for another process's)
            changed = {k: v for k, v in new.items() if old.get(k) != v}
            if any(k not in _PLAIN for k in changed):
                return None
            if any(row.get(k) != old.get(k) for k in changed):
                return None  # the page shows another state of the row than the write's
            patched[index] = {**row, **changed}
        if not patched:
            return None
        return page_result(
            [patched.get(i, row) for i, row in enumerate(rows)], result[CURSOR], result["done"]
        )


_TABLE = Message.__table__.fullname  # type: ignore[attr-defined]

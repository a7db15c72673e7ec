"""`rx.chat(thread_id, send=..., messages=...)`: a live chat over the store.

The widget is a live table widget of the thread's messages with a `chat` view
(docs/widget-protocol.md, "Chat view"): the browser draws message bubbles, an input
bound to the `send` mutation and an abort button bound to a cancel mutation. The rows
(each message joined with its latest generation for its tokens, cost and failure
reason) and those two functions come from the agents layer (`rxnb.agents._chats`);
this module renders and binds them. Streaming text travels as appended text, batched: the view
reveals it smoothly, so fewer, larger messages read the same and cost fewer bytes.

A paged chat (a messages query that takes a `cursor` and returns `db.paginate(...)`
newest first, and every agent's chat) follows only the pages its view shows: the latest
page is the widget's own subscription, and each earlier page the view asks for (the
`earlier` call, when the reader scrolls to the top) is one more, chained by cursors. The
payload is those pages' rows, oldest at the top; a write re-runs only the pages it
touches (docs/widget-protocol.md, "Earlier pages").
"""

from __future__ import annotations

import inspect
import json
import logging
import sys
import threading
import weakref
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from rxnb.agents import (
    CURSOR,
    DETAIL,
    ERROR,
    NOTE,
    USAGE,
    AgentChatPages,
    AgentChatQuery,
    ChatQuery,
    cancel_mutation,
    send_mutation,
)
from rxnb.errors import ArgumentError, RxnbError
from rxnb.functions import Mutation, Query
from rxnb.reactive import JSONValue, Store, Subscription, current_store
from rxnb.widgets._files import FILE, shown_ids
from rxnb.widgets._files import answer as answer_file
from rxnb.widgets._live import LiveWidget, _call_weak
from rxnb.widgets._payload import Payload, encode, keyed, message

log = logging.getLogger("rxnb.widgets")

APPEND_BATCH_BYTES = 512
"""Appended text is held until this much has gathered (or `APPEND_HOLD_SECONDS`):
a diff's envelope is about 60 bytes, so a batch this size costs ~12% on top."""
APPEND_HOLD_SECONDS = 2.0
"""The longest appended text waits; the view's smooth reveal hides the steps."""
EARLIER = "earlier"
"""The call a paged chat's view sends for the page before the oldest it shows."""


class ChatWidget(LiveWidget):
    """A live chat: a live widget of a `ChatQuery` that batches streaming text.

    Responsibilities beyond a live widget: key the rows by the messages' primary key
    (whatever its name: the rows reach the payload as dicts, which say nothing of it),
    so that updates are diffs and appended text; hold updates that only append text
    until `APPEND_BATCH_BYTES` have gathered or `APPEND_HOLD_SECONDS` have passed
    (anything else, such as a status change or a new message, goes out at the usual
    frame).
    """

    _held: tuple[Payload | None, float] = (None, 0.0)

    def __init__(
        self, query: ChatQuery | AgentChatQuery | AgentChatPages, args: Mapping[str, Any], **kw: Any
    ) -> None:
        # All before the first result, which arrives while subscribing.
        self._chat = query
        self._args = dict(args)
        self._paged = bool(getattr(query, "paged", False))
        self._local_calls = (EARLIER,) if self._paged else ()
        files = ((kw.get("view") or {}).get("chat") or {}).get("files")
        self._files_column: str | None = files["column"] if files else None
        if self._files_column is not None:
            self._local_calls = (*self._local_calls, FILE)
        self._pages: list[dict[str, Any] | None] = [None]
        """Each followed page's result (JSON), the latest first (the widget's own)."""
        self._page_subs: list[Subscription] = []
        self._pages_lock = threading.Lock()
        self._loading = threading.Lock()
        super().__init__(query, args, **kw)

    def close(self) -> None:
        """Stop following every page, then close as a live widget."""
        for sub in list(self._page_subs):
            sub.close()
        super().close()

    def _on_result(self, result: Any, data: JSONValue) -> None:
        if self._paged:
            self._on_page(0, data)
        else:
            super()._on_result(result, data)

    def _on_page(self, index: int, data: JSONValue) -> None:
        """A page's new result: the payload is every page's rows, oldest at the top."""
        with self._pages_lock:
            self._pages[index] = data if isinstance(data, dict) else None
            rows: list[JSONValue] = []
            for page in reversed(self._pages):
                found = page.get("rows") if page is not None else None
                if isinstance(found, list):
                    rows.extend(reversed(found))  # a page comes newest first
        payload = encode(self._title, rows, rows)
        if self._view and payload.kind == "table":
            payload = replace(payload, view=self._view)
        self._offer(payload)

    def _call_local(self, name: str, args: dict[str, Any]) -> JSONValue:
        """`earlier`: follow the page before the oldest one followed; tells whether
        that was the thread's first page (`done`) and how many rows it has. `file`: a
        file a shown message names (`rxnb.widgets._files`)."""
        if name == FILE and self._files_column is not None:
            sent = self._sent
            allowed = shown_ids(sent.columns, sent.rows, self._files_column)
            return answer_file(self._store, allowed, args)
        if name != EARLIER or args:
            raise ArgumentError(f"a chat's {EARLIER} takes no arguments, not {args!r}")
        with self._loading:  # one page at a time: two clicks do not load one page twice
            with self._pages_lock:
                oldest, index = self._pages[-1], len(self._pages)
            if oldest is None:
                raise RxnbError("the chat's oldest page has not loaded yet; scroll up again")
            if oldest.get("done") or oldest.get(CURSOR) is None:
                return {"done": True, "rows": 0}
            if self.closed:
                raise RxnbError("this chat is closed; run its cell again")
            with self._pages_lock:
                self._pages.append(None)
            this = weakref.ref(self)
            sub = self._store.subscribe(
                self._chat,
                {**self._args, CURSOR: oldest[CURSOR]},
                lambda _result, data: _call_weak(this, "_on_page", index, data),
                on_error=lambda error: _call_weak(this, "_on_error", error),
                with_payload=True,
                min_interval=self._frame,
            )
            self._page_subs.append(sub)
            weakref.finalize(self, sub.close)
            if self.closed:  # closed while subscribing
                sub.close()
        with self._pages_lock:
            page = self._pages[index] or {}
        rows = page.get("rows")
        return {"done": bool(page.get("done")), "rows": len(rows) if isinstance(rows, list) else 0}

    def _offer(self, payload: Payload) -> None:
        """The payload keyed by the messages' primary key, then as a live widget's."""
        super()._offer(keyed(payload, self._chat.key_names))

    def _frame_for(self, pending: Payload) -> float:
        """Seconds after the last send that `pending` may go (the lock is held).

        1. Anything but appended text: the usual frame.
        2. The first text of a message: the usual frame (the reader waits for it).
        3. Other appended text: held until `APPEND_BATCH_BYTES` or `APPEND_HOLD_SECONDS`.
        """
        held, frame = self._held
        if held is pending:
            return frame
        frame = self._frame
        update = message(self._sent, pending, self._version + 1)
        appended = update.get("appended")
        if set(update) == {"type", "base", "version", "appended"} and isinstance(appended, list):
            sent = dict(zip(self._sent.row_keys() or (), self._sent.rows, strict=False))
            entries = [e for e in appended if isinstance(e, list)]
            starting = any(
                sent.get(tuple(keyvals), ())[column : column + 1] == ("",)  # rule 2
                for keyvals, column, _ in entries
            )
            size = sum(len(str(text)) for *_, text in entries)
            if not starting and size < APPEND_BATCH_BYTES:
                frame = APPEND_HOLD_SECONDS  # rule 3
        self._held = (pending, frame)
        return frame


def chat(
    thread_id: Any,
    *,
    send: Mutation[..., Any],
    messages: Query[..., Any],
    cancel: Mutation[..., Any] | None = None,
    store: Store | None = None,
    thread_arg: str = "thread_id",
    text_arg: str = "text",
    text: str = "content",
    role: str = "role",
    status: str | None = "status",
    placeholder: str = "Message",
    files: str | None = None,
) -> ChatWidget:
    """A live chat widget of thread `thread_id`.

    `messages(thread_id=...)` lists the thread's rows in order (each with `text`,
    `role` and `status` fields); `send(thread_id=..., text=...)` stores the user's
    message (and schedules the reply). Neither may need another argument; the input
    calls `send` with this thread's id only, and any other is refused. The abort
    button cancels the run generating a message: the one `rx.llm.stream_into`
    records, or before it starts, an unfinished run given the message's id as an
    argument (`message_id=`) that streams into no other row; pass `cancel=` (a
    mutation taking `message_id`) to decide yourself. A `pending` reply whose runs
    (found the same way) all ended before it started streaming is shown `failed`,
    with the run's error, or `cancelled`, rather than pending for good. `files` names
    the column of a message's stored files (an `rx.FileRef` id, or a list of ids):
    images show in the message, other files as download links.

    A messages query that also takes `cursor` pages the chat: it returns
    `db.paginate(select(Message).where(...).order_by(Message.id.desc()), cursor=cursor)`
    (newest first), the chat shows the latest page and loads earlier ones as the
    reader scrolls up, and a write re-reads only the pages it touches.
    """
    if not isinstance(messages, Query):
        raise RxnbError(f"rx.chat: messages= must be an @rx.query, not {messages!r}")
    if not isinstance(send, Mutation):
        raise RxnbError(f"rx.chat: send= must be an @rx.mutation, not {send!r}")
    for fn, names in ((send, (thread_arg, text_arg)), (messages, (thread_arg,))):
        missing = [n for n in names if n not in fn.arguments.signature.parameters]
        if missing:
            raise ArgumentError(
                f"rx.chat: {fn.name}{fn.arguments.signature} takes no "
                f"{', '.join(missing)}; rename its parameters or pass "
                f"thread_arg= / text_arg= with the names it uses"
            )
        needed = [
            p.name
            for p in fn.arguments.signature.parameters.values()
            if p.name not in names
            and p.default is inspect.Parameter.empty
            and p.kind not in (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
        ]
        if needed:
            raise ArgumentError(
                f"rx.chat: {fn.name}{fn.arguments.signature} also needs "
                f"{', '.join(needed)}, which the chat cannot give; give "
                f"{'it a default' if len(needed) == 1 else 'them defaults'}, or wrap it in "
                f"an @rx.{fn.kind} that takes only {', '.join(names)}"
            )
    store = store if store is not None else current_store()
    args = {thread_arg: thread_id}
    query = ChatQuery(messages, status, thread_arg)
    bound: dict[str, Callable[..., Any]] = {
        "send": send_mutation(send, thread_arg, text_arg, thread_id),
        "cancel": cancel if cancel is not None else cancel_mutation(query, thread_arg, args),
    }
    view = {
        "chat": {
            "text": text,
            "role": role,
            "status": status,
            "usage": USAGE,
            "error": ERROR,
            "detail": DETAIL,
            "note": NOTE,
            "send": {"fn": "send", "args": _jsonable(args), "text_arg": text_arg},
            "cancel": {"fn": "cancel", "arg": "message_id"},
            "placeholder": placeholder,
            "earlier": {"fn": EARLIER} if query.paged else None,
            "files": {"column": files, "fn": FILE} if files else None,
        },
        "hidden": [DETAIL],  # tracebacks stay out of the static snapshot
    }
    widget = ChatWidget(query, args, store=store, bind=bound, view=view)
    warm_up_litellm()
    return widget


def warm_up_litellm() -> None:
    """Import litellm (seconds of CPU) in the background now, so that the first reply
    the chat asks for does not wait for it."""
    if "litellm" not in sys.modules and not _warming.is_set():
        _warming.set()
        threading.Thread(target=_import_litellm, name="rxnb-litellm-import", daemon=True).start()


def _import_litellm() -> None:
    from rxnb.llm import load_litellm

    try:
        load_litellm()
    except Exception:  # the first generation reports it, with its context
        log.debug("rxnb: importing litellm in the background failed", exc_info=True)


_warming = threading.Event()


def _jsonable(args: dict[str, Any]) -> dict[str, Any]:
    try:
        json.dumps(args)
    except TypeError:
        raise ArgumentError(
            f"rx.chat: the thread id must be JSON (a str or an int), not {args!r}"
        ) from None
    return args

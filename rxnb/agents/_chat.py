"""An agent's chat on the store side: the rows its widget shows, and the only
functions the widget may call (the widgets layer renders them and binds these).

1. The rows are the thread's messages in order, as dicts keyed by `id`, each with its
   usage as an object (tokens and cost) rather than JSON text.
2. `send` stores a message in this chat's thread only, for this agent.
3. `cancel` stops the turn writing a message of this thread only (rule 4 of
   `_threads`).
4. `approve` decides a call of this thread only.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from rxnb.agents._model import Message
from rxnb.agents._threads import approve_in, messages, send_in, stop_in
from rxnb.errors import RxnbError
from rxnb.functions import Mutation
from rxnb.store import Reader, Writer

if TYPE_CHECKING:
    from rxnb.agents._agent import Agent

HIDDEN = ("detail", "agent", "run_id", "step", "parent_id", "model", "created_at", "cost")
"""Columns the chat's rows carry that the view does not show as such."""


class AgentChatQuery:
    """Rule 1: the thread's messages as the chat view's rows (a subscribable query)."""

    key_names = ("id",)
    status = "status"

    def __init__(self, thread_id: str) -> None:
        self.thread_id = thread_id

    @property
    def name(self) -> str:
        return messages.name

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return messages.validate(args)

    def run(self, reader: Reader, args: Mapping[str, Any]) -> list[dict[str, Any]]:
        return [row_of(m) for m in messages.run(reader, args)]


def row_of(message: Message) -> dict[str, Any]:
    data = message.model_dump()
    data["usage"] = message.usage_json()
    return data


def chat_functions(agent: Agent, thread_id: str) -> dict[str, Callable[..., Any]]:
    """Rules 2-4: what the chat's widget may call, each for this thread only."""

    def send(db: Writer, thread_id: str, text: str) -> int:
        _same_thread(thread_id)
        reply_id, _ = send_in(db, agent, thread_id, text)
        return reply_id

    def cancel(db: Writer, message_id: int) -> int:
        _mine(db.get(Message, message_id), f"message {message_id!r}")
        return stop_in(db, message_id)

    def approve(db: Writer, call_id: str, approved: bool, note: str = "") -> str:
        from sqlmodel import select

        call = db.exec(select(Message).where(Message.call_id == call_id)).first()
        _mine(call, f"tool call {call_id!r}")
        return approve_in(db, call_id, approved, note)

    def _same_thread(given: str) -> None:
        if json.dumps(given) != json.dumps(thread_id):
            raise RxnbError(
                f"this chat sends only to its own thread ({thread_id!r}), not to {given!r}"
            )

    def _mine(message: Message | None, what: str) -> None:
        if message is None or message.thread_id != thread_id:
            raise RxnbError(f"{what} is not in this chat's thread ({thread_id!r})")

    send.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("db", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter("thread_id", inspect.Parameter.KEYWORD_ONLY, default=thread_id),
            inspect.Parameter("text", inspect.Parameter.KEYWORD_ONLY, annotation=str),
        ]
    )
    functions: dict[str, Callable[..., Any]] = {}
    for fn in (send, cancel, approve):
        # A name of its own: "<locals>" keeps it from replacing another chat's by name.
        fn.__qualname__ = f"agent_chat.<locals>.{agent.name}.{fn.__name__}"
        functions[fn.__name__] = Mutation(fn)
    return functions

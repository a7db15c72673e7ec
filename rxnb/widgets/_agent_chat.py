"""`agent.chat(thread_id)`: a live chat of one agent's thread.

The chat view of `rx.chat` (docs/widget-protocol.md, "Chat view") with its `tool` and
`approve` settings: tool calls show as cards whose arguments stream in, approvals with
Approve and Deny buttons, and the files a message carries (`Message.files`) as
`rx.chat(files=...)` shows them: images inline, anything else a download link. The
rows and the functions the widget may call (send, Stop, approve, each for this
thread only) come from the agents layer. The chat is
paged: it follows the thread's latest messages, and earlier pages as the reader
scrolls up to them (`rxnb.widgets._chat`).
"""

from __future__ import annotations

from typing import Any

from rxnb.agents import HIDDEN, Agent, AgentChatPages, chat_functions
from rxnb.errors import ArgumentError
from rxnb.reactive import Store, current_store
from rxnb.widgets._chat import EARLIER, ChatWidget, warm_up_litellm
from rxnb.widgets._files import FILE


def agent_chat(
    agent: Agent, thread_id: str, *, store: Store | None = None, placeholder: str = "Message"
) -> ChatWidget:
    """The chat widget of `agent` in thread `thread_id` (see the module docstring)."""
    given: Any = thread_id
    if not isinstance(given, str) or not given:
        raise ArgumentError(
            f"{agent.name}.chat: the thread id is a non-empty str, not {thread_id!r}"
        )
    store = store if store is not None else current_store()
    args = {"thread_id": thread_id}
    view = {
        "chat": {
            "text": "text",
            "role": "role",
            "status": "status",
            "usage": "usage",
            "error": "error",
            "detail": "detail",
            "note": "note",
            "send": {"fn": "send", "args": args, "text_arg": "text"},
            "cancel": {"fn": "cancel", "arg": "message_id"},
            "tool": {
                "name": "tool_name",
                "arguments": "arguments",
                "approval": "approval",
                "call": "call_id",
            },
            "approve": {"fn": "approve", "arg": "call_id"},
            "placeholder": placeholder,
            "earlier": {"fn": EARLIER},
            "files": {"column": "files", "fn": FILE},
        },
        "hidden": list(HIDDEN),  # tracebacks and bookkeeping stay out of the snapshot
    }
    query = AgentChatPages(thread_id)
    widget = ChatWidget(query, args, store=store, bind=chat_functions(agent, thread_id), view=view)
    warm_up_litellm()
    return widget

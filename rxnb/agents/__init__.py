"""The agents layer: `rx.Agent`, `@rx.tool`, threads and messages (`rx_threads`,
`rx_messages`), approvals, and turns as durable workflows (each model call and each
tool call a journaled step, an approval a durable wait).

    rx.agents.messages("t1")            # a query: the thread's messages, with parts
    rx.agents.approve(call_id, approved=True, note="")   # a mutation, from anywhere
    rx.agents.stop(message_id)          # a mutation: cancel the turn writing it
    rx.agents.fork("t1", at_message=12) # a new thread: copies of messages <= 12
    rx.Agent(..., retrieve=rx.agents.search(Doc.embedding, text=Doc.body, k=5))
    rx.Agent(..., retrieve=rx.agents.search_thread(k=5))  # the thread's older messages
"""

from rxnb.agents import _budgets  # noqa: F401  (registers the agent and thread budgets)
from rxnb.agents._agent import Agent, TurnHandle, agent_named, set_chat_view
from rxnb.agents._chat import HIDDEN, AgentChatQuery, chat_functions
from rxnb.agents._chats import (
    DETAIL,
    ERROR,
    NOTE,
    USAGE,
    ChatQuery,
    cancel_mutation,
    send_mutation,
)
from rxnb.agents._fork import fork
from rxnb.agents._model import Message, MessageStatus, Role, Thread
from rxnb.agents._pages import CURSOR, PAGE_SIZE, AgentChatPages
from rxnb.agents._retrieve import Retrieval, search
from rxnb.agents._thread_search import MessageEmbedding, ThreadSearch, search_thread
from rxnb.agents._threads import approve, messages, stop, stop_in, usage_of_thread
from rxnb.agents._tools import Tool, ToolInputError, tool

__all__ = [
    "CURSOR",
    "DETAIL",
    "ERROR",
    "HIDDEN",
    "NOTE",
    "PAGE_SIZE",
    "USAGE",
    "Agent",
    "AgentChatPages",
    "AgentChatQuery",
    "ChatQuery",
    "Message",
    "MessageEmbedding",
    "MessageStatus",
    "Retrieval",
    "Role",
    "Thread",
    "ThreadSearch",
    "Tool",
    "ToolInputError",
    "TurnHandle",
    "agent_named",
    "approve",
    "cancel_mutation",
    "chat_functions",
    "fork",
    "messages",
    "search",
    "search_thread",
    "send_mutation",
    "set_chat_view",
    "stop",
    "stop_in",
    "tool",
    "usage_of_thread",
]

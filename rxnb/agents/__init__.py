"""The agents layer: `rx.Agent`, `@rx.tool`, threads and messages (`rx_threads`,
`rx_messages`), approvals, and turns as durable workflows (each model call and each
tool call a journaled step, an approval a durable wait).

    rx.agents.messages("t1")            # a query: the thread's messages, with parts
    rx.agents.approve(call_id, approved=True, note="")   # a mutation, from anywhere
    rx.agents.stop(message_id)          # a mutation: cancel the turn writing it
"""

from rxnb.agents._agent import Agent, TurnHandle, agent_named, set_chat_view
from rxnb.agents._chat import HIDDEN, AgentChatQuery, chat_functions
from rxnb.agents._model import Message, MessageStatus, Role, Thread
from rxnb.agents._threads import approve, messages, stop, stop_in, usage_of_thread
from rxnb.agents._tools import Tool, ToolInputError, tool

__all__ = [
    "HIDDEN",
    "Agent",
    "AgentChatQuery",
    "Message",
    "MessageStatus",
    "Role",
    "Thread",
    "Tool",
    "ToolInputError",
    "TurnHandle",
    "agent_named",
    "approve",
    "chat_functions",
    "messages",
    "set_chat_view",
    "stop",
    "stop_in",
    "tool",
    "usage_of_thread",
]

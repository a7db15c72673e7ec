"""The `rx_threads` and `rx_messages` tables: conversations, and every message in them.

A message is one row: the user's text, an assistant's reply (one per model call), a
tool call (one row per call: its arguments as they streamed, its approval, its result
or error), or a note the turn added for the model (`system`). `Message.parts` gives
the same as the parts peers use (text, files, tool call, tool result or error,
approval).

A message may carry stored files (`rx.files`): the ids a user sent with it
(`agent.send(thread_id, text, files=[...])`), or the files a tool returned (a tool
returning `rx.File`, or a list of them), as JSON text in `files`, a `FileRefList`
column, so the collector keeps them as long as the message lists them.
"""

from __future__ import annotations

import json
import time
from enum import Enum
from typing import Any

from sqlmodel import Field, SQLModel

from rxnb.execution import FileRefList
from rxnb.store import own_table


class Role(str, Enum):
    USER = "user"
    """What a person wrote (`agent.send`)."""
    ASSISTANT = "assistant"
    """One model call's reply: its text, and the tool calls that follow it."""
    TOOL = "tool"
    """One tool call: name, arguments, approval, result or error."""
    SYSTEM = "system"
    """A note the turn sent the model (a structured answer that did not validate)."""


class MessageStatus(str, Enum):
    PENDING = "pending"
    """Stored, not started: a reply waiting for its turn, a tool call ready to run."""
    STREAMING = "streaming"
    """A reply's text, or a tool call's arguments, arriving."""
    WAITING = "waiting"
    """A tool call waiting for a person to approve it (`rx.agents.approve`); a reply
    waiting for a model limit or the budget (`note` says which)."""
    RUNNING = "running"
    """A tool running."""
    DONE = "done"
    FAILED = "failed"
    """A reply whose model call failed; a tool that raised, or was given arguments it
    does not take, or that the agent does not have (the model is told, the turn goes on)."""
    PAUSED = "paused"
    """A reply whose run was paused (`rx.pause`) while it streamed."""
    CANCELLED = "cancelled"
    DENIED = "denied"
    """A tool call a person denied (or a new message in the thread did)."""


UNFINISHED = (
    MessageStatus.PENDING.value,
    MessageStatus.STREAMING.value,
    MessageStatus.WAITING.value,
    MessageStatus.RUNNING.value,
    MessageStatus.PAUSED.value,
)


class Thread(SQLModel, table=True):
    """One conversation: its messages are `Message` rows with its id."""

    __tablename__ = "rx_threads"
    __table_args__ = own_table()

    id: str = Field(primary_key=True)
    agent: str | None = None
    """The agent that answered last."""
    title: str = ""
    """The first user message, shortened."""
    created_at: float = Field(default_factory=time.time)
    updated_at: float = Field(default_factory=time.time)
    """When its last message was sent."""
    forked_from: str | None = None
    """The thread this one was forked from (`rx.agents.fork`), if any."""
    forked_at: int | None = None
    """The id of the source thread's message it was forked at: its copies of the
    messages up to that one (included) begin this thread."""


class Message(SQLModel, table=True):
    """One message of a thread (see the module docstring)."""

    __tablename__ = "rx_messages"
    __table_args__ = own_table()

    id: int | None = Field(default=None, primary_key=True)
    thread_id: str = Field(index=True)
    role: str
    """user | assistant | tool | system (`Role`)."""
    status: str = MessageStatus.DONE.value
    """`MessageStatus`."""
    text: str = ""
    """The message's text; for a tool call, its result."""
    agent: str | None = None
    run_id: str | None = Field(default=None, index=True)
    """The turn's run (an `rx_runs` id) that wrote it."""
    step: int = 0
    """Which model call of its turn (0, 1, …) wrote it."""
    model: str | None = None
    parent_id: int | None = Field(default=None, index=True)
    """A tool call's reply (the assistant message whose model call asked for it)."""
    call_id: str | None = Field(default=None, index=True)
    """A tool call's id, unique in the store: `rx.agents.approve(call_id, ...)`."""
    tool_name: str | None = None
    arguments: str = ""
    """A tool call's arguments: the JSON text as the model streamed it."""
    approval: str | None = None
    """None (no approval asked) | pending | approved | denied."""
    note: str | None = None
    """A short line: the approver's note, why a call was denied or cancelled, a
    resumed reply ("resumed after the kernel restarted (attempt 2)")."""
    error: str | None = None
    """Why it failed: one line."""
    detail: str | None = None
    """The failure's traceback."""
    usage: str | None = None
    """JSON: prompt/completion/total tokens, `estimated`, `rate_limited`, `cost`."""
    cost: float | None = None
    files: str | None = Field(default=None, sa_type=FileRefList)
    """JSON text of the ids of its stored files (`rx.files`), or None."""
    created_at: float = Field(default_factory=time.time)

    @property
    def file_ids(self) -> list[str]:
        """The ids of the message's stored files, in order."""
        return file_ids_of(self.files)

    @property
    def parts(self) -> list[dict[str, Any]]:
        """The message as parts: `text`, then a `file` (its id) per stored file; for a
        tool call `tool-call` (id, name, arguments, status), then `approval` (if
        asked), then `tool-result` or `tool-error` once it has ended, then its files."""
        files = [{"type": "file", "id": f} for f in self.file_ids]
        if self.role != Role.TOOL.value:
            return ([{"type": "text", "text": self.text}] if self.text else []) + files
        parts: list[dict[str, Any]] = [
            {
                "type": "tool-call",
                "id": self.call_id,
                "name": self.tool_name,
                "arguments": self.arguments,
                "status": self.status,
            }
        ]
        if self.approval is not None:
            parts.append({"type": "approval", "state": self.approval, "note": self.note})
        if self.status == MessageStatus.DONE.value:
            parts.append({"type": "tool-result", "id": self.call_id, "result": self.text})
        elif self.status in (MessageStatus.FAILED.value, MessageStatus.DENIED.value):
            parts.append({"type": "tool-error", "id": self.call_id, "error": self.text})
        return parts + files

    def usage_json(self) -> dict[str, Any] | None:
        """Its usage as a dict (with `cost`), or None."""
        if self.usage is None:
            return None
        value: dict[str, Any] = json.loads(self.usage)
        value["cost"] = self.cost
        return value


def file_ids_of(files: str | None) -> list[str]:
    """The file ids a message's `files` column lists, in order."""
    if not files:
        return []
    try:
        found = json.loads(files)
    except ValueError:  # written by another program: no ids to show
        return []
    return [f for f in found if isinstance(f, str)] if isinstance(found, list) else []

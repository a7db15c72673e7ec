"""One model call of a turn: the reply's text and the tool calls' arguments streamed
into their rows as they arrive.

1. It starts over in the same reply: text from an interrupted try is replaced, tool
   calls it had streamed are dropped (the call streams them again).
2. Text and arguments are written in batches: the first text at once (unless the
   call is younger than `FIRST_AFTER`: a model that answers at once, a cached answer,
   is then written once, at its end), then at most once per `THROTTLE` seconds, and
   only once what waits is at least an eighth of what was written beyond
   `LINEAR_FROM` characters: rows grow by appending, so the bytes written (and sent
   to the browser) stay linear in the length of the text, however long a tool's
   arguments (100,000 characters take a few dozen writes).
3. The last write ends the reply (`done`, `cancelled`, `failed`, or `pending` again
   when its process is stopping) and readies each tool call: `pending`, or `waiting`
   for approval; with the usage and cost on the reply and the run.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlmodel import col, delete, select

from rxnb.agents._model import Message, MessageStatus, Role
from rxnb.agents._threads import provider_messages
from rxnb.errors import Cancelled
from rxnb.execution import ActionContext, error_details, error_line
from rxnb.llm import PAUSED_REASON, Usage, add_to_run, stream
from rxnb.store import Reader, Writer

if TYPE_CHECKING:
    from rxnb.agents._agent import Agent

THROTTLE = 0.1
FIRST_AFTER = 0.05
LINEAR_FROM = 4096


def call_model(ctx: ActionContext, agent: Agent, thread_id: str, reply_id: int) -> dict[str, Any]:
    """Stream one model call into reply `reply_id`; what a step journals: the text and
    the tool calls (`call_id`, `name`, `arguments`)."""
    writer = _ReplyWriter(ctx, agent, thread_id, reply_id)
    messages = ctx.store.database.read(writer.begin)[0]
    usage = Usage()
    usage.on_tool_call = writer.tool_piece
    kwargs = dict(agent.litellm_kwargs)
    if agent.tools:
        kwargs["tools"] = [t.schema() for t in agent.tools]
    if agent.output_type is not None:
        kwargs.setdefault("response_format", agent.output_type)
    try:
        for text in stream(
            ctx,
            model=agent.model,
            messages=messages,
            usage=usage,
            record=False,
            on_wait=writer.held,
            **kwargs,
        ):
            writer.text_piece(text)
        handover = ctx.handing_over
        status = (
            MessageStatus.PENDING.value
            if handover
            else MessageStatus.CANCELLED.value
            if ctx.cancelled
            else MessageStatus.DONE.value
        )
        writer.finish(status, usage, handover)
    except BaseException as exc:
        handover = ctx.handing_over
        if handover is not None:
            writer.finish(MessageStatus.PENDING.value, usage, handover)
        else:
            writer.finish(MessageStatus.FAILED.value, usage, exc)
        raise
    if status != MessageStatus.DONE.value:
        raise Cancelled(handover or "the turn was stopped")
    return {"text": usage.text, "calls": writer.calls}


class _ReplyWriter:
    """The writes of one model call (rules 1-3)."""

    def __init__(self, ctx: ActionContext, agent: Agent, thread_id: str, reply_id: int) -> None:
        self.ctx, self.agent, self.thread_id, self.reply_id = ctx, agent, thread_id, reply_id
        self.pending_text = ""
        self.arguments: dict[int, str] = {}
        """Arguments not yet written, by the call's index."""
        self.whole: dict[int, str] = {}
        """Each call's arguments so far."""
        self.names: dict[int, str] = {}
        self.ids: dict[int, str] = {}
        self.rows: dict[int, int] = {}
        """The call's row id, once written."""
        self.written = 0
        self.waiting = 0
        self.last = 0.0
        self.step = 0
        self.begun = False
        """Whether the first write (rule 1: the reply started over) has committed."""
        self.note_before: str | None = None
        """The reply's note before a wait replaced it (`held`)."""
        self.opened = time.monotonic()

    def begin(self, db: Reader) -> list[dict[str, Any]]:
        """What the model is sent (a read: rule 1's reset is the first write's)."""
        reply = db.get(Message, self.reply_id)
        if reply is None:
            raise Cancelled(f"reply {self.reply_id} was deleted; the turn stops")
        self.step = reply.step
        return provider_messages(
            db,
            self.thread_id,
            instructions=self.agent.instructions,
            history=self.agent.history,
            context=self.agent.context,
            until=self.reply_id,
        )

    # -- pieces --------------------------------------------------------------------

    def text_piece(self, text: str) -> None:
        self.pending_text += text
        self.waiting += len(text)
        self._maybe_write(first=not self.written)

    def tool_piece(self, index: int, call: dict[str, str], piece: str) -> None:
        if index not in self.ids:
            self.ids[index] = f"call_{uuid.uuid4().hex[:16]}"
        if call.get("name"):
            self.names[index] = call["name"]
        self.arguments[index] = self.arguments.get(index, "") + piece
        self.whole[index] = self.whole.get(index, "") + piece
        self.waiting += len(piece)
        self._maybe_write(first=index not in self.rows)

    def _maybe_write(self, *, first: bool) -> None:
        """Rule 2."""
        now = time.monotonic()
        if not self.begun and now - self.opened < FIRST_AFTER:
            return
        if not first and now - self.last < THROTTLE:
            return
        if not first and self.waiting < (self.written - LINEAR_FROM) / 8:
            return
        self._written(self.ctx.store.database.write(self._write))
        self.last = now

    def _write(self, db: Writer) -> dict[int, int]:
        """One batch; the calls' rows it created (kept once it commits)."""
        rows: dict[int, int] = {}
        new: dict[int, Message] = {}
        ids = [self.reply_id, *(self.rows[i] for i in self.arguments if i in self.rows)]
        loaded = {m.id: m for m in db.exec(select(Message).where(col(Message.id).in_(ids)))}
        reply = loaded.get(self.reply_id)
        if reply is None:
            raise Cancelled(f"reply {self.reply_id} was deleted; the turn stops")
        if not self.begun:
            self._start_over(db, reply)
        if self.pending_text:
            reply.text = (reply.text or "") + self.pending_text
        for index in sorted(self.arguments):
            piece = self.arguments[index]
            row = loaded.get(self.rows[index]) if index in self.rows else None
            if row is None:
                row = Message(
                    thread_id=self.thread_id,
                    role=Role.TOOL.value,
                    status=MessageStatus.STREAMING.value,
                    agent=self.agent.name,
                    run_id=self.ctx.run_id,
                    step=self.step,
                    parent_id=self.reply_id,
                    call_id=self.ids[index],
                    tool_name=self.names.get(index, ""),
                    arguments=piece,
                )
                db.add(row)
                new[index] = row
            elif piece:
                row.arguments = (row.arguments or "") + piece
            if not row.tool_name and self.names.get(index):
                row.tool_name = self.names[index]
        if new:
            db.flush()
            rows = {index: row.id for index, row in new.items() if row.id is not None}
        return rows

    def held(self, reason: str | None) -> None:
        """Why the call waits (a model limit, the budget, a pause of the run), on the
        reply as its status and note (the note it had comes back after); None: it
        streams, or is about to, again."""
        waits = (MessageStatus.WAITING.value, MessageStatus.PAUSED.value)
        if reason is None:
            status = MessageStatus.STREAMING.value if self.begun else MessageStatus.PENDING.value
        elif reason == PAUSED_REASON:
            status = MessageStatus.PAUSED.value
        else:
            status = MessageStatus.WAITING.value

        def body(db: Writer) -> None:
            reply = db.get(Message, self.reply_id)
            going = (*waits, MessageStatus.PENDING.value, MessageStatus.STREAMING.value)
            if reply is None or reply.status not in going:
                return
            if reason is not None:
                if reply.status not in waits:
                    self.note_before = reply.note
                reply.status, reply.note = status, reason
            elif reply.status in waits:
                reply.status, reply.note = status, self.note_before

        self.ctx.store.database.write(body)

    def _start_over(self, db: Writer, reply: Message) -> None:
        """Rule 1: what an interrupted try of this call wrote goes (only a later start
        of the run can find any: a step is tried once per start)."""
        if self.ctx.attempt > 1:
            db.exec(
                delete(Message).where(
                    col(Message.parent_id) == self.reply_id, col(Message.role) == Role.TOOL.value
                )  # its tool calls, not the context retrieved for it
            )
        note = reply.note
        if note and note.startswith("interrupted (") and ");" in note:
            why = note[len("interrupted (") : note.index(");")]
            note = f"resumed after {why} (attempt {self.ctx.attempt})"
        reply.text, reply.status, reply.note = "", MessageStatus.STREAMING.value, note
        reply.error = reply.detail = None
        reply.model = self.agent.model
        reply.run_id = reply.run_id or self.ctx.run_id

    def _written(self, rows: dict[int, int]) -> None:
        """A batch has committed: what it wrote is no longer waiting. (A mutation body
        may run twice, after a serialization retry: state changes only here.)"""
        self.rows.update(rows)
        self.begun = True
        self.written += self.waiting
        self.pending_text, self.arguments, self.waiting = "", {}, 0

    # -- the end ---------------------------------------------------------------------

    @property
    def calls(self) -> list[dict[str, str]]:
        return [
            {
                "call_id": self.ids[i],
                "name": self.names.get(i, ""),
                "arguments": self.whole.get(i, ""),
            }
            for i in sorted(self.ids)
        ]

    def finish(self, status: str, usage: Usage, error: BaseException | str | None) -> None:
        """Rule 3, in one transaction with the last pieces."""

        def body(db: Writer) -> dict[int, int]:
            with db.no_autoflush:  # one flush, at the commit
                rows = self._write(db)
                reply = db.get(Message, self.reply_id)
                if reply is None:
                    return rows
                reply.status = status
                if isinstance(error, str):
                    reply.note = f"interrupted ({error}); it resumes where its agent is defined"
                elif error is not None and status == MessageStatus.FAILED.value:
                    reply.error, reply.detail = error_line(error, where=False), error_details(error)
                value = usage.as_json()
                reply.usage, reply.cost = json.dumps(value), usage.cost
                add_to_run(db, self.ctx.run_id, usage)
                self._ready_calls(db, {**self.rows, **rows}.values(), status)
                return rows

        self._written(self.ctx.store.database.write(body))

    def _ready_calls(self, db: Writer, row_ids: Iterable[int], status: str) -> None:
        """Rule 3: the reply's tool calls, once it ended with `status`."""
        tools = {t.name: t for t in self.agent.tools}
        asks = any(getattr(tools.get(n), "approval", False) for n in self.names.values())
        ids = list(row_ids)
        if not ids:
            return
        for row in db.exec(select(Message).where(col(Message.id).in_(ids))):
            if status == MessageStatus.PENDING.value:  # handed over: streamed again
                db.delete(row)
            elif status != MessageStatus.DONE.value:
                row.status, row.note = MessageStatus.CANCELLED.value, "the model call stopped"
            elif getattr(tools.get(row.tool_name or ""), "approval", False):
                row.status, row.approval = MessageStatus.WAITING.value, "pending"
            else:  # the turn runs them next, unless a call of them waits for approval
                row.status = MessageStatus.PENDING.value if asks else MessageStatus.RUNNING.value

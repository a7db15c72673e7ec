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
from typing import TYPE_CHECKING, Any

from rxnb.agents._model import Message, MessageStatus, Role
from rxnb.agents._threads import model_input
from rxnb.errors import Cancelled
from rxnb.execution import ActionContext, error_details, error_line
from rxnb.llm import PAUSED_REASON, Usage, add_to_run, stream
from rxnb.store import Reader, Row, Writer, delete_row, insert_row, load_rows, update_row
from rxnb.workflows import WorkflowContext

if TYPE_CHECKING:
    from rxnb.agents._agent import Agent

THROTTLE = 0.1
FIRST_AFTER = 0.05
LINEAR_FROM = 4096

_MESSAGES = Message.__table__  # type: ignore[attr-defined]


Prepared = tuple[int, int, list[dict[str, Any]]]
"""What a model call is sent, read ahead in the transaction that added its reply:
(the reply's id, its `step`, the messages)."""


def prepare(db: Reader, agent: Agent, thread_id: str, reply_id: int) -> Prepared:
    """What the model call of reply `reply_id` is sent, read in `db`'s transaction."""
    reply, messages = _input(db, agent, thread_id, reply_id)
    return reply_id, reply["step"], messages


def _input(
    db: Reader, agent: Agent, thread_id: str, reply_id: int
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    reply, messages = model_input(
        db,
        thread_id,
        instructions=agent.instructions,
        history=agent.history,
        context=agent.context,
        until=reply_id,
    )
    if reply is None:
        raise Cancelled(f"reply {reply_id} was deleted; the turn stops")
    return reply, messages


def call_model(
    ctx: ActionContext,
    agent: Agent,
    thread_id: str,
    reply_id: int,
    prepared: Prepared | None = None,
) -> dict[str, Any]:
    """Stream one model call into reply `reply_id`; what a step journals: the text and
    the tool calls (`call_id`, `name`, `arguments`). `prepared`: its input, read ahead
    with its reply (`prepare`); else it is read first."""
    writer = _ReplyWriter(ctx, agent, thread_id, reply_id)
    if prepared is not None and prepared[0] == reply_id:
        _, writer.step, messages = prepared
    else:
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
        reply, messages = _input(db, self.agent, self.thread_id, self.reply_id)
        self.step = reply["step"]
        return messages

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

    def _write(self, db: Writer, end: str | None = None, **ending: Any) -> dict[int, int]:
        """One batch; with `end`, the last (rule 3): the reply's status, with `ending`
        set on it too, and its calls readied. The calls' rows it created (kept once it
        commits)."""
        created: dict[int, int] = {}
        indexes = sorted(self.arguments.keys() | (self.rows.keys() if end else set()))
        ids = [self.reply_id, *(self.rows[i] for i in indexes if i in self.rows)]
        loaded = {row["id"]: row for row in load_rows(db, _MESSAGES, _MESSAGES.c.id, ids)}
        reply = loaded.get(self.reply_id)
        if reply is None:
            raise Cancelled(f"reply {self.reply_id} was deleted; the turn stops")
        changes = {} if self.begun else self._start_over(db, reply)
        if self.pending_text:
            changes["text"] = (changes.get("text", reply["text"]) or "") + self.pending_text
        if end is not None:
            changes.update(ending, status=end)
        update_row(db, _MESSAGES, reply, changes)
        for index in indexes:
            piece = self.arguments.get(index, "")
            row = loaded.get(self.rows[index]) if index in self.rows else None
            name = self.names.get(index, "")
            ready = self._readied(end, name)
            if row is None:
                if ready is None:
                    continue  # handed over: the call streams again
                values = {
                    "thread_id": self.thread_id,
                    "role": Role.TOOL.value,
                    "status": MessageStatus.STREAMING.value,
                    "agent": self.agent.name,
                    "run_id": self.ctx.run_id,
                    "step": self.step,
                    "parent_id": self.reply_id,
                    "call_id": self.ids[index],
                    "tool_name": name,
                    "arguments": piece,
                }
                created[index] = insert_row(db, _MESSAGES, {**values, **ready})["id"]
            elif ready is None:
                delete_row(db, _MESSAGES, row)
            else:
                update = dict(ready)
                if piece:
                    update["arguments"] = (row["arguments"] or "") + piece
                if not row["tool_name"] and name:
                    update["tool_name"] = name
                update_row(db, _MESSAGES, row, update)
        return created

    def _readied(self, end: str | None, name: str) -> dict[str, Any] | None:
        """Rule 3: what a call of tool `name` becomes once the reply ended with `end`
        (nothing while it streams), or None when its row goes."""
        if end is None:
            return {}
        if end == MessageStatus.PENDING.value:  # handed over: the call streams again
            return None
        if end != MessageStatus.DONE.value:
            return {"status": MessageStatus.CANCELLED.value, "note": "the model call stopped"}
        if self._asks(name):
            return {"status": MessageStatus.WAITING.value, "approval": "pending"}
        # the turn runs them next, unless a call of them waits for approval
        asks = any(self._asks(n) for n in self.names.values())
        return {"status": MessageStatus.PENDING.value if asks else MessageStatus.RUNNING.value}

    def _asks(self, name: str) -> bool:
        """Whether a call of tool `name` waits for approval."""
        return bool(getattr(self.agent.tool_named(name), "approval", False))

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

    def _start_over(self, db: Writer, reply: Row) -> dict[str, Any]:
        """Rule 1: what an interrupted try of this call wrote goes (only a later start
        of the run can find any: a step is tried once per start); the reply's changes."""
        if self.ctx.attempt > 1:
            for row in load_rows(db, _MESSAGES, _MESSAGES.c.parent_id, [self.reply_id]):
                if row["role"] == Role.TOOL.value:  # its tool calls, not the context
                    delete_row(db, _MESSAGES, row)  # retrieved for it
        note = reply["note"]
        if note and note.startswith("interrupted (") and ");" in note:
            why = note[len("interrupted (") : note.index(");")]
            note = f"resumed after {why} (attempt {self.ctx.attempt})"
        return {
            "text": "",
            "status": MessageStatus.STREAMING.value,
            "note": note,
            "error": None,
            "detail": None,
            "model": self.agent.model,
            "run_id": reply["run_id"] or self.ctx.run_id,
        }

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
        ending: dict[str, Any] = {"usage": json.dumps(usage.as_json()), "cost": usage.cost}
        if isinstance(error, str):
            ending["note"] = f"interrupted ({error}); it resumes where its agent is defined"
        elif error is not None and status == MessageStatus.FAILED.value:
            ending["error"], ending["detail"] = error_line(error, where=False), error_details(error)

        def body(db: Writer) -> dict[int, int]:
            rows = self._write(db, status, **ending)
            add_to_run(db, self.ctx.run_id, usage)
            if status == MessageStatus.DONE.value and isinstance(self.ctx, WorkflowContext):
                self.ctx.end_step(db, {"text": usage.text, "calls": self.calls})
            return rows

        self._written(self.ctx.store.database.write(body))

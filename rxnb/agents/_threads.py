"""Threads on the store side: what a turn sends the model, sending a message, approving
and denying tool calls, stopping a turn, and tidying a turn's messages when its run
ends or is handed over.

Rules:

1. `send_in` stores the user's message and a `pending` reply and schedules the turn
   in the caller's transaction: all exist iff it commits. It denies every approval
   still pending in the thread (a new message is the user moving on), telling each
   waiting turn, which then ends without calling the model again. A thread answers
   one message at a time: while a turn is still writing in it (other than waiting
   for an approval), a new message is refused, saying how to stop that turn. Files
   sent with it (`files=`, ids of `rx.files` or `rx.File` rows) must exist; the
   message lists them (`Message.files`), so the collector keeps them.
2. The model is sent the agent's instructions, then the thread's messages (the latest
   `history`, 100 by default, never starting inside a tool exchange) in OpenAI's
   format, which litellm converts for other providers: an assistant message with its
   tool calls, then one `tool` message per call with its result or error. Context
   retrieved for a reply (`retrieve=`) is sent just before that reply. A file sent
   with a user message is a line of its text (name, type, size, id): the model is not
   sent the bytes.
3. `approve(call_id, approved, note)` decides a call waiting for approval, once: the
   call's turn resumes (it waited holding no thread).
4. `stop_in` cancels the turn writing a message: the model call stops (its text
   kept); when the run ends, rule 5 tidies up.
5. A turn's run that ends leaves none of its messages unfinished: a reply still
   `pending`/`streaming` ends as the run did (`cancelled`, else `failed`, with its
   error); a tool call not yet run is `cancelled`, an approval still pending `denied`.
   A run handed over (its process stopping) or orphaned and queued again sets its
   streaming reply back to `pending` with a note, and drops the tool calls that were
   streaming (the model call streams them again).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import col, select

from rxnb.agents._model import UNFINISHED, Message, MessageStatus, Role, Thread, file_ids_of
from rxnb.errors import RxnbError
from rxnb.execution import (
    RUN_ENDED,
    RUN_REQUEUED,
    TERMINAL,
    File,
    Run,
    RunStatus,
    cancel_in,
    one_line,
    ties,
)
from rxnb.functions import Mutation, Query
from rxnb.store import Reader, Writer, load_rows
from rxnb.workflows import send_event_in

HISTORY = 100
"""How many of a thread's latest messages a turn sends the model by default (rule 2)."""

ContextFn = Callable[[Reader, str], Sequence[Message]]
"""`context=`: the thread's messages to send the model, given a reader and the thread."""

APPROVAL = "approval:"
"""The prefix of the event that tells a turn a call was decided (then its call id)."""

SUPERSEDED = "denied: a new message was sent in the thread"


def thread_messages(db: Reader, thread_id: str) -> list[Message]:
    """The thread's messages in order, each with its parts (`Message.parts`)."""
    return list(
        db.exec(
            select(Message).where(Message.thread_id == thread_id).order_by(col(Message.id))
        ).all()
    )


messages: Query[..., list[Message]] = Query(thread_messages)


def send_in(
    db: Writer,
    agent: Any,
    thread_id: str,
    text: str,
    *,
    schedule: bool = True,
    files: Sequence[str | File] | None = None,
) -> tuple[int, str | None]:
    """Rule 1: the reply's id and the turn's run id (None if `schedule` is false)."""
    given: Any = thread_id
    if not isinstance(given, str) or not given:
        raise RxnbError(f"the thread id must be a non-empty str, not {thread_id!r}")
    file_ids = _sent_files(db, agent.name, files)
    written: Any = text
    if not isinstance(written, str) or (not written.strip() and not file_ids):
        raise RxnbError(f"{agent.name}.send: the message is empty; send some text or files")
    now = time.time()
    thread = db.get(Thread, thread_id)
    if thread is None:
        thread = Thread(id=thread_id, title=" ".join(text.split())[:80], created_at=now)
    thread.agent, thread.updated_at = agent.name, now
    db.add(thread)
    busy = _answering(db, thread_id)
    if busy is not None:
        raise RxnbError(
            f"{agent.name}.send: thread {thread_id!r} is still answering (message "
            f"{busy.id} is {busy.status}); wait for its reply, or stop it first: "
            f"rx.agents.stop({busy.id})"
        )
    _deny_pending(db, thread_id)
    listed = json.dumps(file_ids) if file_ids else None
    db.add(
        Message(thread_id=thread_id, role=Role.USER.value, text=text, files=listed, created_at=now)
    )
    reply = Message(
        thread_id=thread_id,
        role=Role.ASSISTANT.value,
        status=MessageStatus.PENDING.value,
        agent=agent.name,
        model=agent.model,
        created_at=now,
    )
    db.add(reply)
    db.flush()
    assert reply.id is not None
    run_id = None
    if schedule:
        run_id = db.schedule(agent.workflow, thread_id=thread_id, message_id=reply.id)
        reply.run_id = run_id
    return reply.id, run_id


def _sent_files(db: Writer, agent: str, files: Any) -> list[str]:
    """Rule 1: the ids of the files sent with a message, each stored."""
    if files is None:
        return []
    if isinstance(files, str | File) or not isinstance(files, Sequence):
        raise RxnbError(
            f"{agent}.send(files={files!r}): files= is a list of file ids (rx.files.put) "
            "or rx.File rows, e.g. files=[file_id]"
        )
    ids: list[str] = []
    for item in files:
        file_id = item.id if isinstance(item, File) else item
        if not isinstance(file_id, str) or db.get(File, file_id) is None:
            raise RxnbError(
                f"{agent}.send: no stored file has id {file_id!r}; store it first with "
                "rx.files.put(...) and send the id it returns"
            )
        if file_id not in ids:
            ids.append(file_id)
    return ids


def _answering(db: Writer, thread_id: str) -> Message | None:
    """Rule 1: a message of the thread that a turn is still writing, unless that turn
    waits for an approval (which a new message denies)."""
    rows = db.exec(
        select(Message).where(Message.thread_id == thread_id, col(Message.status).in_(UNFINISHED))
    ).all()
    asking = {m.run_id for m in rows if m.approval == "pending"}
    return next((m for m in rows if m.run_id is None or m.run_id not in asking), None)


def _deny_pending(db: Writer, thread_id: str) -> None:
    """Rule 1: approvals pending in the thread are denied; their turns are told."""
    waiting = db.exec(
        select(Message).where(Message.thread_id == thread_id, Message.approval == "pending")
    ).all()
    for call in waiting:
        call.approval, call.status = "denied", MessageStatus.DENIED.value
        call.note = call.text = SUPERSEDED
        _tell(db, call, {"approved": False, "note": SUPERSEDED, "superseded": True})


def _tell(db: Writer, call: Message, decision: dict[str, Any]) -> None:
    run = db.get(Run, call.run_id) if call.run_id is not None else None
    if run is not None and RunStatus(run.status) not in TERMINAL:
        send_event_in(db, run.id, f"{APPROVAL}{call.call_id}", decision)


def approve_in(db: Writer, call_id: str, approved: bool = True, note: str = "") -> str:
    """Rule 3: approve (or deny) the tool call `call_id`; its approval after."""
    call = db.exec(select(Message).where(Message.call_id == call_id)).first()
    if call is None:
        raise RxnbError(f"no tool call has id {call_id!r}; the ids are in rx.agents.messages(...)")
    if call.approval != "pending":
        raise RxnbError(
            f"tool call {call_id} ({call.tool_name}) is not waiting for approval: "
            f"{call.approval or 'it needs none'} ({call.status})"
        )
    if not isinstance(approved, bool):
        raise RxnbError(f"approve: approved= is True or False, not {approved!r}")
    note = one_line(str(note or ""))
    call.approval = "approved" if approved else "denied"
    call.status = MessageStatus.PENDING.value if approved else MessageStatus.DENIED.value
    call.note = note or None
    if not approved:
        call.text = f"denied by the user{f': {note}' if note else ''}"
    _tell(db, call, {"approved": approved, "note": note})
    return call.approval


approve: Mutation[..., str] = Mutation(approve_in)


def stop_in(db: Writer, message_id: int) -> int:
    """Rule 4: cancel the turn that wrote message `message_id`; how many runs."""
    message = db.get(Message, message_id)
    if message is None or message.run_id is None:
        raise RxnbError(f"message {message_id!r} was not written by a turn; nothing to stop")
    run = db.get(Run, message.run_id)
    if run is None or RunStatus(run.status) in TERMINAL:
        raise RxnbError(f"the turn that wrote message {message_id} has ended already")
    cancel_in(db, run.id)
    return 1


def model_input(
    db: Reader,
    thread_id: str,
    *,
    instructions: str,
    history: int,
    context: ContextFn | None,
    until: int,
) -> tuple[dict[str, Any] | None, list[dict[str, Any]]]:
    """Reply `until` (None if it is gone), and what the model is sent for it (rule 2).

    Rows are read as dicts, not ORM objects, and (without `context=`) in one statement:
    this runs once per model call."""
    if context is not None:
        found = load_rows(db, _MESSAGES, _MESSAGES.c.id, [until])
        rows = [
            {c.name: getattr(m, c.name) for c in _MESSAGES.c}
            for m in context(db, thread_id)
            if m.id is not None and m.id < until
        ]
        placed = _with_context(db, thread_id, rows, until)
        return (found[0] if found else None), _sent(db, placed, instructions)
    params = {"thread": thread_id, "until": until, "rows": history + 1 + _CONTEXT_ROWS}
    newest = [dict(r) for r in db.connection().execute(_WINDOW, params).mappings()]
    reply = next((r for r in newest if r["id"] == until), None)
    rows = [r for r in newest if r["id"] < until][:history][::-1]
    placed = _placed(rows, [r for r in newest if r["id"] > until], until)
    return reply, _sent(db, placed, instructions)


def _sent(db: Reader, rows: list[dict[str, Any]], instructions: str) -> list[dict[str, Any]]:
    """Rule 2: `rows` (in order, context placed) in OpenAI's format."""
    while rows and rows[0]["role"] == Role.TOOL.value:  # never start inside an exchange
        rows.pop(0)
    out: list[dict[str, Any]] = (
        [{"role": "system", "content": instructions}] if instructions else []
    )
    calls: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        if row["role"] == Role.TOOL.value and row["parent_id"] is not None:
            calls.setdefault(row["parent_id"], []).append(row)
    for row in rows:
        role = row["role"]
        if role == Role.USER.value:
            out.append({"role": "user", "content": _with_files(db, row)})
        elif role == Role.SYSTEM.value:
            out.append({"role": "system", "content": row["text"]})
        elif role == Role.ASSISTANT.value:
            mine = calls.get(row["id"] or -1, [])
            if not row["text"] and not mine:
                continue  # a reply that never streamed (cancelled before it began)
            message: dict[str, Any] = {"role": "assistant", "content": row["text"] or None}
            if mine:
                message["tool_calls"] = [
                    {
                        "id": call["call_id"],
                        "type": "function",
                        "function": {
                            "name": call["tool_name"],
                            "arguments": call["arguments"] or "{}",
                        },
                    }
                    for call in mine
                ]
            out.append(message)
            out.extend(
                {"role": "tool", "tool_call_id": call["call_id"], "content": _told(call)}
                for call in mine
            )
    return out


_MESSAGES = Message.__table__  # type: ignore[attr-defined]
_CONTEXT_ROWS = 8
"""How many rows of context retrieved for the reply (written after it) the window's
statement leaves room for; one is written per retrieval."""
_WINDOW = (
    sa.select(_MESSAGES)
    .where(
        _MESSAGES.c.thread_id == sa.bindparam("thread"),
        sa.or_(
            _MESSAGES.c.id <= sa.bindparam("until"),
            sa.and_(
                _MESSAGES.c.parent_id == sa.bindparam("until"),
                _MESSAGES.c.role == Role.SYSTEM.value,
            ),
        ),
    )
    .order_by(_MESSAGES.c.id.desc())
    .limit(sa.bindparam("rows", type_=sa.Integer))
)
"""The reply, the thread's messages before it (newest first), and the context
retrieved for it (written after it)."""
_CONTEXT = sa.select(_MESSAGES).where(
    _MESSAGES.c.thread_id == sa.bindparam("thread"),
    _MESSAGES.c.role == Role.SYSTEM.value,
    _MESSAGES.c.parent_id >= sa.bindparam("start"),
    _MESSAGES.c.parent_id <= sa.bindparam("until"),
)


def _with_context(
    db: Reader, thread_id: str, rows: list[dict[str, Any]], until: int
) -> list[dict[str, Any]]:
    """Rule 2 for `context=` rows: the context retrieved for their replies, placed."""
    start = min((m["id"] for m in rows if m["id"] is not None), default=until)
    params = {"thread": thread_id, "start": start, "until": until}
    have = {m["id"] for m in rows}
    found = [dict(m) for m in db.connection().execute(_CONTEXT, params).mappings()]
    return _placed(rows, [m for m in found if m["id"] not in have], until)


def _placed(
    rows: list[dict[str, Any]], context: list[dict[str, Any]], until: int
) -> list[dict[str, Any]]:
    """Rule 2: the context retrieved for a reply (a `system` message whose `parent_id`
    is that reply, written after it) goes just before it; that of reply `until` too.
    Context for a reply not among `rows` is left out."""
    system = Role.SYSTEM.value
    replies = {m["id"] for m in rows if m["role"] == Role.ASSISTANT.value} | {until}
    rows = [m for m in rows if not (m["role"] == system and m["parent_id"] not in (None, *replies))]
    rows += [m for m in context if m["parent_id"] in replies]

    def place(m: dict[str, Any]) -> tuple[int, int]:
        if m["role"] == system and m["parent_id"] is not None:
            return (m["parent_id"], 0)
        return (m["id"] or 0, 1)

    return sorted(rows, key=place)


def _with_files(db: Reader, row: dict[str, Any]) -> str:
    """Rule 2: a user message's text, then a line per file sent with it (the model
    is told of a file, by id, not sent its bytes)."""
    lines = [row["text"]] if row["text"] else []
    for file_id in file_ids_of(row["files"]):
        found = db.get(File, file_id)
        if found is None:
            lines.append(f"[attached file {file_id}: deleted]")
        else:
            lines.append(
                f"[attached file {found.name or file_id!r} ({found.content_type}, "
                f"{found.size} bytes), id {file_id}]"
            )
    return "\n".join(lines)


def _told(call: dict[str, Any]) -> str:
    """What the model is told of a call: its result, or why there is none."""
    status = call["status"]
    if status == MessageStatus.DONE.value:
        return str(call["text"])
    if status in (MessageStatus.FAILED.value, MessageStatus.DENIED.value):
        return f"error: {call['text'] or call['error'] or status}"
    return f"error: the call was {status} ({call['note'] or 'no result'})"


def end_messages(db: Writer, run: Run) -> None:
    """Rule 5: the turn's run has ended."""
    if not ties.tied(run, ties.MESSAGES):
        return
    left = db.exec(
        select(Message).where(Message.run_id == run.id, col(Message.status).in_(UNFINISHED))
    ).all()
    cancelled = run.status == RunStatus.CANCELLED.value
    why = "the turn was stopped" if cancelled else f"the turn ended {run.status}"
    for message in left:
        if message.approval == "pending":
            message.approval, message.status = "denied", MessageStatus.DENIED.value
            message.text = message.note = f"denied: {why}"
        elif message.role == Role.TOOL.value:
            message.status = MessageStatus.CANCELLED.value
            message.note = message.note or why
        else:
            message.status = (
                MessageStatus.CANCELLED.value if cancelled else MessageStatus.FAILED.value
            )
            if not cancelled:
                message.error = message.error or one_line(run.error or why)


def interrupt_messages(db: Writer, run: Run, why: str) -> None:
    """Rule 5: the turn's run was handed over or orphaned, and is queued again."""
    left = db.exec(
        select(Message).where(
            Message.run_id == run.id,
            col(Message.status).in_([MessageStatus.STREAMING.value, MessageStatus.RUNNING.value]),
        )
    ).all()
    for message in left:
        if message.role == Role.TOOL.value and message.status == MessageStatus.STREAMING.value:
            db.delete(message)  # its model call streams it again
        elif message.role == Role.TOOL.value:
            message.status = MessageStatus.PENDING.value  # runs again, unless journaled
        else:
            message.status = MessageStatus.PENDING.value
            message.note = f"interrupted ({why}); it resumes where its agent is defined"


def _usage_of_thread(db: Reader, thread_id: str) -> dict[str, Any]:
    """A thread's tokens and cost so far, summed over its replies (a query)."""
    rows = db.exec(
        select(Message).where(Message.thread_id == thread_id, col(Message.usage).is_not(None))
    ).all()
    total: dict[str, Any] = {"prompt_tokens": 0, "completion_tokens": 0, "cost": 0.0}
    for row in rows:
        value = row.usage_json() or {}
        total["prompt_tokens"] += value.get("prompt_tokens") or 0
        total["completion_tokens"] += value.get("completion_tokens") or 0
        total["cost"] += value.get("cost") or 0.0
    return total


def decision_of(payload: Any) -> tuple[bool, str, bool]:
    """An approval event's payload as (approved, note, superseded)."""
    if not isinstance(payload, dict):
        return False, "", False
    return (
        bool(payload.get("approved")),
        str(payload.get("note") or ""),
        bool(payload.get("superseded")),
    )


ties.tie(Message, "run_id", ties.MESSAGES)
ties.GATED.add(end_messages)
if end_messages not in RUN_ENDED:
    RUN_ENDED.append(end_messages)
if interrupt_messages not in RUN_REQUEUED:
    RUN_REQUEUED.append(interrupt_messages)


stop: Mutation[..., int] = Mutation(stop_in)
usage_of_thread: Query[..., dict[str, Any]] = Query(_usage_of_thread)

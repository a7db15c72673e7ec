"""A turn: the agent answers one user message, calling tools as the model asks.

A turn is a durable workflow (`Agent.workflow`); each numbered part below is
journaled, so a turn whose process dies resumes from its journal in any process that
defines the agent, and a finished tool is never called again:

0. With `retrieve=`, a step searches the stored documents for the user's message and
   a mutation step stores the hits as a `system` message for the first reply
   (`_retrieve`); a resumed turn does not search again.

1. A model call (a step) streams the reply's text and its tool calls' arguments into
   their rows (`_model_call`). A call interrupted midway streams again into the same
   reply. The first reply is the one `agent.send` stored; each later one is added by
   the mutation step that ends the step before it.
2. No tool calls: the turn ends with the text (with `output_type`, the text parsed as
   that model; an answer that does not validate is sent back once with the error, as
   a `system` message, then fails the turn with it).
3. Calls to tools with `approval=True` wait, one after another, for their decision
   (`rx.agents.approve`): the run is parked (`waiting`), holding no thread. A denial is
   told to the model as the call's error; a new user message denies the call and ends
   the turn without calling the model again (the new message has its own turn).
4. The other calls run: plain functions, queries and mutations at once (one step
   each, in parallel threads); actions, workflows and other agents as child runs,
   one after another. A tool that raises, arguments that do not validate and a tool
   the agent does not have become that call's error, told to the model; the turn
   goes on. Their results are written to their rows in one mutation step, with the
   next model call's reply; what that call is sent is read in the same transaction
   (`prepared`), so the call reads nothing before it streams (a resumed one reads it).
5. Back to 1, up to `max_steps` model calls; a model that still asks for tools at the
   last one ends the turn failed, its calls cancelled, saying so.
"""

from __future__ import annotations

import json
import re
import threading
from typing import TYPE_CHECKING, Any

import pydantic
from sqlmodel import col, select

from rxnb.agents._model import Message, MessageStatus, Role
from rxnb.agents._model_call import Prepared, call_model, prepare
from rxnb.agents._retrieve import add_context, retrieve
from rxnb.agents._threads import APPROVAL, decision_of, send_in
from rxnb.agents._tools import ToolInputError, declared_files, result_of
from rxnb.agents.hooks import TOOL_CALLING, calling
from rxnb.errors import AgentError, StepError
from rxnb.execution import Action, error_details, error_line, one_line
from rxnb.functions import Mutation
from rxnb.reactive import Store
from rxnb.store import Row, Writer, insert_row, load_rows, update_row
from rxnb.workflows import WorkflowContext

if TYPE_CHECKING:
    from rxnb.agents._agent import Agent


_MESSAGES = Message.__table__  # type: ignore[attr-defined]

ENDED = (
    MessageStatus.DONE.value,
    MessageStatus.FAILED.value,
    MessageStatus.DENIED.value,
    MessageStatus.CANCELLED.value,
)


def run_turn(agent: Agent, ctx: WorkflowContext, thread_id: str, message_id: int) -> Any:
    """The turn's workflow body (see the module docstring)."""
    reply_id, retried = message_id, False
    if agent.retrieve is not None:  # rule 0
        hits = ctx.step(retrieve, ctx, agent, thread_id, message_id, name="retrieve")
        if hits:
            ctx.mutation(
                add_context, thread_id=thread_id, reply_id=message_id, run_id=ctx.run_id, hits=hits
            )
    prepared: Prepared | None = None
    for step in range(agent.max_steps):
        answer = ctx.step(
            call_model, ctx, agent, thread_id, reply_id, prepared, name="model"
        )  # rule 1
        prepared = None
        calls: list[dict[str, str]] = answer["calls"]
        if not calls:
            if agent.output_type is None:  # rule 2
                return answer["text"]
            try:
                return parsed(agent.output_type, answer["text"]).model_dump(mode="json")
            except (ValueError, pydantic.ValidationError) as exc:
                problem = one_line(f"{exc}")
                if retried or step == agent.max_steps - 1:
                    raise AgentError(
                        f"the answer did not validate as {agent.output_type.__name__}"
                        f"{' twice' if retried else f' at the last of max_steps={step + 1}'}: "
                        f"{problem}"
                    ) from None
                retried = True
                reply_id = ctx.mutation(
                    add_note,
                    thread_id=thread_id,
                    text=f"Your answer is not valid JSON for the schema "
                    f"{agent.output_type.__name__} ({problem}). Answer again with only that JSON.",
                    run_id=ctx.run_id,
                    after=reply_id,
                    step=step + 1,
                )
                continue
        if step == agent.max_steps - 1:  # rule 5
            why = (
                f"the agent reached max_steps={agent.max_steps} model calls in this turn and "
                "the model still asked for tools; raise max_steps= on rx.Agent(...)"
            )
            ctx.mutation(
                end_calls, call_ids=[c["call_id"] for c in calls], note=why, reply_id=reply_id
            )
            raise AgentError(why)
        outcomes, superseded = _decide(agent, ctx, calls)  # rule 3
        if superseded:
            left = [c["call_id"] for c in calls if c["call_id"] not in outcomes]
            ctx.mutation(end_calls, call_ids=left, note="a new message was sent", reply_id=None)
            return answer["text"]
        outcomes.update(_run_calls(agent, ctx, thread_id, calls, outcomes))  # rule 4
        _prepared.value = None
        reply_id = ctx.mutation(
            record_results,
            results=[outcomes[c["call_id"]] for c in calls],
            after=reply_id,
            run_id=ctx.run_id,
            step=step + 1,
            agent=agent.name,
        )
        prepared = _prepared.value  # committed with it (None when replayed from the journal)
        _prepared.value = None
    raise AssertionError("unreachable: the last step returns or raises")  # pragma: no cover


def _decide(
    agent: Agent, ctx: WorkflowContext, calls: list[dict[str, str]]
) -> tuple[dict[str, dict[str, Any]], bool]:
    """Rule 3: the outcomes of denied calls, and whether a new message ended the turn."""
    outcomes: dict[str, dict[str, Any]] = {}
    for call in calls:
        tool = agent.tool_named(call["name"])
        if tool is None or not tool.approval:
            continue
        approved, note, superseded = decision_of(ctx.wait_for_event(f"{APPROVAL}{call['call_id']}"))
        if superseded:
            return outcomes, True
        if not approved:
            text = f"denied by the user{f': {note}' if note else ''}"
            outcomes[call["call_id"]] = _outcome(call, MessageStatus.DENIED.value, text)
    return outcomes, False


def _run_calls(
    agent: Agent,
    ctx: WorkflowContext,
    thread_id: str,
    calls: list[dict[str, str]],
    decided: dict[str, dict[str, Any]],
) -> dict[str, dict[str, Any]]:
    """Rule 4: the outcome of each call not decided already."""
    outcomes: dict[str, dict[str, Any]] = {}
    at_once: list[dict[str, str]] = []
    children: list[dict[str, str]] = []
    for call in calls:
        if call["call_id"] in decided:
            continue
        tool = agent.tool_named(call["name"])
        (children if tool is not None and tool.runs_as_child else at_once).append(call)
    if at_once:
        if decided or any(getattr(agent.tool_named(c["name"]), "approval", False) for c in calls):
            ids = [c["call_id"] for c in at_once]  # else the model call marked them running
            ctx.store.database.write(lambda db: _mark_running(db, ids))
        done = ctx.parallel([(run_call, agent, ctx.store, call) for call in at_once])
        outcomes.update({call["call_id"]: o for call, o in zip(at_once, done, strict=True)})
    for call in children:
        outcomes[call["call_id"]] = _run_child(agent, ctx, thread_id, call)
    return outcomes


def run_call(agent: Agent, store: Store, call: dict[str, str]) -> dict[str, Any]:
    """Rule 4: one call, as a step; its outcome (an error is an outcome, not a raise),
    told to the `TOOL_CALLING` hooks (the tracing layer's: empty unless it is on)."""
    if TOOL_CALLING:
        return calling(agent.name, call, lambda: _call(agent, store, call))
    return _call(agent, store, call)


def _call(agent: Agent, store: Store, call: dict[str, str]) -> dict[str, Any]:
    tool = agent.tool_named(call["name"])
    if tool is None:
        return _outcome(call, MessageStatus.FAILED.value, _unknown(agent, call["name"]))
    try:
        result = tool.call(store, tool.arguments(call["arguments"]))
        return _outcome(call, MessageStatus.DONE.value, result.text, files=result.files)
    except ToolInputError as exc:
        return _outcome(call, MessageStatus.FAILED.value, str(exc))
    except Exception as exc:
        line = error_line(exc, where=False)
        return _outcome(
            call, MessageStatus.FAILED.value, line, error=line, detail=error_details(exc)
        )


def _run_child(
    agent: Agent, ctx: WorkflowContext, thread_id: str, call: dict[str, str]
) -> dict[str, Any]:
    """Rule 4: an action, workflow or agent called as a tool: a child run."""
    tool = agent.tool_named(call["name"])
    assert tool is not None
    try:
        arguments = tool.arguments(call["arguments"])
    except ToolInputError as exc:
        return _outcome(call, MessageStatus.FAILED.value, str(exc))
    try:
        sub: Agent | None = getattr(tool.fn, "rx_agent", None)
        if sub is not None:
            child_thread = f"{thread_id}/{call['call_id']}"
            child_reply = ctx.mutation(
                start_thread, agent=sub.name, thread_id=child_thread, text=arguments["input"]
            )
            value = ctx.child(sub.workflow, thread_id=child_thread, message_id=child_reply)
        else:
            assert isinstance(tool.fn, Action)
            value = ctx.child(tool.fn, **arguments)
    except StepError as exc:
        return _outcome(
            call, MessageStatus.FAILED.value, one_line(str(exc)), error=one_line(str(exc))
        )
    if sub is None:
        value = declared_files(getattr(tool.fn, "fn", tool.fn), value)
    result = result_of(value)
    return _outcome(call, MessageStatus.DONE.value, result.text, files=result.files)


def _outcome(
    call: dict[str, str],
    status: str,
    text: str,
    *,
    error: str | None = None,
    detail: str | None = None,
    files: list[str] | None = None,
) -> dict[str, Any]:
    return {
        "call_id": call["call_id"],
        "status": status,
        "text": text,
        "error": error,
        "detail": detail,
        "files": files or [],
    }


def _unknown(agent: Agent, name: str) -> str:
    have = ", ".join(t.name for t in agent.tools) or "none"
    return f"there is no tool named {name!r}; the tools are: {have}"


def parsed(output_type: type[pydantic.BaseModel], text: str) -> pydantic.BaseModel:
    """Rule 2: the answer as `output_type` (a fenced ```json block is unwrapped)."""
    fenced = re.fullmatch(r"\s*```(?:json)?\s*(.*?)\s*```\s*", text, flags=re.DOTALL)
    return output_type.model_validate_json(fenced.group(1) if fenced else text)


def _mark_running(db: Writer, call_ids: list[str]) -> None:
    """Calls about to run (those not run already: a replay finds them done)."""
    for row in db.exec(select(Message).where(col(Message.call_id).in_(call_ids))).all():
        if row.status == MessageStatus.PENDING.value:
            row.status = MessageStatus.RUNNING.value


# -- the mutation steps (journaled with their transaction) ------------------------------


_prepared = threading.local()
"""Rule 4: `.value`, the next model call's input read by the mutation step that added
its reply (on the turn's thread, which reads it once the step has committed)."""


def _next_reply(db: Writer, after: int, run_id: str | None, step: int) -> int:
    """A new reply for model call `step`, after reply `after`; its id."""
    reply_id: int = _new_reply(db, after, run_id, step)["id"]
    return reply_id


def _new_reply(db: Writer, after: int, run_id: str | None, step: int) -> Row:
    """A new reply for model call `step`, after reply `after`: its row."""
    found = load_rows(db, _MESSAGES, _MESSAGES.c.id, [after])
    assert found, f"reply {after} is gone"
    before = found[0]
    values = {
        "thread_id": before["thread_id"],
        "role": Role.ASSISTANT.value,
        "status": MessageStatus.PENDING.value,
        "agent": before["agent"],
        "model": before["model"],
        "run_id": run_id,
        "step": step,
    }
    return insert_row(db, _MESSAGES, values)


def _add_note(
    db: Writer, thread_id: str, text: str, run_id: str | None, after: int, step: int
) -> int:
    """A `system` message for the model (rule 2); the next reply's id."""
    values = {"thread_id": thread_id, "role": Role.SYSTEM.value, "text": text, "run_id": run_id}
    insert_row(db, _MESSAGES, values)
    return _next_reply(db, after, run_id, step)


def _record_results(
    db: Writer,
    results: list[dict[str, Any]],
    after: int,
    run_id: str | None,
    step: int,
    agent: str | None = None,
) -> int:
    """Rule 4: each call's outcome on its row; the next reply's id (rows, not ORM
    objects: this runs once per model call that asked for tools). With `agent` (its
    name), what the next model call is sent, read here, is left in `_prepared`."""
    by_id = {r["call_id"]: r for r in results}
    for row in load_rows(db, _MESSAGES, _MESSAGES.c.call_id, by_id):
        outcome = by_id[row["call_id"]]
        listed = outcome.get("files") or []  # a step journaled before files had none
        changes = {
            "status": outcome["status"],
            "text": outcome["text"],
            "error": outcome.get("error"),
            "detail": outcome.get("detail"),
            "files": json.dumps(listed) if listed else None,
        }
        update_row(db, _MESSAGES, row, changes)
    reply = _new_reply(db, after, run_id, step)
    if agent is not None:
        from rxnb.agents._agent import agent_named

        _prepared.value = prepare(db, agent_named(agent), reply["thread_id"], reply["id"])
    reply_id: int = reply["id"]
    return reply_id


def _end_calls(db: Writer, call_ids: list[str], note: str, reply_id: int | None) -> int:
    """Calls that will not run (rules 3, 5): cancelled, saying why."""
    rows = db.exec(select(Message).where(col(Message.call_id).in_(call_ids))).all()
    for row in rows:
        if row.status in ENDED:  # decided already (denied by a new message, say)
            continue
        row.status, row.note = MessageStatus.CANCELLED.value, note
        if row.approval == "pending":
            row.approval = "denied"
    reply = db.get(Message, reply_id) if reply_id is not None else None
    if reply is not None:
        reply.error = one_line(note)
    return len(rows)


def _start_thread(db: Writer, agent: str, thread_id: str, text: str) -> int:
    """An agent called as a tool: its own thread, the call's input as the user's
    message, a pending reply (its turn is the caller's child run)."""
    from rxnb.agents._agent import agent_named

    reply_id, _ = send_in(db, agent_named(agent), thread_id, text, schedule=False)
    return reply_id


add_note: Mutation[..., int] = Mutation(_add_note)
record_results: Mutation[..., int] = Mutation(_record_results)
end_calls: Mutation[..., int] = Mutation(_end_calls)
start_thread: Mutation[..., int] = Mutation(_start_thread)

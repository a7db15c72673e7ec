"""What the spans of one `otel_jobs.helper` turn must be, wherever they were read (an
in-memory exporter, the OTLP collector): one trace, parented
cell → invoke_agent → steps → chat / execute_tool, with the GenAI attributes, and
message text only when it was opted in."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from otel_jobs import ANSWER, PROMPT


@dataclass(frozen=True)
class Seen:
    """A span, however it was read."""

    name: str
    trace_id: str
    span_id: str
    parent_id: str
    attributes: dict[str, Any]
    service: str = ""


def from_sdk(span: Any) -> Seen:
    """A `ReadableSpan` of the SDK (the in-memory exporter's)."""
    parent = span.parent
    return Seen(
        name=span.name,
        trace_id=f"{span.context.trace_id:032x}",
        span_id=f"{span.context.span_id:016x}",
        parent_id=f"{parent.span_id:016x}" if parent is not None else "",
        attributes=dict(span.attributes or {}),
        service=str(span.resource.attributes.get("service.name", "")),
    )


def named(spans: list[Seen], name: str) -> list[Seen]:
    return [s for s in spans if s.name == name]


def turn_finished(spans: list[Seen]) -> bool:
    """Whether every span of the turn has arrived (spans arrive as they end)."""
    return (
        len(named(spans, "chat rxnb/scripted")) == 2
        and len(named(spans, "invoke_agent otel-helper")) == 1
        and len(named(spans, "execute_tool weather")) == 1
    )


def check_turn(
    spans: list[Seen], cell: Seen, thread_id: str, call_id: str, *, content: bool
) -> dict[str, Any]:
    """Assert the tree and attributes of the turn started under `cell`; the spans by
    role (`turn`, `models`, `chats`, `call_step`, `tool`)."""
    assert {s.trace_id for s in spans} == {cell.trace_id}, "one trace"
    (turn,) = named(spans, "invoke_agent otel-helper")
    assert turn.parent_id == cell.span_id
    assert turn.attributes["gen_ai.operation.name"] == "invoke_agent"
    assert turn.attributes["gen_ai.agent.name"] == "otel-helper"
    assert turn.attributes["gen_ai.conversation.id"] == thread_id
    assert turn.attributes["rxnb.run.outcome"] == "returned"
    assert turn.attributes["rxnb.run.kind"] == "workflow"

    models = named(spans, "step model")
    (call_step,) = named(spans, "step run_call")
    assert len(models) == 2
    assert all(s.parent_id == turn.span_id for s in [*models, call_step])
    assert sorted(s.attributes["rxnb.step.seq"] for s in [*models, call_step]) == [0, 1, 3]

    seq_of = {m.span_id: m.attributes["rxnb.step.seq"] for m in models}
    chats = named(spans, "chat rxnb/scripted")
    assert sorted(seq_of.get(c.parent_id, -1) for c in chats) == [0, 3], "a chat in each model step"
    chats.sort(key=lambda c: seq_of[c.parent_id])
    for chat in chats:
        a = chat.attributes
        assert a["gen_ai.operation.name"] == "chat"
        assert a["gen_ai.request.model"] == "rxnb/scripted"
        assert a["gen_ai.provider.name"] == "rxnb"
        assert a["gen_ai.conversation.id"] == thread_id
        assert a["gen_ai.agent.name"] == "otel-helper"
        assert a["gen_ai.usage.input_tokens"] > 0 and a["gen_ai.usage.output_tokens"] > 0
    assert list(chats[0].attributes["gen_ai.response.finish_reasons"]) == ["tool_calls"]

    (tool,) = named(spans, "execute_tool weather")
    assert tool.parent_id == call_step.span_id
    assert tool.attributes["gen_ai.operation.name"] == "execute_tool"
    assert tool.attributes["gen_ai.tool.name"] == "weather"
    assert tool.attributes["gen_ai.tool.call.id"] == call_id
    assert tool.attributes["gen_ai.conversation.id"] == thread_id

    everything = json.dumps([s.attributes for s in spans], default=str)
    if not content:
        assert PROMPT not in everything and ANSWER not in everything
        assert "Paris" not in everything  # not the tool's arguments or result either
        assert not any(k.endswith(".messages") for s in spans for k in s.attributes)
    else:
        sent = json.loads(chats[0].attributes["gen_ai.input.messages"])
        assert {"type": "text", "content": PROMPT} in sent[-1]["parts"]
        said = json.loads(chats[1].attributes["gen_ai.output.messages"])
        assert said[0]["parts"] == [{"type": "text", "content": ANSWER}]
        asked = json.loads(chats[0].attributes["gen_ai.output.messages"])[0]["parts"]
        # the provider's own call id: rxnb gives each call an id unique in its thread
        assert [(p["type"], p["name"], p["arguments"]) for p in asked[1:]] == [
            ("tool_call", "weather", {"city": "Paris"})
        ], asked
        told = json.loads(chats[1].attributes["gen_ai.input.messages"])[-1]
        assert told == {
            "role": "tool",
            "parts": [{"type": "tool_call_response", "id": call_id, "response": "sunny in Paris"}],
        }, told
        assert json.loads(tool.attributes["gen_ai.tool.call.arguments"]) == {"city": "Paris"}
        assert tool.attributes["gen_ai.tool.call.result"] == "sunny in Paris"
    return {"turn": turn, "models": models, "chats": chats, "call_step": call_step, "tool": tool}

"""The fake server's tool calls and turn-by-turn answers, through litellm's real client."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from fake_openai import ByTurn, FakeOpenAI, Ok, ToolCalls

from rxnb.llm import load_litellm

WEATHER = {
    "type": "function",
    "function": {
        "name": "weather",
        "description": "The weather in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string"}},
            "required": ["city"],
        },
    },
}
ASK: list[dict[str, Any]] = [{"role": "user", "content": "Weather in Paris and Rome?"}]


@dataclass
class Streamed:
    """A streamed reply, its deltas folded: text, tool calls by index, finish, usage."""

    text: str = ""
    calls: dict[int, dict[str, str]] = field(default_factory=dict)
    finish: str | None = None
    usage: Any = None
    call_deltas: int = 0


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    load_litellm()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI()
    yield fake
    fake.close()


def complete(server: FakeOpenAI, messages: list[dict[str, Any]]) -> Streamed:
    chunks = load_litellm().completion(
        model="openai/fake",
        api_base=server.api_base,
        api_key="sk-test",
        messages=messages,
        stream=True,
        stream_options={"include_usage": True},
        tools=[WEATHER],
    )
    out = Streamed()
    for chunk in chunks:
        if getattr(chunk, "usage", None) is not None:
            out.usage = chunk.usage
        for choice in chunk.choices:
            out.text += choice.delta.content or ""
            for delta in choice.delta.tool_calls or []:
                out.call_deltas += 1
                call = out.calls.setdefault(delta.index, {"id": "", "name": "", "arguments": ""})
                call["id"] = delta.id or call["id"]
                call["name"] = delta.function.name or call["name"]
                call["arguments"] += delta.function.arguments or ""
            out.finish = choice.finish_reason or out.finish
    return out


def test_tool_calls_stream_as_openai_streams_them(server: FakeOpenAI) -> None:
    paris, rome = '{"city": "Paris"}', '{"city": "Rome"}'
    server.plan = [
        ToolCalls(["Let", " me", " check"], [("weather", paris), ("weather", rome)], pieces=4)
    ]
    reply = complete(server, ASK)
    assert reply.text == "Let me check"
    assert sorted(reply.calls) == [0, 1]
    assert [(c["name"], c["arguments"]) for c in reply.calls.values()] == [
        ("weather", paris),
        ("weather", rome),
    ]
    ids = [c["id"] for c in reply.calls.values()]
    assert all(i.startswith("call_") for i in ids) and len(set(ids)) == 2
    assert reply.call_deltas == 2 * 4, "each call's arguments in 4 pieces"
    assert reply.finish == "tool_calls"
    assert reply.usage is not None and reply.usage.total_tokens > 0
    assert reply.usage.total_tokens == reply.usage.prompt_tokens + reply.usage.completion_tokens
    [body] = server.bodies
    assert body["messages"] == ASK and body["tools"][0]["function"]["name"] == "weather"
    assert body["stream"] is True


def test_by_turn_answers_by_the_conversation_not_by_the_request_count(
    server: FakeOpenAI,
) -> None:
    paris = '{"city":"Paris"}'
    server.plan = [ByTurn([ToolCalls(calls=[("weather", paris)]), Ok(["It", " is", " sunny"])])]
    first = complete(server, ASK)
    assert first.text == "" and first.finish == "tool_calls"
    [call] = first.calls.values()
    assert (call["name"], call["arguments"]) == ("weather", paris)
    went_on: list[dict[str, Any]] = [
        *ASK,
        {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": call["id"],
                    "type": "function",
                    "function": {"name": call["name"], "arguments": call["arguments"]},
                }
            ],
        },
        {"role": "tool", "tool_call_id": call["id"], "content": json.dumps({"sky": "sunny"})},
    ]
    second = complete(server, went_on)
    assert second.text == "It is sunny" and not second.calls and second.finish == "stop"
    assert second.usage is not None
    again = complete(server, ASK)  # a client that crashed and asked again
    assert again.finish == "tool_calls"
    assert [(c["name"], c["arguments"]) for c in again.calls.values()] == [("weather", paris)]
    assert again.calls[0]["id"] != call["id"], "ids are unique per request"
    assert len(server.bodies) == 3
    roles = [m["role"] for m in server.bodies[1]["messages"]]
    assert roles == ["user", "assistant", "tool"]
    assistant, tool = server.bodies[1]["messages"][1:]
    assert [c["id"] for c in assistant["tool_calls"]] == [call["id"]]
    assert tool["tool_call_id"] == call["id"]
    assert [m["role"] for m in server.bodies[2]["messages"]] == ["user"]
    assert [e for _, e in server.events] == ["request ToolCalls", "request Ok", "request ToolCalls"]

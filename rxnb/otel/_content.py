"""Prompt and completion text as the OpenTelemetry GenAI conventions carry it, for
spans of a process that opted in (`capture_content`): `gen_ai.input.messages` and
`gen_ai.output.messages`, each a JSON string of messages made of parts.

    [{"role": "user", "parts": [{"type": "text", "content": "Weather in Paris?"}]},
     {"role": "assistant", "parts": [{"type": "tool_call", "id": "c1", "name": "weather",
                                      "arguments": {"city": "Paris"}}]},
     {"role": "tool", "parts": [{"type": "tool_call_response", "id": "c1",
                                 "response": "sunny"}]}]

Media (an image part) is named by its type, never copied into the span.
"""

from __future__ import annotations

import contextlib
import json
from typing import Any


def input_messages(messages: list[dict[str, Any]]) -> str:
    """What a model was sent (OpenAI's message format, as litellm takes it)."""
    return _dumps([_message(m) for m in messages])


def output_messages(text: str, tool_calls: list[dict[str, str]], finish_reason: str | None) -> str:
    """What a model answered: its text and the tool calls it asked for."""
    parts: list[dict[str, Any]] = [{"type": "text", "content": text}] if text else []
    parts += [_tool_call(c.get("id"), c.get("name"), c.get("arguments")) for c in tool_calls]
    message: dict[str, Any] = {"role": "assistant", "parts": parts}
    if finish_reason is not None:
        message["finish_reason"] = finish_reason
    return _dumps([message])


def _message(message: dict[str, Any]) -> dict[str, Any]:
    role = str(message.get("role", "user"))
    content = message.get("content")
    if role == "tool":
        part = {
            "type": "tool_call_response",
            "id": message.get("tool_call_id"),
            "response": content,
        }
        return {"role": role, "parts": [part]}
    parts: list[dict[str, Any]] = []
    if isinstance(content, str):
        parts.append({"type": "text", "content": content})
    elif isinstance(content, list):
        for item in content:
            kind = item.get("type") if isinstance(item, dict) else None
            if kind == "text":
                parts.append({"type": "text", "content": item.get("text", "")})
            else:  # an image or a file: named, not copied
                parts.append({"type": str(kind or "unknown")})
    for call in message.get("tool_calls") or ():
        function = call.get("function") or {}
        parts.append(_tool_call(call.get("id"), function.get("name"), function.get("arguments")))
    return {"role": role, "parts": parts}


def _tool_call(call_id: Any, name: Any, arguments: Any) -> dict[str, Any]:
    if isinstance(arguments, str):  # the JSON text the model sent: an object if it parses
        with contextlib.suppress(ValueError):
            arguments = json.loads(arguments) if arguments.strip() else {}
    return {"type": "tool_call", "id": call_id, "name": name, "arguments": arguments}


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, default=str)

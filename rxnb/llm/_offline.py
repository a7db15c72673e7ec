"""Embedded offline models, registered with litellm as the custom provider `rxnb`.

- `rxnb/echo` answers with the last user message (the text parts of a message whose
  content is a list of parts), a word at a time.
- `rxnb/embed` embeds texts offline (`rxnb.llm._embed`; `size=`, default 384).
- `rxnb/scripted` answers with `script=` (a string), a word at a time, then asks for
  the tool calls in `tool_calls=` (`[{"name": "weather", "arguments": {"city": "Paris"}}]`),
  their arguments streamed in pieces as real providers do (arguments given as a str
  are sent as they are: the JSON text a provider would send, valid or not).
  `turns=[{"script": ..., "tool_calls": [...]}, ...]` scripts a conversation: the turn
  used is the number of assistant messages after the last user message (the last turn
  once they run out), so a request asked again gets the same answer, and an agent's
  next model call (after its tool results) gets the next one.

Both take `delay=` (seconds per token, default 0.02) and report usage, so examples,
tests and Binder run with no key and no network. Options are checked when the
completion is asked for, not midway through its stream.

Faults, for tests (`rxnb.testing.scripted` sets them): `rate_limited=N` answers the
first N requests that carry the same `faults=` key with a 429 (`Retry-After:
retry_after=`, default 0.01 s), as a provider over its limit does; `cut_after=K`
breaks the stream after K tokens, as a dropped connection does.
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from typing import Any

import httpx
import litellm
from litellm.exceptions import APIConnectionError, BadRequestError, NotFoundError, RateLimitError
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

from rxnb.errors import ArgumentError
from rxnb.llm._embed import OFFLINE_DIMENSIONS, check_dimensions, offline_embedding

PROVIDER = "rxnb"
_TOKENS = re.compile(r"\s*\S+|\s+")


def tokens(text: str) -> list[str]:
    """`text` cut into word-sized tokens that join back to exactly `text`."""
    return _TOKENS.findall(text)


def _answer(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    if model == "scripted":
        script = params.get("script", "" if params.get("tool_calls") else None)
        if not isinstance(script, str):
            raise _bad(
                model, "rxnb/scripted needs script='the text to answer with' (or tool_calls=)"
            )
        return script
    if model == "echo":
        for message in reversed(messages):
            if message.get("role") == "user":
                return _text_of(message.get("content"))
        return ""
    raise NotFoundError(
        message=f"rxnb has no offline model {model!r}; use rxnb/echo or rxnb/scripted",
        model=f"{PROVIDER}/{model}",
        llm_provider=PROVIDER,
    )


def _turn(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> dict[str, Any]:
    """`params` with the turn `turns=` scripts for this conversation merged in."""
    turns = params.get("turns")
    if turns is None:
        return params
    if not (isinstance(turns, list) and turns and all(isinstance(t, dict) for t in turns)):
        raise _bad(
            model,
            f"rxnb/{model}: turns= is a list of dicts such as [{{'script': 'text', "
            f"'tool_calls': [...]}}], not {turns!r:.80}",
        )
    after = 0
    for message in messages:
        role = message.get("role")
        after = 0 if role == "user" else after + (role == "assistant")
    return {**params, **turns[min(after, len(turns) - 1)]}


def _text_of(content: Any) -> str:
    """A message's text: its content, or the text parts of a list of parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(
            str(part.get("text", ""))
            for part in content
            if isinstance(part, dict) and part.get("type") == "text"
        )
    return "" if content is None else str(content)


def _bad(model: str, message: str) -> BadRequestError:
    return BadRequestError(message=message, model=f"{PROVIDER}/{model}", llm_provider=PROVIDER)


def _tool_calls(params: dict[str, Any]) -> list[tuple[str, str]]:
    """`tool_calls=` as (name, JSON arguments), or a clear error."""
    calls = params.get("tool_calls") or []
    out = []
    for call in calls if isinstance(calls, list) else [calls]:
        if not (isinstance(call, dict) and isinstance(call.get("name"), str)):
            raise _bad(
                "scripted",
                f"rxnb/scripted: each of tool_calls= is "
                f"{{'name': str, 'arguments': dict}}, not {call!r}",
            )
        arguments = call.get("arguments", {})
        if not isinstance(arguments, str):  # a str is the JSON text itself
            try:
                arguments = json.dumps(arguments, ensure_ascii=False)
            except (TypeError, ValueError) as exc:
                raise _bad(
                    "scripted",
                    f"rxnb/scripted: the arguments of tool call {call['name']!r} cannot be "
                    f"sent as JSON ({exc}); give a dict of JSON values, or the JSON text",
                ) from None
        out.append((call["name"], arguments))
    return out


def _count(model: str, params: dict[str, Any], name: str) -> int | None:
    """Option `name` as a count (an int >= 0), None when not given, or a clear error."""
    value = params.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _bad(model, f"rxnb/{model}: {name}= is a count (an int >= 0), not {value!r}")
    return value


_REQUESTS: dict[str, int] = {}
"""Requests seen so far per `faults=` key (this process), for `rate_limited=`."""
_requests_lock = threading.Lock()


def _rate_limit(model: str, params: dict[str, Any]) -> None:
    """Rule `rate_limited=N`: the first N requests with this `faults=` key get a 429."""
    limited = _count(model, params, "rate_limited")
    if not limited:
        return
    key = params.get("faults")
    if not isinstance(key, str) or not key:
        raise _bad(
            model,
            f"rxnb/{model}: rate_limited= counts requests by a faults='key' (a str); "
            "rxnb.testing.scripted(rate_limited=N) sets one",
        )
    after = params.get("retry_after", 0.01)
    with _requests_lock:
        seen = _REQUESTS[key] = _REQUESTS.get(key, 0) + 1
    if seen <= limited:
        request = httpx.Request("POST", "http://rxnb.offline/chat/completions")
        raise RateLimitError(
            message=f"rxnb/{model}: rate limited ({seen} of {limited}, rate_limited=)",
            llm_provider=PROVIDER,
            model=model,
            response=httpx.Response(429, headers={"retry-after": str(after)}, request=request),
        )


def _delay(model: str, params: dict[str, Any]) -> float:
    """`delay=` as seconds per token, or a clear error."""
    value = params.get("delay", 0.02)
    try:
        delay = float(value)
    except (TypeError, ValueError):
        delay = float("nan")
    if not delay >= 0 or delay == float("inf"):  # NaN fails every comparison
        raise _bad(
            model, f"rxnb/{model}: delay= is seconds per token (a number >= 0), not {value!r}"
        )
    return delay


def _chunk(text: str, **extra: Any) -> GenericStreamingChunk:
    chunk: GenericStreamingChunk = {
        "text": text,
        "is_finished": False,
        "finish_reason": "",
        "usage": None,
        "index": 0,
    }
    chunk.update(extra)  # type: ignore[typeddict-item]
    return chunk


class OfflineLLM(CustomLLM):
    """litellm's handler for `rxnb/...` models: no network, configurable speed."""

    def streaming(
        self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
    ) -> Iterator[GenericStreamingChunk]:
        """The stream, its options checked first (a generator would check them only
        when read, and litellm would report a bad option as a broken stream)."""
        params = _turn(model, messages, kwargs.get("optional_params") or {})
        text = _answer(model, messages, params)
        delay = _delay(model, params)
        calls = _tool_calls(params) if model == "scripted" else []
        cut = _count(model, params, "cut_after")
        _rate_limit(model, params)
        return self._chunks(model, text, delay, calls, messages, cut)

    def _chunks(
        self,
        model: str,
        text: str,
        delay: float,
        calls: list[tuple[str, str]],
        messages: list[dict[str, Any]],
        cut: int | None = None,
    ) -> Iterator[GenericStreamingChunk]:
        pieces = tokens(text)
        for sent, piece in enumerate(pieces):
            if cut is not None and sent >= cut:
                raise APIConnectionError(
                    message=f"rxnb/{model}: the stream was cut after {cut} tokens (cut_after)",
                    llm_provider=PROVIDER,
                    model=model,
                )
            if delay > 0:
                time.sleep(delay)
            yield _chunk(piece)
        for index, (name, arguments) in enumerate(calls):
            head, tail = arguments[: len(arguments) // 2], arguments[len(arguments) // 2 :]
            for part, first in ((head, True), (tail, False)):
                if delay > 0:
                    time.sleep(delay)
                function = {"name": name if first else None, "arguments": part}
                call = {"id": f"call_{index}" if first else None, "type": "function"}
                yield _chunk("", tool_use={**call, "function": function, "index": index})
        prompt = sum(len(tokens(_text_of(m.get("content")))) for m in messages)
        pieces = [*pieces, *(name for name, _ in calls)]
        yield {
            "text": "",
            "is_finished": True,
            "finish_reason": "tool_calls" if calls else "stop",
            "usage": {
                "prompt_tokens": prompt,
                "completion_tokens": len(pieces),
                "total_tokens": prompt + len(pieces),
            },
            "index": 0,
        }

    def completion(
        self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
    ) -> Any:
        params = _turn(model, messages, kwargs.get("optional_params") or {})
        text = _answer(model, messages, params)
        return litellm.completion(
            model="openai/rxnb-offline", messages=messages, mock_response=text
        )

    def embedding(
        self, model: str, input: list[Any], model_response: Any, *args: Any, **kwargs: Any
    ) -> Any:
        """`rxnb/embed`: see `rxnb.llm._embed` (`size=`, default 384)."""
        if model != "embed":
            raise NotFoundError(
                message=f"rxnb has no offline embedding model {model!r}; use rxnb/embed",
                model=f"{PROVIDER}/{model}",
                llm_provider=PROVIDER,
            )
        params = kwargs.get("optional_params") or {}
        try:
            dimensions = check_dimensions(params.get("size", OFFLINE_DIMENSIONS))
        except ArgumentError as exc:
            raise _bad(model, str(exc)) from None
        texts = [_text_of(item) for item in input]
        model_response.model = f"{PROVIDER}/{model}"
        model_response.data = [
            {"object": "embedding", "index": i, "embedding": offline_embedding(text, dimensions)}
            for i, text in enumerate(texts)
        ]
        prompt = sum(len(tokens(text)) for text in texts)
        model_response.usage = litellm.Usage(prompt_tokens=prompt, total_tokens=prompt)
        return model_response

    async def aembedding(
        self, model: str, input: list[Any], model_response: Any, *args: Any, **kwargs: Any
    ) -> Any:
        return self.embedding(model, input, model_response, *args, **kwargs)


_handler = OfflineLLM()


FREE = {
    "litellm_provider": PROVIDER,
    "input_cost_per_token": 0.0,
    "output_cost_per_token": 0.0,
    "cache_creation_input_token_cost": 0.0,
    "cache_read_input_token_cost": 0.0,
}
"""The price litellm is told for the offline models: nothing. Without it litellm
searches its whole cost map for them on every call (over a millisecond of CPU), and
their usage would have no cost rather than a cost of 0."""


def register() -> None:
    """Make `rxnb/echo`, `rxnb/scripted` and `rxnb/embed` known to litellm, at no
    cost (idempotent)."""
    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": PROVIDER, "custom_handler": _handler},
        ]
        litellm.utils.custom_llm_setup()  # type: ignore[no-untyped-call]
        litellm.register_model(
            {
                f"{PROVIDER}/{name}": {**FREE, "mode": mode}
                for name, mode in (("echo", "chat"), ("scripted", "chat"), ("embed", "embedding"))
            }
        )

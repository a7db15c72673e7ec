"""Embedded offline models, registered with litellm as the custom provider `rxnb`.

- `rxnb/echo` answers with the last user message, a word at a time.
- `rxnb/scripted` answers with `script=` (a string), a word at a time.

Both take `delay=` (seconds per token, default 0.02) and report usage, so examples,
tests and Binder run with no key and no network.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import litellm
from litellm.exceptions import BadRequestError, NotFoundError
from litellm.llms.custom_llm import CustomLLM
from litellm.types.utils import GenericStreamingChunk

PROVIDER = "rxnb"
_TOKENS = re.compile(r"\s*\S+|\s+")


def tokens(text: str) -> list[str]:
    """`text` cut into word-sized tokens that join back to exactly `text`."""
    return _TOKENS.findall(text)


def _answer(model: str, messages: list[dict[str, Any]], params: dict[str, Any]) -> str:
    if model == "scripted":
        script = params.get("script")
        if not isinstance(script, str):
            raise BadRequestError(
                message="rxnb/scripted needs script='the text to answer with'",
                model=f"{PROVIDER}/{model}",
                llm_provider=PROVIDER,
            )
        return script
    if model == "echo":
        for message in reversed(messages):
            if message.get("role") == "user":
                content = message.get("content")
                return content if isinstance(content, str) else str(content)
        return ""
    raise NotFoundError(
        message=f"rxnb has no offline model {model!r}; use rxnb/echo or rxnb/scripted",
        model=f"{PROVIDER}/{model}",
        llm_provider=PROVIDER,
    )


class OfflineLLM(CustomLLM):
    """litellm's handler for `rxnb/...` models: no network, configurable speed."""

    def streaming(
        self, model: str, messages: list[dict[str, Any]], *args: Any, **kwargs: Any
    ) -> Iterator[GenericStreamingChunk]:
        params = kwargs.get("optional_params") or {}
        text = _answer(model, messages, params)
        delay = float(params.get("delay", 0.02))
        pieces = tokens(text)
        for piece in pieces:
            if delay > 0:
                time.sleep(delay)
            yield {
                "text": piece,
                "is_finished": False,
                "finish_reason": "",
                "usage": None,
                "index": 0,
            }
        prompt = sum(len(tokens(str(m.get("content", "")))) for m in messages)
        yield {
            "text": "",
            "is_finished": True,
            "finish_reason": "stop",
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
        params = kwargs.get("optional_params") or {}
        text = _answer(model, messages, params)
        return litellm.completion(
            model="openai/rxnb-offline", messages=messages, mock_response=text
        )


_handler = OfflineLLM()


def register() -> None:
    """Make `rxnb/echo` and `rxnb/scripted` known to litellm (idempotent)."""
    if not any(item.get("provider") == PROVIDER for item in litellm.custom_provider_map):
        litellm.custom_provider_map = [
            *litellm.custom_provider_map,
            {"provider": PROVIDER, "custom_handler": _handler},
        ]
        litellm.utils.custom_llm_setup()  # type: ignore[no-untyped-call]

"""Observers of generations: a later layer (the `otel` extra's tracing) is told of
each provider call `rx.llm` makes, once it ends, however it ends.

An observer is called in the thread that made the call, after its usage is priced;
an observer that raises is reported on stderr and never breaks the generation.
"""

from __future__ import annotations

import dataclasses
import re
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any

from rxnb.execution import ActionContext
from rxnb.llm._usage import Usage


@dataclasses.dataclass
class GenerationEvent:
    """One generation, as it ended."""

    ctx: ActionContext
    model: str
    messages: list[dict[str, Any]]
    """What the model was sent."""
    parameters: dict[str, Any]
    """The other arguments litellm was given, but keys, headers and credentials
    (`public_parameters`)."""
    usage: Usage
    """Tokens, cost, the whole text and the tool calls."""
    started_at: float
    """Epoch seconds when it was asked for (before any wait at the gate)."""
    first_token_at: float | None
    """When its first text or tool call arrived, if one did."""
    ended_at: float
    error: BaseException | None
    """What ended it, if not its natural end (a cancel ends it without an error)."""
    cached: bool = False
    """Answered from the LLM cache: no provider call was made."""


GENERATION_OBSERVERS: list[Callable[[GenerationEvent], None]] = []
"""Called with each ended generation (see the module's docstring)."""


def on_generation(observer: Callable[[GenerationEvent], None]) -> Callable[[], None]:
    """Call `observer` with each generation once it ends; the function that stops it."""
    GENERATION_OBSERVERS.append(observer)

    def stop() -> None:
        if observer in GENERATION_OBSERVERS:
            GENERATION_OBSERVERS.remove(observer)

    return stop


def observed(event: GenerationEvent) -> None:
    """Tell every observer of `event`; one that raises is reported, not raised."""
    for observer in list(GENERATION_OBSERVERS):
        try:
            observer(event)
        except Exception:
            print("rxnb: a generation observer failed:", file=sys.stderr)
            traceback.print_exc()


PRIVATE_NAME = re.compile(r"key|secret|passw|credential|auth|header|token_provider", re.IGNORECASE)
"""Names of litellm parameters that may hold a secret (a name with `token` in it is
not one: `max_tokens` is a parameter); neither traced nor part of a cache key."""


def public_parameters(kwargs: dict[str, Any]) -> dict[str, Any]:
    """`kwargs` without what may hold a secret (`PRIVATE_NAME`) or a header dict."""
    return {
        name: value
        for name, value in kwargs.items()
        if not PRIVATE_NAME.search(name) and not isinstance(value, dict)
    }


def tell(
    ctx: ActionContext,
    model: str,
    messages: list[dict[str, Any]],
    litellm_kwargs: dict[str, Any],
    usage: Usage,
    started: float,
    error: BaseException | None,
) -> None:
    """Tell the observers of a generation that ended (nothing to do without any)."""
    if GENERATION_OBSERVERS:
        observed(
            GenerationEvent(
                ctx=ctx,
                model=model,
                messages=messages,
                parameters=public_parameters(litellm_kwargs),
                usage=usage,
                started_at=started,
                first_token_at=usage.first_at,
                ended_at=time.time(),
                error=error,
                cached=usage.cached,
            )
        )

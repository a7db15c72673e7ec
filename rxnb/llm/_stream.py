"""Generations streamed from litellm into the store.

`stream(ctx, ...)` yields the provider's text and checks for cancellation between
provider chunks, closing the provider's stream (its HTTP connection) on cancel.
`stream_into(ctx, Model, row_id, ...)` writes that text into a row as it arrives:

1. The first text is written at once; after that, text is written at chunk
   boundaries (`Chunker`), at most once per `throttle_ms`.
2. The last write holds the rest of the text and the row's final `status` (when the
   model has a `status` field): `done`, `cancelled` or `failed`, in one transaction.
3. What the provider sent before a cancel, an error or a crash is in the store; a
   crash loses at most the text since the last write.
4. Usage (tokens) and cost are recorded on the run, also on cancel and on error; when
   the provider reports none, an estimate from the text, marked `estimated`.
   `stream_into` also records the generation in `rx_generations` (run, target row,
   usage, cost, error, tool calls), finished in the same transaction as the row.
5. A rate limit (HTTP 429) before the stream starts is waited out, honouring
   `Retry-After`, and counted in the usage (`rate_limited`); litellm's own retries are
   off (`max_retries=0`) unless asked for. A stream cut midway, or a timeout
   (`timeout=`, `stream_timeout=`), fails the row and the run with the reason, the
   text received so far kept.
6. A retry of the run (an action with `retries=`) replaces the failed attempt's text
   in the row; that text stays in the failed attempt's `rx_generations` row
   (`replaced`), and the new generation says which attempt it is.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from collections.abc import Iterator
from typing import Any

import sqlalchemy as sa
from sqlmodel import select

from rxnb.errors import Cancelled, RxnbError
from rxnb.llm._chunking import Chunker, Chunking
from rxnb.llm._model import Generation
from rxnb.runs import ActionContext, Run
from rxnb.store import Writer


def _litellm() -> Any:
    """litellm, imported on first use (seconds of CPU), offline cost map, rxnb models."""
    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    import litellm

    from rxnb.llm import _offline

    _offline.register()
    return litellm


class Usage:
    """What one generation produced besides its text chunks: token counts, cost, the
    whole text, and the tool calls the model asked for (`tool_calls`)."""

    def __init__(self) -> None:
        self.prompt_tokens: int | None = None
        self.completion_tokens: int | None = None
        self.cost: float | None = None
        self.estimated = False
        self.rate_limited = 0
        """How many times the provider answered 429 before streaming."""
        self.text = ""
        self._calls: dict[int, dict[str, str]] = {}

    @property
    def tool_calls(self) -> list[dict[str, str]]:
        """`[{"id", "name", "arguments"}]`, arguments as the JSON text the model sent."""
        return [dict(self._calls[i]) for i in sorted(self._calls)]

    def add_tool_call_delta(self, delta: Any) -> None:
        """Fold one streamed piece of a tool call into the call at its index."""
        function = getattr(delta, "function", None)
        call = self._calls.setdefault(
            getattr(delta, "index", None) or 0, {"id": "", "name": "", "arguments": ""}
        )
        if getattr(delta, "id", None):
            call["id"] = delta.id
        name = getattr(function, "name", None)
        if name and not call["name"]:
            call["name"] = name
        call["arguments"] += getattr(function, "arguments", None) or ""

    def as_json(self) -> dict[str, Any]:
        prompt, completion = self.prompt_tokens, self.completion_tokens
        if completion is None:  # the provider said nothing: estimate (~4 chars a token)
            completion, self.estimated = max(1, len(self.text) // 4) if self.text else 0, True
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": (prompt or 0) + completion,
            "estimated": self.estimated,
            "rate_limited": self.rate_limited,
        }


def stream(
    ctx: ActionContext,
    *,
    model: str,
    messages: list[dict[str, Any]],
    usage: Usage | None = None,
    rate_limit_retries: int = 5,
    **litellm_kwargs: Any,
) -> Iterator[str]:
    """Yield the text of a streamed completion; stop (closing the stream) on cancel.

    Any litellm model works by name, with the provider's usual environment variable
    for its key; `rxnb/echo` and `rxnb/scripted` run offline. Usage is recorded on
    the run when the stream ends, however it ends.
    """
    litellm = _litellm()
    usage = usage if usage is not None else Usage()
    litellm_kwargs.setdefault("max_retries", 0)  # rxnb retries rate limits itself (rule 5)
    response = _open(ctx, litellm, usage, model, messages, rate_limit_retries, litellm_kwargs)
    if response is None:  # cancelled while waiting out a rate limit
        _record_usage(ctx, model, usage)
        return
    try:
        for chunk in response:
            if ctx.cancelled:  # checked between provider chunks, not only between writes
                break
            reported = getattr(chunk, "usage", None)
            if reported:
                usage.prompt_tokens = getattr(reported, "prompt_tokens", None)
                usage.completion_tokens = getattr(reported, "completion_tokens", None)
            if chunk.choices:
                delta = chunk.choices[0].delta
                for call in getattr(delta, "tool_calls", None) or ():
                    usage.add_tool_call_delta(call)
                text = delta.content
                if text:
                    usage.text += text
                    yield text
    finally:
        _close(response)
        _record_usage(ctx, model, usage)


def _open(
    ctx: ActionContext,
    litellm: Any,
    usage: Usage,
    model: str,
    messages: list[dict[str, Any]],
    retries: int,
    kwargs: dict[str, Any],
) -> Any:
    """The provider's stream; rule 5: a rate limit is waited out (its Retry-After, else
    1, 2, 4 … s) up to `retries` times, the wait ending early on cancel."""
    for attempt in range(retries + 1):
        try:
            return litellm.completion(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            )
        except litellm.RateLimitError as exc:
            if attempt == retries:
                raise
            usage.rate_limited += 1
            if ctx.wait(_retry_after(exc, 2.0**attempt)):
                return None
    raise AssertionError("unreachable")  # pragma: no cover


def _retry_after(exc: Any, default: float) -> float:
    """Seconds the provider asked us to wait (Retry-After), else `default`."""
    headers = getattr(getattr(exc, "response", None), "headers", None) or getattr(
        exc, "litellm_response_headers", None
    )
    try:
        value = float(headers.get("retry-after")) if headers is not None else None
    except (TypeError, ValueError):
        value = None
    return min(value, 60.0) if value is not None and value >= 0 else default


def _close(response: Any) -> None:
    """Close the provider's stream (for HTTP providers: the connection)."""
    for target in (response, getattr(response, "completion_stream", None)):
        close = getattr(target, "close", None)
        if callable(close):
            with contextlib.suppress(Exception):  # best effort: the text is stored
                close()


def _record_usage(ctx: ActionContext, model: str, usage: Usage) -> None:
    if ctx.run_id is None:
        return
    value = usage.as_json()
    try:
        import litellm

        usage.cost = float(
            litellm.cost_per_token(
                model=model,
                prompt_tokens=value["prompt_tokens"] or 0,
                completion_tokens=value["completion_tokens"] or 0,
            )[0]
            + litellm.cost_per_token(
                model=model,
                prompt_tokens=0,
                completion_tokens=value["completion_tokens"] or 0,
            )[1]
        )
    except Exception:  # no price known for this model (offline models included)
        usage.cost = None
    run_id = ctx.run_id

    def write(db: Writer) -> None:
        run = db.get(Run, run_id)
        if run is not None:
            run.usage = json.dumps(value)
            run.cost = usage.cost

    ctx.store.database.write(write)


def stream_into(
    ctx: ActionContext,
    model_class: Any,
    row_id: Any,
    field: str = "content",
    *,
    model: str,
    messages: list[dict[str, Any]],
    chunking: Chunking = "clause",
    throttle_ms: float = 100,
    usage: Usage | None = None,
    **litellm_kwargs: Any,
) -> str:
    """Stream a completion into `field` of row `row_id`; the whole text (rules 1-4).

    Ends the run as cancelled (raising `rx.Cancelled`) when it was cancelled, after
    storing the text received so far. Pass `usage=rx.llm.Usage()` to read the token
    counts and the model's tool calls afterwards.
    """
    columns = getattr(model_class, "model_fields", {})
    if field not in columns:
        raise RxnbError(
            f"stream_into: {model_class.__name__} has no field {field!r}; pass field= "
            f"one of {', '.join(columns)}"
        )
    has_status = "status" in columns
    chunker = Chunker(chunking)
    usage = usage if usage is not None else Usage()
    generation: list[int] = []

    def write(piece: str, status: str | None, error: BaseException | None = None) -> None:
        def body(db: Writer) -> None:
            row = db.get(model_class, row_id)
            if row is None:
                raise RxnbError(f"stream_into: no {model_class.__name__} row with id {row_id!r}")
            if piece:
                setattr(row, field, (getattr(row, field) or "") + piece)
            if status is not None and has_status:
                row.status = status
            if not generation:
                generation.append(_start_generation(db, ctx, row, field, model))
            elif status is not None:
                _finish_generation(db, generation[0], status, usage, error)

        ctx.store.database.write(body)

    write("", "streaming")
    pending, first, last = "", True, 0.0
    try:
        for text in stream(ctx, model=model, messages=messages, usage=usage, **litellm_kwargs):
            if first:  # rule 1: the first text goes out at once, boundary or not
                chunker.passed(text)
                pending = text
            else:
                pending += chunker.push(text)
            now = time.monotonic()
            if pending and (first or (now - last) * 1000 >= throttle_ms):  # rule 1
                write(pending, None)
                pending, first, last = "", False, now
    except BaseException as exc:
        write(pending + chunker.rest(), "failed", exc)  # rules 2-3: nothing received is lost
        raise
    final = "cancelled" if ctx.cancelled else "done"
    write(pending + chunker.rest(), final)  # rule 2
    if final == "cancelled":
        raise Cancelled("the generation was cancelled")
    return usage.text


def _start_generation(db: Writer, ctx: ActionContext, row: Any, field: str, model: str) -> int:
    """Record a generation into `row`; rule 6: a retry of a run replaces the text of
    its failed attempt (kept in that attempt's generation, `replaced`)."""
    table, key = type(row).__tablename__, json.dumps(_row_key(row))
    text = getattr(row, field) or ""
    if ctx.run_id is not None and ctx.attempt > 1:
        failed = db.exec(
            select(Generation)
            .where(
                Generation.run_id == ctx.run_id,
                Generation.target == table,
                Generation.row_key == key,
                Generation.status == "failed",
                Generation.replaced == None,  # noqa: E711 - SQL IS NULL
            )
            .order_by(Generation.id)  # type: ignore[arg-type]
        ).first()
        if failed is not None:
            failed.replaced = text[failed.offset :]
            text = text[: failed.offset]
            setattr(row, field, text)
    generation = Generation(
        run_id=ctx.run_id,
        target=table,
        row_key=key,
        field=field,
        model=model,
        attempt=ctx.attempt,
        offset=len(text),
        started_at=time.time(),
    )
    db.add(generation)
    db.flush()
    assert generation.id is not None
    return generation.id


def _row_key(row: Any) -> Any:
    """The row's primary key value (a list for a composite key)."""
    identity = sa.inspect(row).identity
    if identity is None:
        raise RxnbError(f"stream_into: the {type(row).__name__} row has no primary key yet")
    return identity[0] if len(identity) == 1 else list(identity)


def _finish_generation(
    db: Writer, generation_id: int, status: str, usage: Usage, error: BaseException | None
) -> None:
    row = db.get(Generation, generation_id)
    if row is None:
        return
    row.status, row.finished_at = status, time.time()
    row.usage, row.cost = json.dumps(usage.as_json()), usage.cost
    if error is not None:
        row.error = f"{type(error).__name__}: {error}"[:2000]
    if usage.tool_calls:
        row.tool_calls = json.dumps(usage.tool_calls)

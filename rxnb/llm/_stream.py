"""Generations streamed from litellm into the store.

`stream(ctx, ...)` yields the provider's text and checks for cancellation between
provider chunks, closing the provider's stream (its HTTP connection) on cancel.
`stream_into(ctx, Model, row_id, ...)` writes that text into a row as it arrives:

1. The first text is written at once; after that, text is written at chunk
   boundaries (`Chunker`), at most once per `throttle_ms`.
2. The last write holds the rest of the text and the row's final `status` (when the
   model has a `status` field): `done`, `cancelled` or `failed`, in one transaction;
   like the run's (a run that overran its `timeout=` fails, and so does the row).
   If the text cannot be stored (the row was deleted meanwhile, a column too short
   for it), the status and the generation's error still are.
3. What the provider sent before a cancel, an error or a crash is in the store; a
   crash loses at most the text since the last write. Text is stored as UTF-8 can
   hold it: a surrogate pair split across chunks is joined, a lone one becomes U+FFFD,
   and so does a NUL (PostgreSQL text cannot hold one: the rest would be lost).
4. Usage (tokens) and cost are recorded on the run, also on cancel and on error; when
   the provider reports none, an estimate from the text, marked `estimated`. A run
   that makes several generations (or attempts) adds them up. `stream_into` also
   records the generation in `rx_generations` (run, target row, usage, cost, error,
   tool calls), finished in the same transaction as the row.
5. A rate limit (HTTP 429) before the stream starts is waited out, honouring
   `Retry-After`, and counted in the usage (`rate_limited`); litellm's own retries are
   off (`max_retries=0`) unless asked for. A stream cut midway, or a timeout
   (`timeout=`, `stream_timeout=`), fails the row and the run with the reason, the
   text received so far kept.
6. A retry of the run (an action with `retries=`, or `rx.retry` of a failed or
   cancelled run) replaces the earlier attempt's text in the row; that text stays in
   the earlier attempt's `rx_generations` rows (`replaced`), and the new generation
   says which attempt it is.
7. A cancel stops the stream even while the provider sends nothing (a model still
   thinking): an HTTP provider's connection is shut at once; a run cancelled before
   the stream opens does not open it.
8. No key reaches the store: a provider's error that quotes the key it was given
   is stored with the key replaced (`rxnb.execution._secrets`).
9. A cancel that races the stream's natural end commits before the last write or
   after it. Before (even if this process has not heard of it yet): the row ends
   `cancelled`, its whole text kept, like its run. After: the row is `done`; the
   chat's Stop then stops nothing, while `rx.cancel` of the run before it returns
   still ends the run `cancelled`, as for any action.
10. A hand-over (the run's process is stopping: `ctx.handing_over`) stops the stream
    like a cancel, but the row goes back to `pending` (its text kept until the next
    start replaces it, rule 6) and the generation ends `interrupted`, saying why; the
    run is queued again. Errors are stored as one line, the traceback beside it.
11. Each provider call first passes the gate (`rxnb.llm._gate`): the store's budget
    (`rx.budget`), then the model's limits (`rx.llm.limit`). While it waits, the row
    is `waiting` and its generation says why (`Generation.waiting`); `stream` alone
    says it in the run's progress. A cancel ends the wait, opening no stream.
12. A paused run (`rx.pause`) stops reading the provider at the next chunk, holding
    its text: the row is `paused` (`stream` alone says so in the run's progress) until
    `rx.resume`, then `streaming` again, reading on. If the provider closed the stream
    meanwhile, a new call asks the model to continue from the text so far
    (`CONTINUE`), up to `MAX_CONTINUES` times; the text goes on in the same row.
"""

from __future__ import annotations

import contextlib
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Generator, Iterator
from typing import Any

from rxnb.errors import ArgumentError, Cancelled, RxnbError
from rxnb.execution import (
    ActionContext,
    Run,
    error_line,
    one_line,
    redact,
    secrets_of,
)
from rxnb.llm._arguments import check_messages, check_row_id, check_target, check_throttle
from rxnb.llm._cache import (
    answer_whole,
    cache_key,
    lookup,
    replay,
    settings,
    store_answer,
    wanted,
)
from rxnb.llm._chunking import Chunker, Chunking
from rxnb.llm._gate import Admission, Report
from rxnb.llm._litellm import load_litellm, unlogged
from rxnb.llm._observe import tell
from rxnb.llm._row_writer import PAUSED_REASON, PENDING, RowWriter
from rxnb.llm._usage import Usage, price, record_usage
from rxnb.store import Writer

_UNSTORABLE = re.compile("[\ud800-\udfff\x00]")


def stream(
    ctx: ActionContext,
    *,
    model: str,
    messages: list[dict[str, Any]],
    usage: Usage | None = None,
    rate_limit_retries: int = 5,
    record: bool = True,
    on_wait: Callable[[str | None], None] | None = None,
    cache: bool | None = None,
    **litellm_kwargs: Any,
) -> Iterator[str]:
    """Yield the text of a streamed completion; stop (closing the stream) on cancel.

    Any litellm model works by name, with the provider's usual environment variable
    for its key; `rxnb/echo` and `rxnb/scripted` run offline. Usage is recorded on
    the run when the stream ends, however it ends; with `record=False` it is only
    priced (`usage.cost`), for the caller to record in a transaction of its own
    (`rxnb.llm.add_to_run`). Over a budget or a model limit it waits first (rule 11),
    and a pause of the run holds it between chunks (rule 12), saying why in the run's
    progress, or to `on_wait(reason)` (`None` once it goes on; `PAUSED_REASON` for a
    pause), for a caller that shows it in a row of its own. `cache=True` answers an
    identical request from the store (`rx.llm.configure`; None: the process's setting).
    """
    return _generate(
        ctx,
        model=model,
        messages=messages,
        usage=usage,
        rate_limit_retries=rate_limit_retries,
        record=record,
        report=on_wait or _ProgressNote(ctx),
        litellm_kwargs=litellm_kwargs,
        cache=cache,
    )


def _generate(
    ctx: ActionContext,
    *,
    model: str,
    messages: list[dict[str, Any]],
    usage: Usage | None,
    rate_limit_retries: int,
    record: bool,
    report: Report,
    litellm_kwargs: dict[str, Any],
    paused: Callable[[bool], None] | None = None,
    cache: bool | None = None,
) -> Generator[str, None, None]:
    """`stream`, telling `report` why it waits at the gate (rule 11), and `paused`
    when a pause holds it and when it goes on (rule 12; by default, `report`); a hit
    of the LLM cache (`rxnb.llm._cache`) instead of the provider."""
    if paused is None:
        paused = _paused_as(report)
    retries: Any = rate_limit_retries
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ArgumentError(
            f"rx.llm: rate_limit_retries={retries!r}; pass a whole number >= 0 "
            "(0: fail at the first 429)"
        )
    check_messages(messages)
    litellm = load_litellm()
    usage = usage if usage is not None else Usage()
    litellm_kwargs.setdefault("max_retries", 0)  # rxnb retries rate limits itself (rule 5)
    secrets = secrets_of(litellm_kwargs)  # rule 8
    looked_up = cache is _LOOKED_UP
    key = cache_key(model, messages, litellm_kwargs) if looked_up or wanted(cache) else None
    admission = Admission(ctx, model, messages, litellm_kwargs, report)
    response = None
    started, failure = time.time(), None
    try:
        entry = (
            lookup(ctx, key) if key is not None and not looked_up and not ctx.cancelled else None
        )
        if entry is not None:  # no provider, no gate
            yield from replay(ctx, entry, usage)
            return
        if not ctx.cancelled:  # rule 7: a cancelled run opens no stream
            response = _open(
                ctx, litellm, usage, model, messages, retries, litellm_kwargs, admission
            )
        continues = 0
        while response is not None:  # None: cancelled, before or while waiting out a 429
            try:
                yield from _read(ctx, response, usage, paused)
                if key is not None and not ctx.cancelled and ctx.handing_over is None:
                    price(model, usage)
                    store_answer(ctx, key, model, usage)
                return
            except _ClosedWhilePausedError:
                if continues == MAX_CONTINUES:
                    raise
                continues += 1  # rule 12: ask for the rest
                more = [*messages, {"role": "assistant", "content": usage.text}, CONTINUE]
                response = _open(
                    ctx, litellm, usage, model, more, retries, litellm_kwargs, admission
                )
    except Exception as exc:
        if response is not None and ctx.cancelled:  # the stream broke as the cancel shut it
            return
        if ctx.handing_over is not None:  # broken by the process stopping (rule 10)
            return
        failure = redact(exc, secrets)
        if failure is exc:
            raise
        raise failure from None
    finally:
        admission.settle_usage(usage)  # rule 11: the tokens it really used
        if record:  # rule 4: also when the stream failed to open
            record_usage(ctx, model, usage)
        else:
            price(model, usage)
        tell(ctx, model, messages, litellm_kwargs, usage, started, failure)


def _read(
    ctx: ActionContext, response: Any, usage: Usage, paused: Callable[[bool], None]
) -> Iterator[str]:
    """The text of an open provider stream, until it ends or the run is cancelled;
    the stream closed either way. A pause holds it between chunks (rule 12): an error
    reading on after one is `_ClosedWhilePausedError`."""
    stop_watching = _shut_on_cancel(ctx, response)
    unlogged(response)
    held = ""  # rule 3: a high surrogate waiting for its pair
    pauses: list[float] = []  # when a pause held it
    try:
        for chunk in _chunks(response, lambda: bool(pauses) and not ctx.cancelled):
            if ctx.paused:
                pauses.append(time.time())
                paused(True)
                ctx.hold_while_paused()
                paused(False)
            if ctx.cancelled:  # checked between provider chunks, not only between writes
                break
            reported = getattr(chunk, "usage", None)
            if reported:
                usage.prompt_tokens = getattr(reported, "prompt_tokens", None)
                usage.completion_tokens = getattr(reported, "completion_tokens", None)
            if chunk.choices:
                delta = chunk.choices[0].delta
                if usage.first_at is None and (delta.content or getattr(delta, "tool_calls", None)):
                    usage.first_at = time.time()
                for call in getattr(delta, "tool_calls", None) or ():
                    usage.add_tool_call_delta(call)
                text, held = _storable(held + (delta.content or ""))
                if text:
                    usage.text += text
                    yield text
        if held:
            usage.text += "\ufffd"
            yield "\ufffd"
    finally:
        stop_watching()
        _close(response)


def _chunks(response: Any, resumable: Callable[[], bool]) -> Iterator[Any]:
    """The chunks of `response`; an error while `resumable()` (a pause held the
    stream) is `_ClosedWhilePausedError`, for `_generate` to ask for the rest."""
    try:
        yield from response
    except Exception as exc:
        if resumable():
            raise _ClosedWhilePausedError(one_line(error_line(exc))) from exc
        raise


class _ClosedWhilePausedError(RxnbError):
    """The provider's stream ended in an error after a pause held it (rule 12)."""


CONTINUE = {
    "role": "user",
    "content": "Your answer above was cut off. Continue it exactly where it stops, "
    "without repeating any of it.",
}
"""Rule 12: what a new call asks when the stream closed while the run was paused."""
MAX_CONTINUES = 3


def _paused_as(report: Report) -> Callable[[bool], None]:
    """Rule 12 told as a wait at the gate."""
    return lambda held: report(PAUSED_REASON if held else None)


def _storable(text: str) -> tuple[str, str]:
    """Rule 3: `text` as UTF-8 can store it (surrogate pairs joined, lone surrogates as
    U+FFFD, as NULs), and a trailing high surrogate held back for the next chunk."""
    if not _UNSTORABLE.search(text):
        return text, ""
    text = text.replace("\x00", "\ufffd")
    held = ""
    if "\ud800" <= text[-1] <= "\udbff":
        text, held = text[:-1], text[-1]
    return text.encode("utf-16", "surrogatepass").decode("utf-16", "replace"), held


def _shut_on_cancel(ctx: ActionContext, response: Any) -> Callable[[], None]:
    """Rule 7: while an HTTP stream is read, a thread shuts its socket on cancel (a
    blocked read wakes only then); the function that stops that thread."""
    http = getattr(getattr(response, "completion_stream", None), "response", None)
    try:
        sock = http.extensions["network_stream"].get_extra_info("socket")  # type: ignore[union-attr]
    except Exception:  # not an httpx stream (offline models): cancel is seen per chunk
        sock = None
    if not isinstance(sock, socket.socket):
        return lambda: None
    lock = threading.Lock()
    done = threading.Event()

    def watch() -> None:
        while True:
            cancelled = ctx.wait_for_stop(0.1)
            with lock:
                if done.is_set():
                    return
                if cancelled:
                    if not getattr(http, "is_closed", True):  # the socket is still ours
                        with contextlib.suppress(OSError):
                            sock.shutdown(socket.SHUT_RDWR)
                    return

    def stop() -> None:
        with lock:
            done.set()

    threading.Thread(target=watch, name="rxnb-llm-cancel", daemon=True).start()
    return stop


def _open(
    ctx: ActionContext,
    litellm: Any,
    usage: Usage,
    model: str,
    messages: list[dict[str, Any]],
    retries: int,
    kwargs: dict[str, Any],
    admission: Admission,
) -> Any:
    """The provider's stream; rule 5: a rate limit is waited out (its Retry-After, else
    1, 2, 4 … s) up to `retries` times, the wait ending early on cancel. Rule 11: each
    call waits at the gate first."""
    for attempt in range(retries + 1):
        if not admission.admit(first=attempt == 0):
            return None
        try:
            return litellm.completion(
                model=model,
                messages=messages,
                stream=True,
                stream_options={"include_usage": True},
                **kwargs,
            )
        except litellm.RateLimitError as exc:
            admission.refused()
            if attempt == retries:
                raise
            usage.rate_limited += 1
            wait = _retry_after(exc, 2.0**attempt)
        finally:
            admission.went()  # its write after the request (rule 11)
        if ctx.wait_for_stop(wait):
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
    cache: bool | None = None,
    **litellm_kwargs: Any,
) -> str:
    """Stream a completion into `field` of row `row_id`; the whole text (rules 1-4).

    Ends the run as cancelled (raising `rx.Cancelled`) when it was cancelled, after
    storing the text received so far. Pass `usage=rx.llm.Usage()` to read the token
    counts and the model's tool calls afterwards. Once the row is marked `streaming`,
    anything that goes wrong (a bad `chunking=` included) marks it `failed`, with the
    reason in its generation, so that a chat shows why. `cache=True` answers an
    identical request from the store (`rx.llm.configure`; None: the process's setting):
    the row gets the stored text, in one write unless a `replay_rate` is set.
    """
    check_target(model_class, field)
    row_id = check_row_id(model_class, row_id)
    usage = usage if usage is not None else Usage()
    writer = RowWriter(ctx, model_class, row_id, field, model, usage)
    if wanted(cache) and not settings.replay_rate and not ctx.cancelled:
        hit = answer_whole(ctx, writer, model, messages, litellm_kwargs)
        if hit is not None:
            return hit
        cache = _LOOKED_UP  # a miss: `_generate` asks the provider and stores the answer
    write = writer.write
    write("", "streaming")
    pending, first, last = "", True, 0.0
    chunker: Chunker | None = None
    try:
        chunker = Chunker(chunking)
        check_throttle(throttle_ms)
        texts = _generate(
            ctx,
            model=model,
            messages=messages,
            usage=usage,
            rate_limit_retries=litellm_kwargs.pop("rate_limit_retries", 5),
            record=litellm_kwargs.pop("record", True),
            report=writer.waiting,
            litellm_kwargs=litellm_kwargs,
            paused=writer.paused,
            cache=cache,
        )
        # Closed here, not whenever it is collected: its usage is recorded (rule 4)
        # while the store is surely open, also when a write below fails.
        with contextlib.closing(texts):
            for text in texts:
                if first:  # rule 1: the first text goes out at once, boundary or not
                    chunker.passed(text)
                    pending = text
                else:
                    pending += chunker.push(text)
                now = time.monotonic()
                if usage.cached and not settings.replay_rate:  # at once: the last write
                    continue
                if pending and (first or (now - last) * 1000 >= throttle_ms):  # rule 1
                    write(pending, None)
                    pending, first, last = "", False, now
        pending += chunker.rest()
        timed_out, handover = ctx.timed_out, ctx.handing_over
        status = (
            "failed"
            if timed_out
            else PENDING
            if handover  # rule 10
            else "cancelled"
            if ctx.cancelled
            else "done"
        )
        error: BaseException | str | None = TimeoutError(timed_out) if timed_out else handover
        final = writer.write(pending, status, error)  # rules 2, 9
    except BaseException as exc:
        rest = pending + (chunker.rest() if chunker is not None else "")
        handover = ctx.handing_over  # an error the stopping process caused: rule 10
        status, why = (PENDING, handover) if handover is not None else ("failed", exc)
        try:
            write(rest, status, why)  # rules 2-3: nothing received is lost
        except Exception:  # rule 2: the text cannot be stored, the status still can
            with contextlib.suppress(Exception):  # (if not even that: `exc` tells why)
                write("", status, why)
        raise
    if final != "done":  # rule 9: as the row says, whatever the run heard since
        raise Cancelled(timed_out or handover or "the generation was cancelled")
    return usage.text


_LOOKED_UP: Any = "looked up"
"""`cache=` for `_generate` after `stream_into` found no entry: store, do not look."""


class _ProgressNote:
    """Rule 11 for `stream` alone: why it waits, as the run's progress message; the
    progress it replaced put back once it goes."""

    def __init__(self, ctx: ActionContext) -> None:
        self.ctx = ctx
        self.before: tuple[str | None] | None = None
        """The progress replaced, once a wait is shown."""

    def __call__(self, reason: str | None) -> None:
        run_id = self.ctx.run_id
        if run_id is None:
            return
        note = None if reason is None else json.dumps({"message": f"waiting: {reason}"})

        def body(db: Writer) -> tuple[str | None] | None:
            run = db.get(Run, run_id)
            if run is None:
                return None
            before = self.before if self.before is not None else (run.progress,)
            run.progress = before[0] if note is None else note
            return None if note is None else before

        self.before = self.ctx.store.database.write(body)

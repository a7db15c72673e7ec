"""The LLM cache: identical requests answered from the store (`rx_llm_cache`).

1. Off unless asked for: `rx.llm.configure(cache=True)` for the process (or the
   `RXNB_LLM_CACHE=1` environment variable, for workers and `nbclient` runs), or
   `cache=True` on one call (`stream`, `stream_into`, an `rx.Agent`); `cache=False`
   on a call wins over the setting. A model sampled at a temperature gives another
   answer each time: the cache makes it give the first one again, which is what a
   re-run notebook wants and a "regenerate" button does not.
2. The key is the request that reaches the provider: the model, the messages, and the
   parameters that change the answer (tools, response format, temperature, seed, …);
   tool calls' ids by their position (an agent names its calls anew each turn).
   Never a key, a header or a credential, nor what only changes how it is fetched
   (timeouts, retries), so rotating a key keeps the cache. A value JSON cannot hold
   (a pydantic class as `response_format`) is keyed by its JSON schema.
3. Only an answer that ended naturally is stored (not one cancelled, cut, timed out
   or handed over), with its text, its tool calls, its token counts and what it cost.
   Two processes storing the same answer at once keep one.
4. A hit asks no provider and waits at no gate (budget, limits): the stored answer is
   the generation's text and tool calls, at once, or at `replay_rate` characters a
   second when one is set (a chat then shows it type). Its usage has the stored token
   counts, `cached: true`, cost 0, and `cost_saved`: what it cost the first time; its
   generation row is marked `cached`.
5. Entries older than the store's retention (`rx.retention(days=...)`) are deleted by
   its passes; `rx.llm.clear_cache()` deletes them now.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from rxnb.errors import ArgumentError, Cancelled
from rxnb.execution import DAY, PASS_TASKS, ActionContext, read_retention
from rxnb.llm._arguments import check_messages
from rxnb.llm._observe import PRIVATE_NAME, tell
from rxnb.llm._row_writer import RowWriter
from rxnb.llm._usage import price
from rxnb.reactive import Store, current_store
from rxnb.store import Writer, own_table

ENVIRONMENT = "RXNB_LLM_CACHE"


class CacheEntry(SQLModel, table=True):
    """One answer, stored under the request that produced it (rule 3)."""

    __tablename__ = "rx_llm_cache"
    __table_args__ = own_table()

    key: str = Field(primary_key=True)
    """SHA-256 of the request (rule 2), hex."""
    model: str = Field(index=True)
    text: str = ""
    tool_calls: str | None = None
    """JSON list of `{"id", "name", "arguments"}`, if the model asked for tools."""
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cost: float | None = None
    """What the answer cost when it was generated (None: no price known)."""
    created_at: float = Field(index=True)


@dataclasses.dataclass
class CacheSettings:
    """What `rx.llm.configure` set for this process."""

    cache: bool = dataclasses.field(
        default_factory=lambda: os.environ.get(ENVIRONMENT, "") not in ("", "0", "false")
    )
    replay_rate: float | None = None
    """Characters a second a hit is replayed at (rule 4); None: at once."""


settings = CacheSettings()


def configure(*, cache: bool | None = None, replay_rate: float | None = None) -> CacheSettings:
    """Set how `rx.llm` answers identical requests in this process (see rule 1); the
    settings now. `replay_rate`: characters a second a cached answer is replayed at,
    as if it streamed (0 or None: at once)."""
    if cache is not None:
        if not isinstance(cache, bool):
            raise ArgumentError(
                f"rx.llm.configure(cache={cache!r}): pass True (answer identical requests "
                "from the store) or False"
            )
        settings.cache = cache
    if replay_rate is not None:
        if isinstance(replay_rate, bool) or not isinstance(replay_rate, (int, float)):
            raise ArgumentError(
                f"rx.llm.configure(replay_rate={replay_rate!r}): pass characters a second "
                "(e.g. 400), or 0 to replay a cached answer at once"
            )
        if replay_rate < 0:
            raise ArgumentError(
                f"rx.llm.configure(replay_rate={replay_rate!r}): must be >= 0 (0: at once)"
            )
        settings.replay_rate = float(replay_rate) or None
    return settings


def wanted(cache: Any) -> bool:
    """Whether a call with `cache=` uses the cache (rule 1)."""
    if cache is None:
        return settings.cache
    if not isinstance(cache, bool):
        raise ArgumentError(
            f"rx.llm: cache={cache!r}; pass True, False, or None (the process's "
            "setting, rx.llm.configure(cache=...))"
        )
    return cache


_NOT_IN_KEY = frozenset(
    {
        "max_retries",
        "num_retries",
        "timeout",
        "stream_timeout",
        "metadata",
        "rate_limit_retries",
        "record",
        "cache",
        "stream",
        "stream_options",
    }
)


def cache_key(model: str, messages: list[dict[str, Any]], parameters: dict[str, Any]) -> str:
    """The request's key (rule 2)."""
    request = {
        "model": model,
        "messages": _call_ids_by_position(messages),
        "parameters": {
            name: value
            for name, value in sorted(parameters.items())
            if name not in _NOT_IN_KEY and not PRIVATE_NAME.search(name)
        },
    }
    text = json.dumps(request, sort_keys=True, default=_keyable, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _call_ids_by_position(messages: list[dict[str, Any]]) -> list[Any]:
    """Rule 2: `messages` with each tool call's id replaced by its position (`call_1`,
    …): an id only ties a call to its result, and an agent makes new ones each turn."""
    ids: dict[str, str] = {}

    def renamed(value: Any) -> Any:
        if not isinstance(value, str):
            return value
        return ids.setdefault(value, f"call_{len(ids) + 1}")

    out: list[Any] = []
    for given in messages:
        if not isinstance(given, dict):
            out.append(given)
            continue
        message = dict(given)
        if isinstance(message.get("tool_calls"), list):
            message["tool_calls"] = [
                {**call, "id": renamed(call.get("id"))} if isinstance(call, dict) else call
                for call in message["tool_calls"]
            ]
        if "tool_call_id" in message:
            message["tool_call_id"] = renamed(message["tool_call_id"])
        out.append(message)
    return out


def _keyable(value: Any) -> Any:
    schema = getattr(value, "model_json_schema", None)
    if callable(schema):  # a pydantic class (response_format=) or instance
        return schema()
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        return dump()
    if isinstance(value, (set, frozenset)):
        return sorted(value, key=repr)
    return repr(value)


def lookup(ctx: ActionContext, key: str) -> CacheEntry | None:
    """The entry stored under `key`, if any."""
    return ctx.store.database.read(lambda db: db.get(CacheEntry, key))[0]


def replay(ctx: ActionContext, entry: CacheEntry, usage: Any) -> Iterator[str]:
    """Rule 4: the stored answer as a generation's text, its tool calls into `usage`."""
    usage.cached = True
    usage.prompt_tokens, usage.completion_tokens = entry.prompt_tokens, entry.completion_tokens
    usage.cost_saved = entry.cost
    usage.first_at = time.time()
    for index, call in enumerate(json.loads(entry.tool_calls) if entry.tool_calls else []):
        usage.add_tool_call_delta(
            SimpleNamespace(
                index=index,
                id=call.get("id"),
                function=SimpleNamespace(name=call.get("name"), arguments=call.get("arguments")),
            )
        )
    rate = settings.replay_rate
    if not rate or not entry.text:
        usage.text += entry.text
        if entry.text:
            yield entry.text
        return
    step = max(1, int(rate / 20))  # twenty pieces a second
    for start in range(0, len(entry.text), step):
        if ctx.wait_for_stop(step / rate if start else 0.0):
            return
        piece = entry.text[start : start + step]
        usage.text += piece
        yield piece


def store_answer(ctx: ActionContext, key: str, model: str, usage: Any) -> None:
    """Rule 3: keep the answer in `usage` under `key` (priced: `usage.cost`)."""
    value = usage.as_json()
    calls = usage.tool_calls
    entry = {
        "key": key,
        "model": model,
        "text": usage.text,
        "tool_calls": json.dumps(calls) if calls else None,
        "prompt_tokens": value["prompt_tokens"],
        "completion_tokens": value["completion_tokens"],
        "cost": usage.cost,
        "created_at": time.time(),
    }

    def put(db: Writer) -> None:
        if db.get(CacheEntry, key) is None:
            db.add(CacheEntry(**entry))

    with contextlib.suppress(sa.exc.IntegrityError):  # another process stored it first
        ctx.store.database.write(put)


def answer_whole(
    ctx: ActionContext,
    writer: RowWriter,
    model: str,
    messages: list[dict[str, Any]],
    litellm_kwargs: dict[str, Any],
) -> str | None:
    """`stream_into` answered by a hit (rule 4), stored whole in one transaction besides
    its look-up (`RowWriter.whole`); the text, or None on a miss."""
    check_messages(messages)
    started = time.time()
    entry = lookup(ctx, cache_key(model, messages, litellm_kwargs))
    if entry is None:
        return None
    usage = writer.usage
    text = "".join(replay(ctx, entry, usage))
    price(model, usage)
    final = writer.whole(text)
    if final is None:
        raise writer.gone()
    tell(ctx, model, messages, litellm_kwargs, usage, started, None)
    if final != "done":  # `stream_into`'s rule 9
        raise Cancelled("the generation was cancelled")
    return text


def clear_cache(*, model: str | None = None, store: Store | None = None) -> int:
    """Delete the LLM cache's entries (only `model`'s, if given); how many."""
    target = store or current_store()
    table = CacheEntry.__table__  # type: ignore[attr-defined]

    def delete(db: Writer) -> int:
        statement = sa.delete(table)
        if model is not None:
            statement = statement.where(table.c.model == model)
        return int(db.execute(statement).rowcount or 0)  # type: ignore[attr-defined]

    return int(target.database.write(delete))


def _expire(store: Store) -> dict[str, int]:
    """Rule 5, in every retention pass."""
    days = read_retention(store).days
    if days is None:
        return {}
    table = CacheEntry.__table__  # type: ignore[attr-defined]
    cutoff = time.time() - days * DAY

    def delete(db: Writer) -> int:
        deleted = db.execute(sa.delete(table).where(table.c.created_at < cutoff))
        return int(deleted.rowcount or 0)  # type: ignore[attr-defined]

    return {CacheEntry.__tablename__: store.database.write(delete)}


if _expire not in PASS_TASKS:
    PASS_TASKS.append(_expire)

"""`Usage`: what one generation produced besides its text (tokens, cost, tool calls),
and its record on the run (rule 4 of `rxnb.llm._stream`): a run's usage is the sum of
its generations'."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from rxnb.execution import ActionContext, Run
from rxnb.store import Writer, load_rows, update_row


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
        self.cached = False
        """Answered from the LLM cache: no provider was asked, it cost nothing."""
        self.cost_saved: float | None = None
        """A cached answer's cost when it was first generated."""
        self.first_at: float | None = None
        """When the first text or tool call arrived (epoch seconds), if one did."""
        self._calls: dict[int, dict[str, str]] = {}
        self.on_tool_call: Callable[[int, dict[str, str], str], None] | None = None
        """Called with each streamed piece of a tool call: its index, the call so far
        (`id`, `name`, `arguments`) and the piece of its arguments that just came."""

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
        piece = getattr(function, "arguments", None) or ""
        call["arguments"] += piece
        if self.on_tool_call is not None:
            self.on_tool_call(getattr(delta, "index", None) or 0, call, piece)

    def as_json(self) -> dict[str, Any]:
        prompt, completion = self.prompt_tokens, self.completion_tokens
        if completion is None:  # the provider said nothing: estimate (~4 chars a token)
            completion, self.estimated = max(1, len(self.text) // 4) if self.text else 0, True
        value: dict[str, Any] = {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": (prompt or 0) + completion,
            "estimated": self.estimated,
            "rate_limited": self.rate_limited,
        }
        if self.cached:
            value["cached"], value["cost_saved"] = True, self.cost_saved
        return value


def record_usage(ctx: ActionContext, model: str, usage: Usage) -> None:
    """Price `usage` and add it to the run's, in a transaction of its own."""
    if ctx.run_id is None:
        return
    price(model, usage)
    ctx.store.database.write(lambda db: add_to_run(db, ctx.run_id, usage))


def price(model: str, usage: Usage) -> None:
    """Set `usage.cost` from litellm's prices (None when the model has none; 0 for
    an answer from the cache)."""
    if usage.cached:
        usage.cost = 0.0
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


def add_to_run(db: Writer, run_id: str | None, usage: Usage) -> None:
    """Add one generation's `usage` (priced) to run `run_id`'s, in `db`'s transaction
    (as a row, not an ORM object: the caller must not hold the run as one)."""
    table = Run.__table__  # type: ignore[attr-defined]
    found = load_rows(db, table, table.c.id, [run_id] if run_id is not None else [])
    if found:  # rule 4: a run's usage is the sum of its generations'
        run = found[0]
        changes: dict[str, Any] = {
            "usage": json.dumps(_add_usage(_loads(run["usage"]), usage.as_json()))
        }
        if usage.cost is not None:
            changes["cost"] = (run["cost"] or 0.0) + usage.cost
        update_row(db, table, run, changes)


def _loads(text: str | None) -> Any:
    try:
        return json.loads(text) if text else None
    except ValueError:
        return None


def _add_usage(before: Any, value: dict[str, Any]) -> dict[str, Any]:
    """`before` (a run's usage so far, or None) plus one generation's `value`."""
    if not isinstance(before, dict):
        return value
    total = dict(value)
    for name in ("prompt_tokens", "completion_tokens", "total_tokens", "rate_limited"):
        a, b = before.get(name), value.get(name)
        total[name] = b if a is None else a if b is None else a + b
    total["estimated"] = bool(before.get("estimated")) or bool(value.get("estimated"))
    if "cached" in before or "cached" in value:  # cached: all of them were
        total["cached"] = bool(before.get("cached")) and bool(value.get("cached"))
        saved = [v for v in (before.get("cost_saved"), value.get("cost_saved")) if v is not None]
        total["cost_saved"] = sum(saved) if saved else None
    return total

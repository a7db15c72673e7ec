"""`rx.llm.compare`: one request streamed to several models at once, side by side.

    cmp = rx.llm.compare("Name three rivers.", models=["openai/gpt-4o-mini", "rxnb/echo"])
    cmp                      # a live widget: a column per model
    cmp.result(timeout=60)   # {"openai/gpt-4o-mini": "...", "rxnb/echo": "..."}

Persist first, like every generation of rxnb:

1. `compare` writes, in one transaction, the request (`rx_comparisons`: messages and
   parameters), one `rx_comparison_columns` row per model (status `pending`), and one
   run per column (`compare_column`), so the comparison exists whole or not at all.
2. Each run streams its model's answer into its column's `text` with `stream_into`
   (chunked, cancellable, usage and cost recorded, the generation in
   `rx_generations`); the column's `first_token_at` is written when the first token
   comes (latency to first token: `first_token_at - started_at`), and tokens, cost and
   `finished_at` when the stream ends, however it ends.
3. A model that fails fails its own column and run only: the column keeps the text it
   got and shows the error as one line; the other columns stream on.
4. The request's parameters are stored with it, so any process (a worker, a kernel
   opened after a restart) can run or re-run a column; keys are not: a parameter named
   like a secret (`api_key`) is refused, give keys through the provider's environment
   variable (`OPENAI_API_KEY`, ...).
5. `cache=` (True, False; None: the process's setting, `rx.llm.configure(cache=)`) is
   passed to each generation.
6. The columns' action is defined when a process first uses it (`column_action`:
   `compare`, a `%%ai` cell, `rxnb worker`), not by `import rxnb`: a process that never
   compares starts no executor for it. A column queued by a process that stopped is
   taken by the next one that defines it.

The widget is made by the widgets layer, which registers itself here
(`set_comparison_view`): this layer imports no widget.
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from sqlmodel import Field, SQLModel, select

from rxnb.errors import ArgumentError, Cancelled, RxnbError
from rxnb.execution import SECRET_NAME, Action, ActionContext, RunHandle, action, error_line
from rxnb.llm._arguments import check_messages
from rxnb.llm._litellm import load_litellm
from rxnb.llm._stream import stream_into
from rxnb.llm._usage import Usage
from rxnb.reactive import Store, current_store
from rxnb.store import own_table

FINISHED = ("done", "failed", "cancelled")
"""Statuses a column ends with (those of `stream_into`'s row)."""


class Comparison(SQLModel, table=True):
    """One request asked of several models (`rx.llm.compare`)."""

    __tablename__ = "rx_comparisons"
    __table_args__ = own_table()

    id: str = Field(primary_key=True)
    title: str
    messages: str
    """JSON: the chat messages every model is asked."""
    parameters: str = "{}"
    """JSON: litellm parameters given to every model (no keys: rule 4)."""
    cache: bool | None = None
    """Whether generations may be answered from rxnb's LLM cache (None: as configured)."""
    created_at: float


class ComparisonColumn(SQLModel, table=True):
    """One model's answer to a comparison's request: a column of the widget."""

    __tablename__ = "rx_comparison_columns"
    __table_args__ = own_table()

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: str = Field(index=True)
    position: int
    model: str
    parameters: str = "{}"
    """JSON: litellm parameters for this model alone (`per_model=`), over the request's."""
    text: str = ""
    status: str = "pending"
    """pending | waiting | streaming | paused | done | failed | cancelled (the statuses
    `stream_into` gives its row)."""
    run_id: str | None = None
    started_at: float | None = None
    first_token_at: float | None = None
    """When the first token came (epoch seconds), if one did."""
    finished_at: float | None = None
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    estimated: bool = False
    """Whether the token counts are estimated from the text (the provider gave none)."""
    cost: float | None = None
    error: str | None = None
    """Why the column failed: one line."""


def check_parameters(parameters: dict[str, Any], where: str) -> str:
    """`parameters` as the JSON stored with a request, refusing keys (rule 4)."""
    for name in parameters:
        if SECRET_NAME.search(name):
            raise ArgumentError(
                f"{where}: {name}= would be stored with the request; give the key through "
                "the provider's environment variable (OPENAI_API_KEY, ANTHROPIC_API_KEY, ...)"
            )
    try:
        return json.dumps(parameters, sort_keys=True)
    except TypeError as exc:
        raise ArgumentError(
            f"{where}: the litellm parameters must be JSON values to be stored ({exc})"
        ) from None


def as_messages(messages: str | Sequence[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    """A prompt (str) as one user message; chat messages as they are, checked."""
    if isinstance(messages, str):
        return [{"role": "user", "content": messages}]
    if not isinstance(messages, Sequence):
        raise ArgumentError(
            f"{where}: messages={messages!r}; pass a prompt (str) or a list of chat messages"
        )
    out: list[Any] = [dict(m) if isinstance(m, dict) else m for m in messages]
    check_messages(out)
    return out


class _FirstToken(Usage):
    """Usage that writes the column's `first_token_at` the moment the first token comes
    (`Usage.first_at`), so the widget shows the latency while the rest streams."""

    def __init__(self, ctx: ActionContext, column_id: int) -> None:
        self._ctx, self._column_id = ctx, column_id
        self._first: float | None = None
        super().__init__()

    @property
    def first_at(self) -> float | None:
        return self._first

    @first_at.setter
    def first_at(self, value: float | None) -> None:
        self._first = value
        if value is not None:
            column_id = self._column_id

            def body(db: Any) -> None:
                column = db.get(ComparisonColumn, column_id)
                if column is not None and column.first_token_at is None:
                    column.first_token_at = value

            self._ctx.store.database.write(body)


_COLUMN_ACTION: list[Action[..., str]] = []


def column_action() -> Action[..., str]:
    """The action streaming one column (`compare_column`), defined on first use (rule 6):
    by `compare`, a `%%ai` cell, or `rxnb worker`."""
    if not _COLUMN_ACTION:
        _COLUMN_ACTION.append(action(compare_column))
    return _COLUMN_ACTION[0]


def compare_column(ctx: ActionContext, column_id: int) -> str:
    """Stream one column's model into it (rule 2); its text."""
    column, comparison = ctx.store.database.read(lambda db: _column_and_request(db, column_id))[0]
    if column is None or comparison is None:
        raise RxnbError(f"rx.llm.compare: no comparison column {column_id}; it was deleted")

    def started(db: Any) -> None:
        row = db.get(ComparisonColumn, column_id)
        if row is not None:  # a retry starts the clock again
            row.started_at, row.first_token_at = time.time(), None
            row.finished_at = row.error = row.cost = None

    load_litellm()  # seconds of CPU on the first call in a process: not the model's latency
    ctx.store.database.write(started)
    usage = _FirstToken(ctx, column_id)
    error: str | None = None
    try:
        return stream_into(
            ctx,
            ComparisonColumn,
            column_id,
            "text",
            model=column.model,
            messages=json.loads(comparison.messages),
            usage=usage,
            cache=comparison.cache,
            **{**json.loads(comparison.parameters), **json.loads(column.parameters)},
        )
    except Cancelled:
        raise
    except Exception as exc:  # rule 3: this column only
        error = error_line(exc, where=False)
        raise
    finally:
        counts = usage.as_json()

        def finished(db: Any) -> None:
            row = db.get(ComparisonColumn, column_id)
            if row is None:
                return
            row.finished_at = time.time()
            row.prompt_tokens = counts["prompt_tokens"]
            row.completion_tokens = counts["completion_tokens"]
            row.estimated = bool(counts["estimated"])
            row.cost = usage.cost
            row.error = error

        ctx.store.database.write(finished)


def _column_and_request(db: Any, column_id: int) -> tuple[Any, Any]:
    column = db.get(ComparisonColumn, column_id)
    return column, None if column is None else db.get(Comparison, column.comparison_id)


_VIEW: list[Callable[[LiveComparison], Any]] = []


def set_comparison_view(view: Callable[[LiveComparison], Any]) -> None:
    """Install the widget `LiveComparison` shows itself as (the widgets layer's)."""
    _VIEW[:] = [view]


class LiveComparison:
    """A comparison that shows itself as a live widget: a column per model.

    `result(timeout)` waits for every column and gives each model's text; `columns()`
    the stored rows (status, tokens, latency, cost, error); `errors()` the failed ones.
    """

    def __init__(self, comparison_id: str, store: Store) -> None:
        self.id = comparison_id
        self.store = store

    def __repr__(self) -> str:
        shown = ", ".join(f"{c.model}: {c.status}" for c in self.columns())
        return f"<rx.llm.compare {self.id} ({shown})>"

    def columns(self) -> list[ComparisonColumn]:
        """The columns as stored now, in the order of `models=`."""

        def read(db: Any) -> list[ComparisonColumn]:
            statement = (
                select(ComparisonColumn)
                .where(ComparisonColumn.comparison_id == self.id)
                .order_by(ComparisonColumn.position)  # type: ignore[arg-type]
            )
            return list(db.exec(statement).all())

        return self.store.database.read(read)[0]

    def runs(self) -> list[RunHandle]:
        return [RunHandle(c.run_id, self.store) for c in self.columns() if c.run_id is not None]

    def wait(self, timeout: float | None = None) -> list[ComparisonColumn]:
        """Wait until every column's run has ended; the columns then."""
        deadline = None if timeout is None else time.monotonic() + timeout
        for handle in self.runs():
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            handle.wait(left)
        return self.columns()

    def result(self, timeout: float | None = None) -> dict[str, str]:
        """Each model's text, once every column has ended (a failed one: what it got)."""
        return {c.model: c.text for c in self.wait(timeout)}

    def errors(self) -> dict[str, str]:
        """The failed columns' errors, by model."""
        return {c.model: c.error or c.status for c in self.columns() if c.status == "failed"}

    def widget(self) -> Any:
        """The live widget (what displaying this object shows)."""
        if not _VIEW:
            raise RxnbError(
                "rx.llm.compare: no widget view is installed; `import rxnb` installs it"
            )
        return _VIEW[0](self)

    def _ipython_display_(self) -> None:
        from IPython.display import display

        display(self.widget())  # type: ignore[no-untyped-call]


def compare(
    messages: str | Sequence[dict[str, Any]],
    models: Sequence[str],
    *,
    title: str | None = None,
    cache: bool | None = None,
    per_model: dict[str, dict[str, Any]] | None = None,
    store: Store | None = None,
    **litellm_kwargs: Any,
) -> LiveComparison:
    """Ask every model in `models` the same `messages` at once, each as a run streaming
    into its own column; a `LiveComparison` at once (rules 1-5 of this module).

    `messages`: a prompt or chat messages. `litellm_kwargs` (temperature, api_base, ...)
    go to every model and are stored with the request, keys excepted; `per_model=`
    `{model: {parameter: value}}` adds or overrides some for one model.
    """
    where = "rx.llm.compare"
    chat = as_messages(messages, where)
    names = _check_models(models, where)
    if cache is not None and not isinstance(cache, bool):
        raise ArgumentError(f"{where}: cache={cache!r}; pass True, False or None")
    parameters = check_parameters(litellm_kwargs, where)
    own = {m: check_parameters(dict(p), where) for m, p in (per_model or {}).items()}
    unknown = sorted(set(own) - set(names))
    if unknown:
        raise ArgumentError(f"{where}: per_model= names {unknown[0]!r}, which is not in models=")
    store = store if store is not None else current_store()
    comparison_id = store.database.write(
        lambda db: _insert(db, chat, names, title, cache, parameters, own)
    )
    return LiveComparison(comparison_id, store)


def compare_in(
    db: Any,
    messages: str | Sequence[dict[str, Any]],
    models: Sequence[str],
    *,
    title: str | None = None,
    cache: bool | None = None,
    **litellm_kwargs: Any,
) -> str:
    """`compare` in the transaction of `db` (a mutation's, say): the comparison's id;
    it and its runs exist if that transaction commits."""
    where = "rx.llm.compare"
    chat = as_messages(messages, where)
    names = _check_models(models, where)
    if cache is not None and not isinstance(cache, bool):
        raise ArgumentError(f"{where}: cache={cache!r}; pass True, False or None")
    parameters = check_parameters(litellm_kwargs, where)
    return _insert(db, chat, names, title, cache, parameters, {})


def _insert(
    db: Any,
    chat: list[dict[str, Any]],
    names: list[str],
    title: str | None,
    cache: bool | None,
    parameters: str,
    own: dict[str, str],
) -> str:
    """Rule 1: the request, its columns and their runs; the comparison's id."""
    comparison_id = uuid.uuid4().hex
    first = next((m["content"] for m in chat if isinstance(m.get("content"), str)), "")
    shown = title if title is not None else (first[:60] + ("…" if len(first) > 60 else ""))
    db.add(
        Comparison(
            id=comparison_id,
            title=shown,
            messages=json.dumps(chat),
            parameters=parameters,
            cache=cache,
            created_at=time.time(),
        )
    )
    for position, model in enumerate(names):
        column = ComparisonColumn(
            comparison_id=comparison_id,
            position=position,
            model=model,
            parameters=own.get(model, "{}"),
        )
        db.add(column)
        db.flush()
        column.run_id = db.schedule(column_action(), column_id=column.id)
    return comparison_id


def _check_models(models: Sequence[str], where: str) -> list[str]:
    if isinstance(models, str) or not isinstance(models, Sequence) or not models:  # type: ignore[redundant-expr]
        raise ArgumentError(
            f"{where}: models={models!r}; pass a list of model names, "
            'such as ["openai/gpt-4o-mini", "rxnb/echo"]'
        )
    names = list(models)
    bad = [m for m in names if not isinstance(m, str) or not m.strip()]  # type: ignore[redundant-expr]
    if bad:
        raise ArgumentError(f"{where}: {bad[0]!r} in models= is not a model name")
    if len(set(names)) != len(names):
        twice = next(m for m in names if names.count(m) > 1)
        raise ArgumentError(f"{where}: {twice!r} is in models= twice; name each model once")
    return names

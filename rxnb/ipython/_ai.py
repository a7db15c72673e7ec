"""`%%ai`: a cell whose text is a prompt, answered persist-first into the store.

    %%ai openai/gpt-4o-mini --thread notes
    Summarize {df_summary} in three bullet points.

1. The cell's text is a template over the notebook's variables: `{name}` is the value
   of `name` (`{name.attr}`, `{name[0]}` and format specs work as in `str.format`); a
   live widget of a query (`q.live(...)`) or a query that takes no arguments gives its
   current result; `{{` and `}}` are braces. A name that is not defined is refused,
   naming it, before anything is written.
2. Running the cell stores the prompt and starts the generation (`rx.llm.compare` of
   the one model, or of every model of `--compare m1,m2`, each a run streaming into its
   own column) in one transaction, and shows the reply live as sanitized markdown,
   with its tokens, latency and cost. The cell waits for the reply, so that `--into`
   and the cells below can use it (`--no-wait` returns at once); interrupting the wait
   leaves the generation going.
3. A cell is known by its notebook cell id (JupyterLab, Notebook 7 and nbclient send
   it) on its thread. Running it again with the same request (model, prompt, and on a
   thread the same earlier exchanges) shows the reply it has, finished or still
   streaming (after a kernel restart the new kernel's executor finishes it), instead
   of asking again; a changed request, or a reply that failed or was cancelled, is
   asked anew and takes the cell's place. The LLM cache is on for AI cells
   (`--no-cache` turns it off): a request asked before costs nothing.
4. `--thread T`: the cells on one thread are one conversation, in the order the cells
   first ran: each is sent the finished exchanges of the cells before it.
5. `--param NAME=VALUE` (repeatable) passes a litellm parameter (`temperature=0`;
   a value is read as JSON, else taken as a string); keys are refused: they go in the
   provider's environment variable (`OPENAI_API_KEY`, ...), never in the store.
   `--into NAME` binds the reply's final text to `NAME` (with `--compare`: a dict of
   each model's text).
6. `--live`: when a query the template reads changes (its result, not merely its
   table), the cell renders its prompt again after `--debounce` seconds of quiet
   (default 1) and, if the prompt changed, asks again; the widget follows.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import shlex
import string
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from IPython.core.error import UsageError
from sqlmodel import Field, SQLModel, select

from rxnb.functions import Query, query
from rxnb.llm import ComparisonColumn, LiveComparison, column_action, compare_in
from rxnb.reactive import Store, current_store, to_jsonable
from rxnb.store import Reader, Writer, own_table
from rxnb.widgets import LiveWidget, comparison_columns, current_cell, models_view, owners

DEFAULT_MODEL = "rxnb/echo"
"""The model of a `%%ai` cell that names none, unless `RXNB_AI_MODEL` says another."""
ENDED = ("done", "failed", "cancelled")
RETRIED = ("failed", "cancelled")
"""A reply with a column in one of these is asked again when its cell runs again."""


class AiCell(SQLModel, table=True):
    """One `%%ai` cell's exchange on its thread (rule 3: one row per cell and thread)."""

    __tablename__ = "rx_ai_cells"
    __table_args__ = (sa.UniqueConstraint("thread", "cell"), own_table())

    id: int | None = Field(default=None, primary_key=True)
    thread: str = Field(index=True)
    cell: str
    """The notebook cell's id, or (a kernel that sends none) a hash of its text."""
    prompt: str
    """The prompt as rendered (the template filled in)."""
    models: str
    """JSON list of the models asked."""
    request: str
    """SHA-256 of what was asked (models, messages, parameters): rule 3."""
    comparison_id: str
    """The `rx.llm.compare` request holding the reply (`rx_comparisons`)."""
    created_at: float
    updated_at: float


@dataclasses.dataclass(frozen=True)
class Options:
    models: list[str]
    thread: str | None
    into: str | None
    live: bool
    wait: bool
    cache: bool
    debounce: float
    parameters: dict[str, Any] = dataclasses.field(default_factory=dict)
    """litellm parameters (`--param temperature=0`); keys go in the environment."""


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # not SystemExit: the kernel goes on
        raise UsageError(f"%%ai: {message}; usage: {USAGE}")


USAGE = (
    "%%ai [MODEL] [--thread T] [--into NAME] [--live] [--compare M1,M2] "
    "[--param NAME=VALUE ...] [--no-wait] [--no-cache] [--debounce SECONDS]"
)


def parse(line: str) -> Options:
    """The `%%ai` line's options, or UsageError naming what is wrong."""
    parser = _Parser(prog="%%ai", add_help=False)
    parser.add_argument("model", nargs="?")
    parser.add_argument("--thread")
    parser.add_argument("--into")
    parser.add_argument("--live", action="store_true")
    parser.add_argument("--compare")
    parser.add_argument("--no-wait", dest="wait", action="store_false")
    parser.add_argument("--no-cache", dest="cache", action="store_false")
    parser.add_argument("--debounce", type=float, default=1.0)
    parser.add_argument("--param", action="append", default=[])
    try:
        words = shlex.split(line)
    except ValueError as exc:
        raise UsageError(f"%%ai: the line does not parse ({exc}); usage: {USAGE}") from None
    given = parser.parse_args(words)
    if given.compare is not None:
        models = [m.strip() for m in given.compare.split(",") if m.strip()]
        if given.model is not None:
            models = [given.model, *(m for m in models if m != given.model)]
        if not models:
            raise UsageError("%%ai: --compare needs models, e.g. --compare rxnb/echo,openai/gpt-4o")
    else:
        models = [given.model or os.environ.get("RXNB_AI_MODEL") or DEFAULT_MODEL]
    for model in models:
        if "/" not in model:
            raise UsageError(
                f"%%ai: {model!r} is not a litellm model name; write provider/model, "
                "e.g. openai/gpt-4o-mini or rxnb/echo"
            )
    if given.into is not None and not given.into.isidentifier():
        raise UsageError(f"%%ai: --into {given.into!r} is not a Python variable name")
    if not given.debounce >= 0:
        raise UsageError(f"%%ai: --debounce {given.debounce!r} must be seconds >= 0")
    parameters: dict[str, Any] = {}
    for item in given.param:
        name, sep, raw = item.partition("=")
        if not sep or not name.isidentifier():
            raise UsageError(
                f"%%ai: --param {item!r}; write --param name=value, e.g. --param temperature=0"
            )
        try:
            parameters[name] = json.loads(raw)
        except ValueError:
            parameters[name] = raw  # a word: a string
    return Options(
        parameters=parameters,
        models=models,
        thread=given.thread,
        into=given.into,
        live=given.live,
        wait=given.wait,
        cache=given.cache,
        debounce=given.debounce,
    )


# -- rule 1: the template --------------------------------------------------------------

Read = tuple[Any, dict[str, Any]]
"""A query and its arguments that a template read (for `--live`)."""


class _Template(string.Formatter):
    """`str.format` over the notebook's namespace, live things read as their result."""

    def __init__(self, namespace: Mapping[str, Any]) -> None:
        self.namespace = namespace
        self.reads: list[Read] = []

    def get_value(self, key: int | str, args: Sequence[Any], kwargs: Mapping[str, Any]) -> Any:
        if isinstance(key, int):
            raise UsageError(
                "%%ai: `{}` in the prompt names no variable; write {name}, or {{ and }} "
                "for literal braces"
            )
        if key not in self.namespace:
            raise UsageError(
                f"%%ai: the prompt reads {{{key}}}, but no variable `{key}` is defined; "
                "run the cell that defines it, or write {{ and }} for literal braces"
            )
        return self._current(self.namespace[key])

    def _current(self, value: Any) -> Any:
        if isinstance(value, LiveWidget):  # `q.live(...)`: the query's result now
            sub = value.subscription
            self.reads.append((sub.query, dict(sub.args)))
            return sub.query(**sub.args)
        if isinstance(value, Query):
            try:
                result = value()
            except TypeError as exc:
                raise UsageError(
                    f"%%ai: the prompt reads the query `{value.name}`, which takes arguments "
                    f"({exc}); show it with .live(...) in a variable and use that"
                ) from None
            self.reads.append((value, {}))
            return result
        return value

    def format_field(self, value: Any, format_spec: str) -> str:
        if format_spec or isinstance(value, (str, int, float)):
            return str(super().format_field(value, format_spec))
        return as_text(value)


def as_text(value: Any) -> str:
    """A value as a prompt shows it: rows and lists of rows as JSON, others as str."""
    if isinstance(value, SQLModel) or (
        isinstance(value, (list, tuple)) and value and isinstance(value[0], (SQLModel, dict))
    ):
        return json.dumps(to_jsonable(value, where="a %%ai prompt"), ensure_ascii=False, indent=1)
    return str(value)


def render(template: str, namespace: Mapping[str, Any]) -> tuple[str, list[Read]]:
    """The prompt, and the queries it read (rule 1)."""
    formatter = _Template(namespace)
    try:
        text = formatter.format(template)
    except UsageError:
        raise
    except (ValueError, KeyError, IndexError, AttributeError) as exc:
        raise UsageError(
            f"%%ai: the prompt is not a valid template ({type(exc).__name__}: {exc}); "
            "write {{ and }} for literal braces"
        ) from None
    return text.strip(), formatter.reads


# -- rules 2-4: the exchange -----------------------------------------------------------


def _history(db: Reader, thread: str, before: int | None) -> list[dict[str, Any]]:
    """The finished exchanges of the cells before `before` on `thread` (rule 4)."""
    statement = select(AiCell).where(AiCell.thread == thread)
    if before is not None:
        statement = statement.where(AiCell.id < before)  # type: ignore[operator]
    messages: list[dict[str, Any]] = []
    for row in db.exec(statement.order_by(AiCell.id)).all():  # type: ignore[arg-type]
        answer = db.exec(
            select(ComparisonColumn)
            .where(ComparisonColumn.comparison_id == row.comparison_id)
            .order_by(ComparisonColumn.position)  # type: ignore[arg-type]
        ).first()
        if answer is not None and answer.status == "done":
            messages += [
                {"role": "user", "content": row.prompt},
                {"role": "assistant", "content": answer.text},
            ]
    return messages


def ask(db: Writer, thread: str, cell: str, prompt: str, options: Options) -> tuple[AiCell, bool]:
    """The cell's exchange, asked anew unless the same request already stands (rule
    3); and whether it was asked now. In `db`'s transaction."""
    row = db.exec(select(AiCell).where(AiCell.thread == thread, AiCell.cell == cell)).first()
    messages = [
        *_history(db, thread, row.id if row is not None else None),
        {"role": "user", "content": prompt},
    ]
    request = hashlib.sha256(
        json.dumps(
            [options.models, messages, options.cache, options.parameters], sort_keys=True
        ).encode()
    ).hexdigest()
    if row is not None and row.request == request:
        statuses = db.exec(
            select(ComparisonColumn.status).where(
                ComparisonColumn.comparison_id == row.comparison_id
            )
        ).all()
        if statuses and not any(s in RETRIED for s in statuses):
            return row, False
    comparison_id = compare_in(
        db, messages, options.models, title=prompt[:60], cache=options.cache, **options.parameters
    )
    now = time.time()
    if row is None:
        row = AiCell(
            thread=thread,
            cell=cell,
            created_at=now,
            updated_at=now,
            prompt="",
            models="[]",
            request="",
            comparison_id="",
        )
    row.prompt, row.models, row.request = prompt, json.dumps(options.models), request
    row.comparison_id, row.updated_at = comparison_id, now
    db.add(row)
    db.flush()
    return row, True


@query
def ai_cell_columns(db: Reader, cell_row: int) -> list[dict[str, Any]]:
    """The reply of `%%ai` cell row `cell_row`, as the models view shows it: its
    current request's columns (a re-asked cell's widget follows the new one)."""
    row = db.get(AiCell, cell_row)
    if row is None:
        return []
    columns: list[dict[str, Any]] = comparison_columns.fn(db, row.comparison_id)
    return columns


# -- the cell --------------------------------------------------------------------------


class AiCellRun:
    """One run of one `%%ai` cell: its row, its widget, and (`--live`) the
    subscriptions that ask again; closed when the cell runs again."""

    def __init__(
        self, store: Store, template: str, namespace: Mapping[str, Any], options: Options
    ) -> None:
        self.store, self.template, self.namespace, self.options = (
            store,
            template,
            namespace,
            options,
        )
        run = current_cell()
        self.cell = run.cell_id if run is not None else "text:" + _digest(template)
        self.thread = options.thread or f"cell:{self.cell}"
        self.prompt, reads = render(template, namespace)
        if not self.prompt:
            raise UsageError("%%ai: the cell has no prompt; write it below the %%ai line")
        row, self.asked = store.database.write(
            lambda db: ask(db, self.thread, self.cell, self.prompt, options)
        )
        assert row.id is not None
        self.row_id, self.comparison_id = row.id, row.comparison_id
        self.widget = LiveWidget(
            ai_cell_columns,
            {"cell_row": self.row_id},
            store=store,
            view=models_view(),
            heading=f"%%ai {', '.join(options.models)}"
            + (f" · thread {options.thread}" if options.thread else ""),
        )
        self._lock = threading.Lock()
        self._timer: threading.Timer | None = None
        self._closed = False
        self._subscriptions = []
        if options.live:
            for read_query, args in reads:
                first = [True]

                def changed(_result: Any, first: list[bool] = first) -> None:
                    if first[0]:  # the current result, delivered at once
                        first[0] = False
                        return
                    self._soon()

                self._subscriptions.append(store.subscribe(read_query, args, changed))
        owners.adopt(self)

    def comparison(self) -> LiveComparison:
        """The request the cell's reply is in now."""
        row = self.store.database.read(lambda db: db.get(AiCell, self.row_id))[0]
        return LiveComparison(row.comparison_id if row else self.comparison_id, self.store)

    def wait(self, timeout: float | None = None) -> dict[str, str]:
        """Each model's text, once every one has ended."""
        return self.comparison().result(timeout)

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._timer is not None:
                self._timer.cancel()
        for subscription in self._subscriptions:
            subscription.close()

    # -- rule 6 ------------------------------------------------------------------------

    def _soon(self) -> None:
        with self._lock:
            if self._closed:
                return
            if self._timer is not None:
                self._timer.cancel()
            self._timer = threading.Timer(self.options.debounce, self._again)
            self._timer.daemon = True
            self._timer.start()

    def _again(self) -> None:
        with self._lock:
            if self._closed:
                return
        try:
            prompt, _ = render(self.template, self.namespace)
        except UsageError as exc:  # a variable deleted meanwhile: say so, keep the reply
            print(f"rxnb %%ai --live: not asked again: {exc}")
            return
        if prompt == self.prompt:
            return
        self.prompt = prompt
        row, _ = self.store.database.write(
            lambda db: ask(db, self.thread, self.cell, prompt, self.options)
        )
        self.comparison_id = row.comparison_id


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def run_cell(
    line: str, cell: str, namespace: dict[str, Any], display: Callable[[Any], None]
) -> Any:
    """What `%%ai` does (see the module's docstring)."""
    options = parse(line)
    store = current_store()
    column_action()  # so that this kernel takes a reply left queued by the last one
    run = AiCellRun(store, cell, namespace, options)
    display(run.widget)
    if not options.wait:
        return None
    try:
        texts = run.wait()
    except KeyboardInterrupt:
        print(
            "rxnb %%ai: stopped waiting; the reply goes on in the background and shows "
            "above (cancel it from rx.runs())"
        )
        return None
    if options.into is not None:
        namespace[options.into] = (
            texts[options.models[0]] if len(options.models) == 1 else dict(texts)
        )
    return None

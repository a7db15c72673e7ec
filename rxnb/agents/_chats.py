"""The store side of `rx.chat`: the messages query joined with their generations,
and the functions a chat binds (send into its own thread, Stop a reply), which the
widgets layer renders and binds (`rxnb.widgets.chat`)."""

from __future__ import annotations

import inspect
import json
import typing
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import inspect as sa_inspect
from sqlmodel import select

from rxnb.agents._pages import CURSOR, page_result
from rxnb.errors import RxnbError
from rxnb.execution import TERMINAL, Run, RunStatus, cancel_in
from rxnb.functions import Mutation, Query, registry
from rxnb.llm import Generation, key_json, target_row
from rxnb.store import Reader, Writer

USAGE, ERROR, DETAIL, NOTE = "rx_usage", "rx_error", "rx_detail", "rx_note"
"""The columns the chat adds to each message row, from its generations: tokens and
cost, the failure's line and its traceback, and a note on an interrupted reply
("resumed after the kernel restarted (attempt 2)")."""

ABORTABLE = ("pending", "streaming", "waiting", "paused")

INTERRUPTED = "interrupted"
"""A generation's status when its run was handed over or its process died."""

_UNFINISHED = [s.value for s in RunStatus if s not in TERMINAL]


class ChatQuery:
    """The user's messages query, each row joined with its latest generation.

    It has the user's query's name, so redefining that query re-runs the chat too.
    """

    def __init__(
        self, messages: Query[..., Any], status: str | None = None, thread_arg: str = ""
    ) -> None:
        self.messages = messages
        self.status = status
        """The rows' status field: a `pending` reply whose run ended is shown ended."""
        self.thread_arg = thread_arg
        self.table: str | None = None
        """The table the messages came from, once a run has seen some."""
        self.key: str | None = None
        """Their primary key's name, likewise (a single-column key)."""
        self.key_names: tuple[str, ...] = ()
        """All their primary key's columns, likewise: the view's rows are keyed by them."""

    @property
    def name(self) -> str:
        return self.messages.name

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        return self.messages.validate(args)

    @property
    def paged(self) -> bool:
        """Whether the messages query takes a `cursor`: it returns `db.paginate(...)`
        pages, newest first, and the chat follows only the pages its view shows."""
        return CURSOR in self.messages.arguments.signature.parameters

    def run(self, reader: Reader, args: Mapping[str, Any]) -> Any:
        """The view's rows; for a paged query, one page of them (`rxnb.agents._pages`)."""
        if not self.paged:
            return [data for data, _ in self.rows(reader, args)]
        page = self._page(reader, args)
        data = [data for data, _ in self._joined(reader, list(page.items))]
        return page_result(data, page.cursor, page.done)

    def rows(self, reader: Reader, args: Mapping[str, Any]) -> list[tuple[dict[str, Any], Any]]:
        """Each message as the view's row, beside the query's own row (for a paged
        query, the messages of every page, newest first)."""
        if self.paged:
            found: list[Any] = []
            cursor = args.get(CURSOR)
            while True:
                page = self._page(reader, {**args, CURSOR: cursor})
                found.extend(page.items)
                if page.done or page.cursor is None:
                    return self._joined(reader, found)
                cursor = page.cursor
        result = self.messages.run(reader, args)
        if not isinstance(result, list | tuple):
            raise RxnbError(
                f"rx.chat: the messages query {self.messages.name.rsplit('.', 1)[-1]} returned "
                f"a {type(result).__name__}, not a list; return the thread's rows in order, "
                "e.g. db.exec(select(Message).where(...).order_by(Message.id)).all()"
            )
        return self._joined(reader, list(result))

    def _page(self, reader: Reader, args: Mapping[str, Any]) -> Any:
        result = self.messages.run(reader, args)
        if not all(hasattr(result, name) for name in ("items", "cursor", "done")):
            raise RxnbError(
                f"rx.chat: the messages query {self.messages.name.rsplit('.', 1)[-1]} takes "
                f"a cursor but returned a {type(result).__name__}, not a page; return "
                "db.paginate(select(Message).where(...).order_by(Message.id.desc()), "
                "cursor=cursor)"
            )
        return result

    def _joined(self, reader: Reader, rows: list[Any]) -> list[tuple[dict[str, Any], Any]]:
        """Each of `rows` as the view's row (joined with its latest generation)."""
        table, key = _table_and_key(rows)
        self.table = table or self.table
        self.key = key or self.key
        self.key_names = _key_names(rows) or self.key_names
        latest: dict[str, Generation] = {}
        interrupted: dict[str, Generation] = {}
        if table is not None and key is not None and rows:
            keys = [key_json(getattr(row, key)) for row in rows]
            found = reader.exec(
                select(Generation)
                .where(Generation.target == table, Generation.row_key.in_(keys))  # type: ignore[attr-defined]
                .order_by(Generation.id)  # type: ignore[arg-type]
            ).all()
            for g in found:  # the newest wins
                if latest.get(g.row_key) is not None and latest[g.row_key].status == INTERRUPTED:
                    interrupted[g.row_key] = latest[g.row_key]
                latest[g.row_key] = g
        out = []
        for row in rows:
            data = _as_dict(row)
            row_key = key_json(data.get(key)) if key is not None else None
            generation = latest.get(row_key) if row_key is not None else None
            data[USAGE] = generation.usage_json() if generation is not None else None
            data[ERROR] = data[DETAIL] = data[NOTE] = None
            if generation is not None and generation.status == INTERRUPTED:
                data[NOTE] = (
                    f"interrupted ({generation.error}); it resumes where its action is "
                    "defined: run that cell again, or start `rxnb worker`"
                )
            elif generation is not None:
                data[ERROR], data[DETAIL] = generation.error, generation.traceback
                data[NOTE] = generation.waiting  # why it waits (rx.llm.limit, rx.budget)
                before = interrupted.get(row_key or "")
                if before is not None and generation.attempt > before.attempt:
                    data[NOTE] = f"resumed after {before.error} (attempt {generation.attempt})"
            if generation is None and key is not None:
                self._show_unstarted(reader, data, data.get(key))
            out.append((data, row))
        return out

    def _show_unstarted(self, reader: Reader, data: dict[str, Any], message_id: Any) -> None:
        """A `pending` reply that never started streaming: once every run given its id
        (as the Stop button finds them) has ended, show it as the newest one ended,
        with that run's error. Its action failed (or was cancelled) before it reached
        `stream_into`: else the chat would show it pending forever."""
        if self.status is None or data.get(self.status) != "pending":
            return
        runs = _runs_naming(reader, message_id, self.thread_arg)
        if not runs or any(run.status in _UNFINISHED for run in runs):
            return
        newest = max(runs, key=lambda run: run.created_at)
        if newest.status == RunStatus.CANCELLED.value:
            data[self.status] = "cancelled"
        elif newest.status == RunStatus.FAILED.value:
            data[self.status] = "failed"
            data[ERROR] = f"its run failed before the reply started: {newest.error}"


def _table_and_key(rows: list[Any]) -> tuple[str | None, str | None]:
    """The mapped table of the rows and its (single) primary key attribute."""
    classes = {type(row) for row in rows}
    if len(classes) != 1:
        return None, "id" if rows and all(isinstance(r, dict) for r in rows) else None
    mapper = sa_inspect(next(iter(classes)), raiseerr=False)
    if mapper is None or not hasattr(mapper, "primary_key") or len(mapper.primary_key) != 1:
        return None, None
    column = mapper.primary_key[0]
    return column.table.name, mapper.get_property_by_column(column).key


def _key_names(rows: list[Any]) -> tuple[str, ...]:
    """The primary key attributes of the rows' one mapped class, or ()."""
    classes = {type(row) for row in rows}
    mapper = sa_inspect(next(iter(classes)), raiseerr=False) if len(classes) == 1 else None
    if mapper is None or not hasattr(mapper, "primary_key"):
        return ()
    return tuple(mapper.get_property_by_column(c).key for c in mapper.primary_key)


def _as_dict(row: Any) -> dict[str, Any]:
    if isinstance(row, dict):
        return dict(row)
    dump = getattr(row, "model_dump", None)
    if callable(dump):
        data: dict[str, Any] = dump()
        return data
    raise RxnbError(
        f"rx.chat: the messages query returned a {type(row).__name__}; return a list of "
        "SQLModel rows (or dicts) with the text, role and status fields"
    )


def cancel_mutation(query: ChatQuery, thread_arg: str, args: dict[str, Any]) -> Mutation[..., int]:
    """A mutation that stops the generation of one message of this chat's thread (the
    abort button); a message of another thread is refused.

    1. The run streaming into the message (its generation in `rx_generations`) is the
       one cancelled: no other run, whatever its arguments.
    2. Before any generation streams into it, the unfinished runs given the message's
       id as an argument (an `...id` other than the thread's) are, except those that
       generate into other rows.
    3. A message that has ended (its status no longer `pending` or `streaming`) stops
       nothing: a Stop that races the reply's last write either commits first (the
       reply ends `cancelled`, like its run) or finds it `done`, and leaves its run be.
    """

    declared = _declared_table(query.messages.fn)

    def cancel(db: Writer, message_id: int | str) -> int:
        if query.key is None and len(query.key_names) > 1:
            raise RxnbError(
                f"rx.chat: Stop needs messages keyed by one column, not by "
                f"{', '.join(query.key_names)}; pass cancel= (a mutation taking message_id)"
            )
        wanted = key_json(message_id)
        matches = [
            (data, row)
            for data, row in query.rows(db, args)
            if key_json(data.get(query.key or "id")) == wanted
        ]
        if not matches:
            raise RxnbError(
                f"message {message_id!r} is not in this chat's thread "
                f"({thread_arg}={args[thread_arg]!r}); the chat stops only its own replies"
            )
        rows = [row for _, row in matches]
        status = matches[0][0].get(query.status) if query.status is not None else None
        if status is not None and status not in ABORTABLE:
            raise RxnbError(  # rule 3
                f"no unfinished run is generating message {message_id!r}; it has ended "
                f"already ({status})"
            )
        table = query.table or declared
        run_ids: set[str] = set()
        if table is not None:  # rule 1
            streaming = db.exec(
                select(Generation.run_id).where(
                    Generation.target == table,
                    Generation.row_key == wanted,
                    Generation.status == "streaming",
                )
            ).all()
            run_ids.update(r for r in streaming if r is not None)
        if not run_ids:  # rule 2
            run_ids.update(_runs_given(db, message_id, thread_arg, table, wanted))
        live = [r for r in run_ids if (found := db.get(Run, r)) and found.status in _UNFINISHED]
        if not live:
            raise RxnbError(
                f"no unfinished run is generating message {message_id!r}; it has ended "
                "already (or its run was not given the message's id as an argument)"
            )
        for run_id in live:
            if cancel_in(db, run_id) == RunStatus.CANCELLED.value:
                _mark_cancelled(db, rows[0], table, wanted)  # it never started: nothing will
        return len(live)

    return Mutation(cancel)


def _runs_naming(
    db: Reader, message_id: Any, thread_arg: str, statuses: list[str] | None = None
) -> list[Run]:
    """Runs (in `statuses`, else any) given `message_id` as an `...id` argument (not
    the thread's), of the same JSON type (`1`, not `true`)."""
    try:
        text = json.dumps(message_id)
    except TypeError:
        return []
    # Stored arguments are json.dumps'd: `"message_id": 5` holds ": 5" (a cheap filter).
    query = select(Run).where(Run.args.contains(f": {text}", autoescape=True))  # type: ignore[attr-defined]
    if statuses is not None:
        query = query.where(Run.status.in_(statuses))  # type: ignore[attr-defined]
    found = []
    for run in db.exec(query).all():
        try:
            arguments = run.arguments()
        except ValueError:  # a row written by another program
            continue
        if any(
            type(value) is type(message_id) and value == message_id
            for name, value in arguments.items()
            if name != thread_arg and name.endswith("id")
        ):
            found.append(run)
    return found


def _runs_given(
    db: Writer, message_id: Any, thread_arg: str, table: str | None, wanted: str
) -> set[str]:
    """Unfinished runs given `message_id` as an `...id` argument (not the thread's),
    of the same JSON type (`1`, not `true`), except those that have generated into
    other rows and not into this one."""
    found = {run.id for run in _runs_naming(db, message_id, thread_arg, _UNFINISHED)}
    if not found:
        return found
    elsewhere = db.exec(
        select(Generation.run_id, Generation.target, Generation.row_key).where(
            Generation.run_id.in_(found)  # type: ignore[union-attr]
        )
    ).all()
    busy = {run for run, target, key in elsewhere if (target, key) != (table, wanted)}
    mine = {run for run, target, key in elsewhere if (target, key) == (table, wanted)}
    return found - (busy - mine)


def _declared_table(fn: Callable[..., Any]) -> str | None:
    """The table of `-> list[Model]` in a query's return annotation, if it says."""
    try:
        hint = typing.get_type_hints(fn).get("return")
    except Exception:  # an annotation that does not resolve: learn it from the rows
        return None
    for candidate in typing.get_args(hint):
        name = getattr(candidate, "__tablename__", None)
        if isinstance(name, str):
            return name
    return None


def _mark_cancelled(db: Writer, row: Any, table: str | None, key: str) -> None:
    """A message whose run was cancelled before it started streaming: cancelled too
    (`row` as the messages query gave it, looked up by `key` if that was a dict)."""
    if not hasattr(row, "_sa_instance_state"):
        row = target_row(db, table, key) if table is not None else None
    if row is not None and getattr(row, "status", None) in ABORTABLE:
        row.status = "cancelled"


def send_mutation(
    send: Mutation[..., Any], thread_arg: str, text_arg: str, thread_id: Any
) -> Mutation[..., Any]:
    """`send` as the input may call it: with the text, into this chat's thread only
    (the browser is told the thread's id, but it could send any)."""

    def send_message(db: Writer, **args: Any) -> Any:
        if json.dumps(args[thread_arg]) != json.dumps(thread_id):  # as the page has it
            raise RxnbError(
                f"rx.chat: this chat sends only to its own thread ({thread_arg}="
                f"{thread_id!r}), not to {args[thread_arg]!r}"
            )
        latest = registry.latest(send)  # a cell that redefines `send` is heard
        return latest.fn(db, **latest.arguments.check(args))

    # Exactly these two arguments (anything else from the browser is refused), and a
    # name of its own: "<locals>" keeps it from replacing another chat's by name.
    send_message.__qualname__ = f"chat.<locals>.{send.fn.__name__}"
    send_message.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter("db", inspect.Parameter.POSITIONAL_OR_KEYWORD),
            inspect.Parameter(thread_arg, inspect.Parameter.KEYWORD_ONLY, default=thread_id),
            inspect.Parameter(text_arg, inspect.Parameter.KEYWORD_ONLY),
        ]
    )
    return Mutation(send_message)

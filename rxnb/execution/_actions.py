"""`@rx.action`: functions that run in the background as durable runs, and the ways
to start one (`start`, `db.schedule` in a mutation, `rx.run_after`, `rx.run_at`)."""

from __future__ import annotations

import datetime
import math
import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlmodel import select

from rxnb.errors import ArgumentError, FunctionError
from rxnb.execution import _clock as clock
from rxnb.execution import hooks
from rxnb.execution._arguments import encode_args, takes_context
from rxnb.execution._context import ActionContext
from rxnb.execution._executor import executor_for
from rxnb.execution._handles import RunHandle
from rxnb.execution._model import TERMINAL, Run, RunStatus
from rxnb.execution._outcome import backoff_delay
from rxnb.execution._queues import queue_name, require_queue
from rxnb.functions import StoreFunction, registry
from rxnb.reactive import Store, current_store, open_stores
from rxnb.store import Writer

P = ParamSpec("P")
R = TypeVar("R")


class Action(StoreFunction[P, R]):
    """A function that runs in the background as a run (`rx_runs`), claimed by an executor."""

    kind = "action"
    retry_on_raise = True
    """Whether a raise is retried while attempts are left (a workflow retries steps)."""

    def __init__(
        self,
        fn: Callable[Concatenate[ActionContext, P], R],
        *,
        retries: int = 0,
        backoff: float = 1.0,
        timeout: float | None = None,
        crash_retries: int | None = None,
        at_most_once: bool = False,
        queue: Any = None,
    ) -> None:
        _check_count(self.kind, "retries", retries)
        if backoff < 0 or (timeout is not None and timeout <= 0):
            raise FunctionError(
                f"@rx.{self.kind}: backoff must be >= 0 and timeout > 0 seconds, not "
                f"backoff={backoff!r}, timeout={timeout!r}"
            )
        if crash_retries is None:
            crash_retries = default_crash_retries()
        _check_count(self.kind, "crash_retries", crash_retries)
        if not isinstance(at_most_once, bool):
            raise FunctionError(
                f"@rx.{self.kind}(at_most_once={at_most_once!r}): pass True or False"
            )
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        self.crash_retries, self.at_most_once = crash_retries, at_most_once
        self.queue = queue_name(queue, f"@rx.{self.kind}")
        """The name of the `rx.Queue` whose limits hold its runs' starts, if any."""
        if not takes_context(fn):
            name = getattr(fn, "__name__", "f")
            raise FunctionError(
                f"action `{name}` must take its context as the first parameter, e.g. "
                f"`def {name}(ctx: rx.ActionContext, ...)`"
            )
        super().__init__(fn)
        # Defined (or redefined) after rx.open(): the current store's executor, and any
        # other running one, take its queued runs from now on.
        stores = open_stores()
        for store in stores:
            if getattr(store, "_rx_executor", None) is not None or store is stores[-1]:
                executor_for(store).register(self)

    def context(self, store: Store, run_id: str, attempt: int) -> ActionContext:
        """The context a run of this function gets."""
        return ActionContext(store, run_id, attempt)

    def delay(self, attempt: int) -> float:
        """Seconds before retrying after failed attempt number `attempt`."""
        return backoff_delay(attempt, self.backoff)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        """Run inline in the caller, for debugging (no run is recorded)."""
        return self.call_on(current_store(), *args, **kwargs)

    def call_on(self, store: Store, /, *args: Any, **kwargs: Any) -> R:
        checked = self.arguments.bind(args, kwargs)
        latest = registry.latest(self)
        return latest.fn(ActionContext(store, None), **checked)  # type: ignore[no-any-return]

    def start(self, *args: P.args, **kwargs: P.kwargs) -> RunHandle:
        """Start a run now and return its handle at once.

        Keywords of `start`, not of the action:
        - `key=` makes the start idempotent: an unfinished run with that key is
          returned instead of a new one;
        - `debounce=` seconds (with `key=`): the run starts that long after the last
          start with its key, with the arguments of that last start (a run of the key
          already running is left to finish; the new one follows it);
        - `partition=` the key its queue's `per_partition=` limit counts by;
        - `priority=` a whole number: higher starts first among due runs.
        """
        options = Start.pop(self.name, kwargs)
        return self.enqueue(clock.now(), args, kwargs, options.key, options)

    def enqueue(
        self,
        due_at: float,
        args: tuple[Any, ...],
        kwargs: Mapping[str, Any],
        key: Any,
        options: Start | None = None,
    ) -> RunHandle:
        """Record a run due at `due_at` in the current store; its handle."""
        if not math.isfinite(due_at):
            raise ArgumentError(
                f"action `{self.name}`: the start time must be a finite number of seconds, "
                f"not {due_at!r}"
            )
        store = current_store()
        encoded = encode_args(self.name, self.arguments.bind(args, kwargs))
        start = options or Start(key=key)
        run_id = store.database.write(lambda db: insert_run(db, self, encoded, due_at, key, start))
        executor_for(store).register(self)
        return RunHandle(run_id, store)


@dataclass(frozen=True)
class Start:
    """How a run is started, beside its arguments (the keywords `start` takes)."""

    key: str | None = None
    debounce: float | None = None
    partition: str | None = None
    priority: int = 0

    @classmethod
    def pop(cls, function: str, kwargs: dict[str, Any]) -> Start:
        """The start options in `kwargs` (removed from it), checked."""
        key, debounce = kwargs.pop("key", None), kwargs.pop("debounce", None)
        partition, priority = kwargs.pop("partition", None), kwargs.pop("priority", 0)
        where = f"`{function}`.start"
        if debounce is not None:
            ok = isinstance(debounce, int | float) and not isinstance(debounce, bool)
            if not ok or not math.isfinite(debounce) or debounce < 0:
                raise ArgumentError(
                    f"{where}(debounce={debounce!r}): give the seconds to wait for a later "
                    "start, e.g. debounce=2.0"
                )
            if key is None:
                raise ArgumentError(
                    f"{where}(debounce={debounce!r}) needs key=: the starts that replace "
                    "each other share a key, e.g. key=f'doc-{doc_id}'"
                )
        if partition is not None and (not isinstance(partition, str | int) or partition == ""):
            raise ArgumentError(
                f"{where}(partition={partition!r}): give a non-empty string, e.g. "
                "partition='user-7'"
            )
        if isinstance(priority, bool) or not isinstance(priority, int) or abs(priority) > 2**31 - 1:
            raise ArgumentError(
                f"{where}(priority={priority!r}): give a whole number (higher starts first)"
            )
        return cls(
            key=None if key is None else str(key),
            debounce=None if debounce is None else float(debounce),
            partition=None if partition is None else str(partition),
            priority=priority,
        )


def insert_run(
    db: Writer,
    action: Action[Any, Any],
    args: str,
    due_at: float,
    key: Any,
    start: Start | None = None,
) -> str:
    """Insert a run of `action` with encoded `args` in `db`'s transaction; its id (an
    unfinished run of `action` with `key`, if there is one, instead; with `debounce`,
    that run if it has not started, its arguments replaced and its start moved)."""
    start = start or Start()
    if key is not None:
        key = str(key)
        unfinished = db.exec(
            select(Run).where(
                Run.key == key,
                Run.function == action.name,  # a key names a run of this action only
                Run.status.not_in([s.value for s in TERMINAL]),  # type: ignore[attr-defined]
            )
        ).all()
        waiting = [r for r in unfinished if r.status == RunStatus.QUEUED.value and r.attempt == 0]
        if start.debounce is not None and waiting:
            run = waiting[0]
            run.args, run.due_at = args, max(due_at, clock.now() + start.debounce)
            run.partition, run.priority = start.partition, start.priority
            return run.id
        if unfinished and start.debounce is None:
            return unfinished[0].id
    if action.queue is not None:
        require_queue(db, action.queue, action.name)
    if start.debounce is not None:
        due_at = max(due_at, clock.now() + start.debounce)
    run = Run(
        id=uuid.uuid4().hex[:16],  # 64 random bits: short enough to read
        function=action.name,
        args=args,
        key=key,
        max_attempts=action.retries + 1,
        crash_retries=action.crash_retries,
        at_most_once=action.at_most_once,
        due_at=due_at,
        created_at=time.time(),
        queue=action.queue,
        partition=start.partition,
        priority=start.priority,
        ties=0,  # nothing points at it yet: see rxnb.execution._ties
    )
    if hooks.RUN_INSERTING:  # the tracing layer records the trace the run continues
        hooks.inserting(run)
    db.add(run)
    return run.id


def default_crash_retries() -> int:
    """`crash_retries` where an action does not say (RXNB_CRASH_RETRIES, default 3)."""
    text = os.environ.get("RXNB_CRASH_RETRIES", "3")
    try:
        value = int(text)
    except ValueError:
        value = -1
    if not 0 <= value <= MAX_COUNT:
        raise FunctionError(
            f"RXNB_CRASH_RETRIES={text!r}: set it to a whole number from 0 to {MAX_COUNT:,} "
            "(3 by default)"
        )
    return value


MAX_COUNT = 10**9
"""The most `retries=` or `crash_retries=` (a stored count must fit 32 bits)."""


def _check_count(kind: str, name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_COUNT:
        raise FunctionError(
            f"@rx.{kind}({name}={value!r}): use a whole number from 0 to {MAX_COUNT:,}"
        )


def _schedule(db: Writer, action: Any, args: dict[str, Any]) -> str:
    """`db.schedule(action, **args)`: the run is inserted in the mutation's transaction."""
    if not isinstance(action, Action):
        raise FunctionError(f"db.schedule takes an @rx.action, not {action!r}")
    encoded = encode_args(action.name, action.arguments.bind((), args))
    run_id = insert_run(db, action, encoded, clock.now(), None)
    executor_for(_store_of(db)).register(action)
    return run_id


def _store_of(db: Writer) -> Store:
    """The open store whose database `db` writes to (the current one if none matches)."""
    bind = db.get_bind()
    engine = getattr(bind, "engine", bind)  # a session bound to a connection
    for store in open_stores():
        if engine in store.database.engines():
            return store
    return current_store()


Writer._rx_scheduler = _schedule


def run_after(seconds: float, action: Action[..., Any], /, **args: Any) -> RunHandle:
    """Start `action(**args)` in `seconds` seconds."""
    return action.enqueue(clock.now() + float(seconds), (), args, args.pop("key", None))


def run_at(when: datetime.datetime, action: Action[..., Any], /, **args: Any) -> RunHandle:
    """Start `action(**args)` at `when` (a naive datetime is local time)."""
    return action.enqueue(when.timestamp(), (), args, args.pop("key", None))


def action(
    fn: Callable[..., Any] | None = None,
    *,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
    crash_retries: int | None = None,
    at_most_once: bool = False,
    queue: Any = None,
) -> Any:
    """Declare a background action: `def f(ctx: rx.ActionContext, ...)`.

    `f.start(**args)` records a run and returns a `RunHandle` at once; an executor
    thread runs it. `retries=` allows that many more attempts after an exception
    (exponential backoff from `backoff` seconds, with jitter); `timeout=` seconds
    requests cancellation and fails the run when exceeded. `f(**args)` runs it
    inline, for debugging.

    A run whose process stops (a kernel restart, a worker stopped) is handed over:
    queued again, its attempt not spent. One whose process dies (kill -9, out of
    memory) is queued again up to `crash_retries` times in a row (RXNB_CRASH_RETRIES,
    default 3): at least once, like DBOS and Temporal. `at_most_once=True` never
    starts a run again that may have run in part (Convex's actions): it fails instead.

    `queue=` (an `rx.Queue` or its name) holds its runs' starts to the queue's
    limits (concurrency, per partition, rate), across every process.
    """

    def wrap(f: Callable[..., Any]) -> Action[Any, Any]:
        return Action(
            f,
            retries=retries,
            backoff=backoff,
            timeout=timeout,
            crash_retries=crash_retries,
            at_most_once=at_most_once,
            queue=queue,
        )

    return wrap(fn) if fn is not None else wrap

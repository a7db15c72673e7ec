"""`@rx.action`: functions that run in the background as durable runs."""

from __future__ import annotations

import datetime
import inspect
import json
import math
import re
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, ParamSpec, TypeVar

from sqlmodel import select

from rxnb.errors import (
    ArgumentError,
    FunctionError,
    ResultError,
    RunCancelledError,
    RunError,
    RunFailedError,
    RunNotFoundError,
    RxnbError,
)
from rxnb.functions import StoreFunction, registry
from rxnb.reactive import Store, current_store, open_stores, to_jsonable
from rxnb.runs import _clock as clock
from rxnb.runs._context import ActionContext
from rxnb.runs._executor import Executor, backoff_delay
from rxnb.runs._model import TERMINAL, Run, RunStatus, ended
from rxnb.store import Writer

P = ParamSpec("P")
R = TypeVar("R")

_executors_lock = threading.Lock()


def executor_for(store: Store) -> Executor:
    """The store's executor in this process, started on first use (one per store)."""
    with _executors_lock:
        executor: Executor | None = getattr(store, "_rx_executor", None)
        if executor is None:
            executor = Executor(store)
            store._rx_executor = executor  # type: ignore[attr-defined]
    return executor


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
    ) -> None:
        given: Any = retries
        if not isinstance(given, int) or given < 0:
            raise FunctionError(f"@rx.action(retries={retries!r}): use a whole number >= 0")
        if backoff < 0 or (timeout is not None and timeout <= 0):
            raise FunctionError("@rx.action: backoff must be >= 0 and timeout > 0 seconds")
        self.retries, self.backoff, self.timeout = retries, backoff, timeout
        if not _takes_context(fn):
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

        `key=` (a keyword of `start`, not of the action) makes the start idempotent:
        an unfinished run with that key is returned instead of a new one.
        """
        key = kwargs.pop("key", None)
        return self._enqueue(clock.now(), args, kwargs, key)

    def _enqueue(
        self, due_at: float, args: tuple[Any, ...], kwargs: Mapping[str, Any], key: Any
    ) -> RunHandle:
        if not math.isfinite(due_at):
            raise ArgumentError(
                f"action `{self.name}`: the start time must be a finite number of seconds, "
                f"not {due_at!r}"
            )
        store = current_store()
        checked = self.arguments.bind(args, kwargs)
        encoded = _encode_args(self, checked)
        run_id = store.database.write(lambda db: _insert(db, self, encoded, due_at, key))
        executor_for(store).register(self)
        return RunHandle(run_id, store)


_SECRET_NAME = re.compile(
    r"(^|_)((api|secret|private|access|openai|anthropic)_?key|secret|password|passwd|token"
    r"|access_token|credentials?|authorization)$",
    re.IGNORECASE,
)


def _takes_context(fn: Callable[..., Any]) -> bool:
    if not callable(fn):
        return True  # the functions layer says what is wrong
    try:
        params = list(inspect.signature(fn).parameters.values())
    except (TypeError, ValueError):
        return True  # let the functions layer say what is wrong
    return bool(params) and params[0].kind in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    )


def _encode_args(action: Action[Any, Any], checked: Mapping[str, Any]) -> str:
    """The arguments as the JSON a run stores, or ArgumentError naming the one that is not."""
    encoded = {}
    for name, value in checked.items():
        if _SECRET_NAME.search(name) and isinstance(value, str) and value:
            raise ArgumentError(
                f"action `{action.name}`: argument `{name}` looks like a secret, and a run "
                "stores its arguments in the store, where every notebook and worker can read "
                "them; read the secret inside the action instead (e.g. os.environ[...])"
            )
        try:
            encoded[name] = to_jsonable(value, where=name)
        except ResultError:
            raise ArgumentError(
                f"action `{action.name}`: argument `{name}` is a {type(value).__name__} "
                f"({value!r:.60}), which a run cannot store; runs keep their arguments as "
                "JSON: pass str, int, float, bool, None, lists, dicts or pydantic models "
                "(or an id to look the object up inside the action)"
            ) from None
    return json.dumps(encoded)


def _insert(db: Writer, action: Action[Any, Any], args: str, due_at: float, key: Any) -> str:
    if key is not None:
        key = str(key)
        existing = db.exec(
            select(Run.id).where(
                Run.key == key,
                Run.function == action.name,  # a key names a run of this action only
                Run.status.not_in([s.value for s in TERMINAL]),  # type: ignore[attr-defined]
            )
        ).first()
        if existing is not None:
            return str(existing)
    run = Run(
        id=uuid.uuid4().hex[:16],  # 64 random bits: short enough to read
        function=action.name,
        args=args,
        key=key,
        max_attempts=action.retries + 1,
        due_at=due_at,
        created_at=time.time(),
    )
    db.add(run)
    return run.id


def _schedule(db: Writer, action: Any, args: dict[str, Any]) -> str:
    """`db.schedule(action, **args)`: the run is inserted in the mutation's transaction."""
    if not isinstance(action, Action):
        raise FunctionError(f"db.schedule takes an @rx.action, not {action!r}")
    checked = action.arguments.bind((), args)
    run_id = _insert(db, action, _encode_args(action, checked), clock.now(), None)
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
    return action._enqueue(clock.now() + float(seconds), (), args, args.pop("key", None))


def run_at(when: datetime.datetime, action: Action[..., Any], /, **args: Any) -> RunHandle:
    """Start `action(**args)` at `when` (a naive datetime is local time)."""
    return action._enqueue(when.timestamp(), (), args, args.pop("key", None))


def _cancel_run(db: Writer, run_id: str) -> str:
    run = db.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id {run_id!r}")
    if RunStatus(run.status) in TERMINAL:
        return run.status
    run.cancel_requested = True
    if run.status != RunStatus.RUNNING.value:
        run.status, run.finished_at = RunStatus.CANCELLED.value, time.time()
        ended(db, run)
    return run.status


def _retry_run(db: Writer, run_id: str) -> str:
    run = db.get(Run, run_id)
    if run is None:
        raise RunNotFoundError(f"no run has id {run_id!r}")
    if run.status not in (RunStatus.FAILED.value, RunStatus.CANCELLED.value):
        raise RunError(
            f"run {run_id} is {run.status}; only failed or cancelled runs can be retried"
        )
    if run.key is not None:
        other = db.exec(
            select(Run.id).where(
                Run.key == run.key,
                Run.function == run.function,
                Run.id != run.id,
                Run.status.not_in([s.value for s in TERMINAL]),  # type: ignore[attr-defined]
            )
        ).first()
        if other is not None:
            raise RunError(
                f"run {other} with the same key {run.key!r} is unfinished; "
                "follow that one instead of retrying this"
            )
    run.status, run.owner, run.due_at = RunStatus.QUEUED.value, None, clock.now()
    run.cancel_requested, run.finished_at = False, None
    run.max_attempts = run.attempt + 1
    return run.status


def cancel(run_id: str, *, store: Store | None = None) -> str:
    """Request that run `run_id` stop; its status after the request.

    A queued (or parked) run is cancelled at once; a running one sees the request
    through `ctx.cancelled` / `ctx.check_cancelled()`, from any process.
    """
    return str((store or current_store()).call(cancel_run, run_id=run_id))


def retry(run_id: str, *, store: Store | None = None) -> str:
    """Queue a failed or cancelled run again, for one more attempt."""
    return str((store or current_store()).call(retry_run, run_id=run_id))


class RunHandle:
    """A run, from any process: its status, its result, a way to cancel it."""

    def __init__(self, run_id: str, store: Store) -> None:
        self.id = run_id
        self.store = store

    def __repr__(self) -> str:
        return f"<rx.RunHandle {self.id} {self.status}>"

    def run(self) -> Run:
        """The run's row as stored now."""
        row = self.store.database.read(lambda db: db.get(Run, self.id))[0]
        if row is None:
            raise RunNotFoundError(f"no run has id {self.id!r} in {self.store.url}")
        return row

    @property
    def status(self) -> str:
        return self.run().status

    def cancel(self) -> str:
        return cancel(self.id, store=self.store)

    def follow(self, timeout: float | None = None) -> str | None:
        """Show the run live in this cell's output until it ends; its final status.

        Interrupting the cell (the kernel's stop button) stops following only: the
        run goes on, and None is returned.
        """
        from rxnb.widgets import follow

        return follow(self, timeout)

    def wait(self, timeout: float | None = None) -> str:
        """Block until the run has ended; its final status. TimeoutError at `timeout`."""
        self.run()  # RunNotFoundError rather than waiting for a run that does not exist
        done = threading.Event()
        final: list[str] = []

        def seen(row: dict[str, Any] | None) -> None:
            if row is not None and RunStatus(row["status"]) in TERMINAL:
                final.append(row["status"])
                done.set()

        sub = self.store.subscribe(run_state, {"run_id": self.id}, seen)
        try:
            if not done.wait(timeout):
                raise TimeoutError(
                    f"run {self.id} still {self.status} after {timeout} s{self._hint()}"
                )
        finally:
            sub.close()
        return final[0]

    def _hint(self) -> str:
        """Why a run that is not running may never start: no one can run it."""
        from rxnb.runs._owners import can_run

        try:
            row = self.run()
            if (
                row.status == RunStatus.RUNNING.value
                or self.store.database.read(lambda db: can_run(db, row.function))[0]
            ):
                return ""
        except RxnbError:  # the store is closing: the timeout says enough
            return ""
        return (
            f"; no live executor has `{row.function}` registered: run the cell that "
            "defines it in a kernel with this store open, or start `rxnb worker --import "
            "MODULE` with a module that defines it"
        )

    def result(self, timeout: float | None = None) -> Any:
        """The run's return value once it succeeded (RunFailedError, RunCancelledError)."""
        self.wait(timeout)
        row = self.run()
        if row.status == RunStatus.SUCCEEDED.value:
            return None if row.result is None else json.loads(row.result)
        if row.status == RunStatus.CANCELLED.value:
            raise RunCancelledError(f"run {self.id} ({row.function}) was cancelled")
        raise RunFailedError(f"run {self.id} ({row.function}) failed: {row.error}")


def _run_state(db: Any, run_id: str) -> dict[str, Any] | None:
    row = db.get(Run, run_id)
    return None if row is None else {"status": row.status, "attempt": row.attempt}


def action(
    fn: Callable[..., Any] | None = None,
    *,
    retries: int = 0,
    backoff: float = 1.0,
    timeout: float | None = None,
) -> Any:
    """Declare a background action: `def f(ctx: rx.ActionContext, ...)`.

    `f.start(**args)` records a run and returns a `RunHandle` at once; an executor
    thread runs it. `retries=` allows that many more attempts after an exception
    (exponential backoff from `backoff` seconds, with jitter); `timeout=` seconds
    requests cancellation and fails the run when exceeded. Without `retries` an
    action runs at most once. `f(**args)` runs it inline, for debugging.
    """

    def wrap(f: Callable[..., Any]) -> Action[Any, Any]:
        return Action(f, retries=retries, backoff=backoff, timeout=timeout)

    return wrap(fn) if fn is not None else wrap


from rxnb.functions import mutation as _mutation  # noqa: E402
from rxnb.functions import query as _query  # noqa: E402

run_state = _query(_run_state)
cancel_run = _mutation(_cancel_run)
"""The mutation behind `rx.cancel` (and a runs view's Cancel button)."""
retry_run = _mutation(_retry_run)
"""The mutation behind `rx.retry` (and a runs view's Retry button)."""

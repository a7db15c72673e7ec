"""`@rx.query` and `@rx.mutation`: registered, argument-checked store functions."""

from __future__ import annotations

import functools
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import Any, Concatenate, Generic, ParamSpec, TypeVar

import sqlalchemy as sa

from rxnb.errors import FunctionError
from rxnb.functions._arguments import ArgumentSpec
from rxnb.reactive import Store, current_store, redefined, to_jsonable
from rxnb.store import Reader, Writer

P = ParamSpec("P")
R = TypeVar("R")


class Registry:
    """Functions by qualified name (`module.qualname`), the latest definition winning.

    Re-running a notebook cell defines the function again under the same name; the
    registry keeps the new one and tells the open stores, whose subscriptions of it
    re-run with the new code. Functions defined inside other functions (`<locals>`)
    are each their own and never replace one another.
    """

    def __init__(self) -> None:
        self._latest: dict[str, StoreFunction[Any, Any]] = {}
        self._lock = threading.Lock()

    def register(self, function: StoreFunction[Any, Any]) -> None:
        if not function.replaceable:
            return
        with self._lock:
            replaced = function.name in self._latest
            self._latest[function.name] = function
        if replaced:
            redefined(function.name)

    def latest(self, function: StoreFunction[Any, Any]) -> StoreFunction[Any, Any]:
        if not function.replaceable:
            return function
        with self._lock:
            return self._latest.get(function.name, function)

    def get(self, name: str) -> StoreFunction[Any, Any] | None:
        with self._lock:
            return self._latest.get(name)

    def all(self) -> list[StoreFunction[Any, Any]]:
        """The latest definition of every registered function."""
        with self._lock:
            return list(self._latest.values())


registry = Registry()

LiveView = Callable[["Query[..., Any]", dict[str, Any]], Any]

_live_view: list[LiveView] = []


def set_live_view(fn: LiveView) -> None:
    """Make `fn(query, args)` what `Query.live` returns (the widgets layer's widget,
    registered by `import rxnb`: this layer knows no widget)."""
    _live_view[:] = [fn]


class StoreFunction(ABC, Generic[P, R]):
    """What @rx.query and @rx.mutation return: call it like the function, minus `db`."""

    kind = "function"

    def __init__(self, fn: Callable[Concatenate[Any, P], R]) -> None:
        if not callable(fn):
            raise FunctionError(
                f"@rx.{self.kind} decorates a function, not {type(fn).__name__} ({fn!r})"
            )
        self.fn = fn
        self.name = f"{fn.__module__}.{fn.__qualname__}"
        self.replaceable = "<locals>" not in fn.__qualname__
        self.arguments = ArgumentSpec(fn, f"{self.kind} `{fn.__qualname__}`")
        functools.update_wrapper(self, fn)
        registry.register(self)

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """Arguments checked against the latest definition."""
        return registry.latest(self).arguments.check(args)

    def __repr__(self) -> str:
        return f"<rx.{self.kind} {self.name}{self.arguments.signature}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        return self.call_on(current_store(), *args, **kwargs)

    @abstractmethod
    def call_on(self, store: Store, /, *args: Any, **kwargs: Any) -> R:
        """Run against `store` (each kind says how)."""


def _materialize(value: Any) -> Any:
    """Results that read lazily are read now, while the transaction is open."""
    if isinstance(value, sa.Result | sa.ScalarResult):
        return value.all()
    return value


class Query(StoreFunction[P, R]):
    """A read-only function of the store; its reads are tracked for subscriptions."""

    kind = "query"

    def run(self, reader: Reader, args: Mapping[str, Any]) -> Any:
        """Run the latest definition with checked `args` (used by subscriptions)."""
        latest = registry.latest(self)
        if not isinstance(latest, Query):
            raise FunctionError(
                f"`{self.name}` was redefined as a {latest.kind}; subscriptions need a query"
            )
        checked = latest.arguments.check(args)
        return _materialize(latest.fn(reader, **checked))

    def live(self, *args: P.args, **kwargs: P.kwargs) -> Any:
        """A live widget of this query's result: shown now, updated after every change.

        Re-running the cell replaces it (its subscription is closed); closing the
        widget closes the subscription too. Needs a notebook front end to display.
        """
        if not _live_view:
            raise FunctionError("Query.live needs rxnb's widgets: `import rxnb` first")
        return _live_view[0](self, self.arguments.bind(args, kwargs))

    def call_on(self, store: Store, /, *args: Any, **kwargs: Any) -> R:
        checked = self.arguments.bind(args, kwargs)
        result, _ = store.database.read(lambda reader: self.run(reader, checked))
        to_jsonable(result, where=f"Query `{self.name}`")
        return result  # type: ignore[no-any-return]


class Mutation(StoreFunction[P, R]):
    """A serializable transaction: all its writes commit together or not at all."""

    kind = "mutation"

    def call_on(self, store: Store, /, *args: Any, **kwargs: Any) -> R:
        checked = self.arguments.bind(args, kwargs)
        latest = registry.latest(self)

        def body(writer: Writer) -> Any:
            result = _materialize(latest.fn(writer, **checked))
            to_jsonable(result, where=f"Mutation `{self.name}`")  # fail before commit
            return result

        return store.database.write(body)  # type: ignore[no-any-return]


def query(fn: Callable[Concatenate[Reader, P], R]) -> Query[P, R]:
    """Declare a read-only query: `def f(db: rx.Reader, ...) -> result`.

    Call it for a one-off read; `store.subscribe(f, args, callback)` keeps it live.
    """
    return Query(fn)


def mutation(fn: Callable[Concatenate[Writer, P], R]) -> Mutation[P, R]:
    """Declare a mutation: `def f(db: rx.Writer, ...)`, run as one serializable transaction.

    It may run more than once (on a busy store), so it does no I/O besides the store.
    """
    return Mutation(fn)

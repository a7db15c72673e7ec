"""`Subscription`: one query with fixed arguments, kept current for a subscriber."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Protocol

from rxnb.reactive._index import SubscriptionId
from rxnb.reactive._results import JSONValue
from rxnb.store import PinnedEnds, Reader

if TYPE_CHECKING:
    from rxnb.reactive._reactor import Reactor

log = logging.getLogger("rxnb.reactive")


class Subscribable(Protocol):
    """What a subscription runs: a registered query (see `rxnb.functions.Query`)."""

    @property
    def name(self) -> str: ...

    def validate(self, args: Mapping[str, Any]) -> dict[str, Any]:
        """The arguments checked against the current definition, or ArgumentError."""
        ...

    def run(self, reader: Reader, args: Mapping[str, Any]) -> Any:
        """Run the current definition of the query with `reader`."""
        ...


Callback = Callable[..., None]
"""`callback(result)`, or `callback(result, payload)` for a `with_payload` subscription."""
ErrorCallback = Callable[[BaseException], None]


class Subscription:
    """A live query: its latest result, delivered to a callback whenever it changes.

    Close it (or use it as a context manager) to stop updates. `result` is the last
    value delivered; `error` is set while the query raises, and cleared when it
    recovers.
    """

    def __init__(
        self,
        sub_id: SubscriptionId,
        query: Subscribable,
        args: Mapping[str, Any],
        callback: Callback | None,
        on_error: ErrorCallback | None,
        reactor: Reactor,
        *,
        with_payload: bool = False,
        min_interval: float = 0.0,
    ) -> None:
        self.id = sub_id
        self.query = query
        self.args = dict(args)
        self.result: Any = None
        self.error: BaseException | None = None
        self.runs = 0
        """How many times the query ran for this subscription (initial run included)."""
        self.deliveries = 0
        self.patches = 0
        """How many results were the query's patch of the last one (`Reactor` rule 11)."""
        self._callback = callback
        self._with_payload = with_payload
        self.min_interval = min_interval
        """Least seconds between two re-runs (rule 9 of the reactor); 0: no limit."""
        self._last_run = -1e9
        self._on_error = on_error
        self._reactor = reactor
        self._payload: JSONValue = _NOTHING
        self._error_key: tuple[str, str] | None = None
        self._first = threading.Event()
        self._closed = False
        self.pinned = PinnedEnds()
        """The ends of the pages its query reads with `db.paginate` (kept across runs)."""

    @property
    def payload(self) -> JSONValue:
        """The last delivered result as JSON values (what widgets render)."""
        return None if isinstance(self._payload, _Nothing) else self._payload

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Stop updates. Idempotent; safe from any thread, callbacks included."""
        if not self._closed:
            self._closed = True
            self._reactor.forget(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "error" if self.error else "live"
        args = ", ".join(f"{k}={v!r}" for k, v in self.args.items())
        return f"<Subscription {self.id} {self.query.name}({args}) {state}>"

    # -- called on the reactor thread ------------------------------------------------

    def _deliver(self, result: Any, payload: JSONValue) -> bool:
        """Rule 6 of `Reactor`: call back only when the serialized result changed."""
        changed = payload != self._payload or self.error is not None
        self.result, self._payload, self.error, self._error_key = result, payload, None, None
        if changed and not self._closed:
            self.deliveries += 1
            if self._with_payload and self._callback is not None:
                _call(lambda r: self._callback(r, payload), result, self)  # type: ignore[misc]
            else:
                _call(self._callback, result, self)
        self._first.set()  # after the callback: subscribe() returns with it delivered
        return changed

    def _fail(self, error: BaseException) -> bool:
        key = (type(error).__name__, str(error))
        changed = key != self._error_key
        self.error, self._error_key = error, key
        self._payload = _NOTHING
        if changed and not self._closed:
            if self._on_error is None:
                log.warning("rxnb: query %s failed: %r", self.query.name, error)
            else:
                _call(self._on_error, error, self)
        self._first.set()
        return changed

    def _wait_first(self, timeout: float) -> bool:
        return self._first.wait(timeout)


class _Nothing:
    def __repr__(self) -> str:
        return "<no result yet>"


_NOTHING = _Nothing()


def _call(fn: Callable[[Any], None] | None, value: Any, sub: Subscription) -> None:
    if fn is None:
        return
    try:
        fn(value)
    except Exception:
        log.exception("rxnb: a callback of %r raised; other subscribers go on", sub)

"""The sessions user functions receive: `Reader` in queries, `Writer` in mutations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar

from sqlmodel import Session

from rxnb.errors import ReadOnlyError, RxnbError
from rxnb.store._tracking import Tracker


class Reader(Session):
    """A read-only SQLModel session; every statement it runs is recorded in a read set.

    Use `exec`, `get` and `scalar` as with any SQLModel session. Writing raises
    `ReadOnlyError`.
    """

    _rx_writing = False

    def _refuse(self, what: str) -> None:
        if not self._rx_writing:
            raise ReadOnlyError(
                f"A query called `{what}`, but queries are read-only; "
                "move the write into an @rx.mutation"
            )

    def add(self, instance: object, *args: Any, **kwargs: Any) -> None:
        self._refuse("add")
        super().add(instance, *args, **kwargs)

    def add_all(self, instances: Any) -> None:
        self._refuse("add_all")
        super().add_all(instances)

    def delete(self, instance: object) -> None:
        self._refuse("delete")
        super().delete(instance)

    def merge(self, instance: Any, *args: Any, **kwargs: Any) -> Any:
        self._refuse("merge")
        return super().merge(instance, *args, **kwargs)


class Writer(Reader):
    """The session of a mutation: one serializable transaction.

    It commits when the mutation returns and rolls back, leaving nothing written, when
    it raises. Do no I/O besides the store in a mutation: it may run more than once.
    """

    _rx_writing = True
    _rx_tracker: Tracker | None = None
    _rx_scheduler: ClassVar[Callable[[Writer, Any, dict[str, Any]], str] | None] = None
    """Set by the runs layer (`rxnb.execution`), which the store layer does not import."""

    def schedule(self, action: Any, /, **args: Any) -> str:
        """Start `action(**args)` in the background if, and only if, this transaction
        commits. Returns the run's id; arguments are checked now (ArgumentError)."""
        scheduler = Writer._rx_scheduler
        if scheduler is None:
            raise RxnbError("db.schedule needs rxnb's runs layer; `import rxnb` loads it")
        return scheduler(self, action, args)

    def flush(self, objects: Any = None) -> None:
        # The ORM flush reports each row through mapper events; statements it runs
        # must not also count as table-level writes.
        tracker = self._rx_tracker
        if tracker is not None:
            tracker.flushing += 1
        try:
            super().flush(objects)
        finally:
            if tracker is not None:
                tracker.flushing -= 1

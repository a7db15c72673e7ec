"""The sessions user functions receive: `Reader` in queries, `Writer` in mutations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, TypeVar, overload

from sqlalchemy import event
from sqlmodel import Session
from sqlmodel.sql.expression import Select, SelectOfScalar

from rxnb.errors import ReadOnlyError, RxnbError
from rxnb.store._paginate import Page, PinnedEnds, paginate
from rxnb.store._tracking import Tracker
from rxnb.store._vector import Hit, Metric

T = TypeVar("T")


class Reader(Session):
    """A read-only SQLModel session; every statement it runs is recorded in a read set.

    Use `exec`, `get` and `scalar` as with any SQLModel session. Writing raises
    `ReadOnlyError`.
    """

    _rx_writing = False
    _rx_pinned: PinnedEnds | None = None
    """The page ends of the subscription this reader runs for (see `paginate`)."""

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

    def search(
        self,
        column: Any,
        vector: Any,
        *,
        k: int = 10,
        where: Any = None,
        metric: Metric = "cosine",
    ) -> list[Hit[Any]]:
        """The `k` rows whose `column` (an `rx.Vector`) is nearest to `vector`, nearest
        first, among the rows matching `where`; exact, and tracked like any read.

        `metric` is "cosine" (default), "l2" or "dot"; see `rx.Hit` for the distances.
        """
        from rxnb.store._vector_search import search  # numpy: imported on first search

        return search(self, column, vector, k=k, where=where, metric=metric)

    @overload
    def paginate(
        self, statement: SelectOfScalar[T], cursor: str | None = None, size: int = 50
    ) -> Page[T]: ...

    @overload
    def paginate(
        self, statement: Select[T], cursor: str | None = None, size: int = 50
    ) -> Page[T]: ...

    def paginate(self, statement: Any, cursor: str | None = None, size: int = 50) -> Page[Any]:
        """One page of `statement`, an ordered `select(...)` of one table:
        `db.paginate(select(Message).order_by(Message.id.desc()), cursor, size=50)`.

        Returns an `rx.Page` with `.items` (up to `size` rows, more or fewer when live),
        `.cursor` (pass it as `cursor=` for the next page; None exactly when `.done`)
        and `.done` (this page reached the end of the result). The primary key breaks
        ties in the ORDER BY; NULL sorts first ascending, last descending.

        In a live query (a subscription, a widget) a page keeps the end it had when
        first read: re-runs return every row from its cursor to that end, so pages
        chained by cursors never skip or repeat a row as rows come and go, and the
        last page (`done`) grows with rows added at the end. A write re-runs only the
        pages whose range it touches. Bad cursor, unordered statement, size < 1:
        ArgumentError.
        """
        return paginate(self, statement, cursor, size, self._rx_pinned)


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

    def after_commit(self, fn: Callable[[], Any]) -> None:
        """Call `fn()` once this transaction has committed (never if it rolls back or
        is retried: a retry runs in a new session). Cheaper than a SQLAlchemy event
        listener per session, which costs tens of µs to add."""
        self.info.setdefault(_AFTER_COMMIT, []).append(fn)

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


_AFTER_COMMIT = "rx_after_commit"


def _after_commit(session: Session) -> None:
    if session.in_nested_transaction():  # a savepoint released: the transaction goes on
        return
    for fn in session.info.pop(_AFTER_COMMIT, ()):
        fn()


event.listen(Writer, "after_commit", _after_commit)

"""`Reactor`: re-runs subscriptions when writes touch what they read.

The rules, cited in the code by number:

1. A new subscription runs at once and delivers its result (or error).
2. A write re-runs a subscription iff the old or new image of a written row falls in
   the subscription's last read set; a write to a whole table re-runs every reader of
   that table, and a write rxnb cannot see into re-runs every subscription.
3. A subscription whose last run raised is taken to read everything, so that it
   recovers on the next write, whatever the write.
4. Re-defining a query (a cell re-run) re-runs every subscription of it.
5. Work is taken in batches: everything queued while the previous batch ran. Each
   affected subscription re-runs once per batch, however many writes touched it.
6. A subscriber is called only when the serialized result (or the error) changed.
7. Queries run and callbacks are called on the reactor's own thread, never on the
   thread that committed; per subscription, deliveries keep their order.
8. A gap in the change log (entries pruned before this process read them) re-runs
   every subscription.
9. A subscription with a `min_interval` (a live widget's frame) that ran less than
   that long ago is deferred, not dropped: it re-runs once when the interval has
   passed, reading everything committed by then. `wait_idle` waits for it too.

10. A write reported while the loop has nothing queued, running or deferred is matched
    on the committing thread: no run is in flight, so every read set is recorded and
    current, and a run that starts later reads a snapshot that holds the write. Only
    the subscriptions it affects are queued; a write that affects none costs the loop
    nothing (no wake-up, no thread switch).

11. A subscription whose query has `patch(result, writes)` and whose re-run was
    asked for by row writes alone is first offered them: a result returned is
    delivered as the run's (read set kept: the query promises it is what the run
    would return and read), None runs the query as usual. A deferred subscription
    (rule 9) keeps the writes that arrive while it waits and is offered them all.

Soundness: every item is queued after the commit it reports, and a batch is matched
against read sets recorded by runs that started before it was taken, so a run never
misses a write that committed after its snapshot.
"""

from __future__ import annotations

import itertools
import logging
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rxnb.reactive._index import SubscriptionId, SubscriptionIndex
from rxnb.reactive._results import to_jsonable
from rxnb.reactive._subscription import Callback, ErrorCallback, Subscribable, Subscription
from rxnb.store import Database, Reader, ReadSet, Write

log = logging.getLogger("rxnb.reactive")


@dataclass(frozen=True)
class _Writes:
    writes: Sequence[Write]


@dataclass(frozen=True)
class _Affected:
    ids: frozenset[SubscriptionId]
    writes: Sequence[Write]


@dataclass(frozen=True)
class _Start:
    sub: Subscription


@dataclass(frozen=True)
class _Forget:
    sub: Subscription


@dataclass(frozen=True)
class _Redefined:
    name: str


@dataclass(frozen=True)
class _Everything:
    reason: str


class _Stop:
    pass


_Item = _Writes | _Affected | _Start | _Forget | _Redefined | _Everything | _Stop


class Reactor:
    """Responsibilities: own the subscriptions and their index, take reported writes,
    and re-run and deliver what they affect, on one thread per store.
    """

    def __init__(self, database: Database) -> None:
        self._database = database
        self._index = SubscriptionIndex()
        self._subs: dict[SubscriptionId, Subscription] = {}
        self._by_name: dict[str, set[SubscriptionId]] = defaultdict(set)
        self._ids = itertools.count(1)
        self._queue: queue.SimpleQueue[_Item] = queue.SimpleQueue()
        self._idle = threading.Condition()
        self._pending = 0
        self._deferred: dict[SubscriptionId, float] = {}
        """Rule 9: subscriptions waiting for their interval, and when it has passed."""
        self._held: dict[SubscriptionId, list[Write] | None] = {}
        """Rule 11: the writes that affected each deferred subscription while it waited."""
        self._thread = threading.Thread(target=self._loop, name="rxnb-reactor", daemon=True)
        self._thread.start()

    # -- any thread ------------------------------------------------------------------

    def subscribe(
        self,
        query: Subscribable,
        args: Mapping[str, Any],
        callback: Callback | None,
        on_error: ErrorCallback | None,
        *,
        with_payload: bool = False,
        min_interval: float = 0.0,
        timeout: float = 60.0,
    ) -> Subscription:
        """A new subscription, after its first delivery (rule 1)."""
        sub = Subscription(
            SubscriptionId(next(self._ids)),
            query,
            args,
            callback,
            on_error,
            self,
            with_payload=with_payload,
            min_interval=min_interval,
        )
        if threading.current_thread() is self._thread:
            self._start(sub)  # from a callback: we are the loop, run it now
        else:
            self._put(_Start(sub))
            sub._wait_first(timeout)
        return sub

    def notify_writes(self, writes: Sequence[Write]) -> None:
        """Report writes that committed (commit listener and change feed).

        With no subscription registered the writes are dropped: a subscription whose
        first run has not started yet will read them anyway, and `_start` registers a
        subscription before its first run reads.
        """
        if not self._subs:
            return
        with self._idle:
            if self._pending == 0:  # rule 10: match here, wake the loop only if needed
                affected = self._index.affected(writes)
                if not affected:
                    return
                self._pending += 1
                self._queue.put(_Affected(frozenset(affected), writes))
                return
        self._put(_Writes(writes))

    def redefined(self, name: str) -> None:
        """Rule 4: the query `name` has new code."""
        self._put(_Redefined(name))

    def rerun_all(self, reason: str) -> None:
        """Rule 8: re-run every subscription."""
        self._put(_Everything(reason))

    def forget(self, sub: Subscription) -> None:
        """Drop a closed subscription; later batches skip it."""
        self._put(_Forget(sub))

    def wait_idle(self, timeout: float) -> bool:
        """Block until every queued item has been handled; False on timeout."""
        with self._idle:
            return self._idle.wait_for(lambda: self._pending == 0, timeout)

    def subscriptions(self) -> list[Subscription]:
        return [s for s in list(self._subs.values()) if not s.closed]

    def stop(self) -> None:
        self._put(_Stop())
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    def _put(self, item: _Item) -> None:
        with self._idle:
            self._pending += 1
        self._queue.put(item)

    # -- the reactor thread ----------------------------------------------------------

    def _loop(self) -> None:
        while True:
            try:
                batch = [self._queue.get(timeout=self._until_deferred())]
            except queue.Empty:
                batch = []
            while True:
                try:
                    batch.append(self._queue.get_nowait())
                except queue.Empty:
                    break
            due = self._take_due()
            try:
                stop = self._handle(batch, due)
            except Exception:  # a bug here must not end reactivity for the store
                log.exception("rxnb reactor failed on a batch; continuing")
                stop = False
            with self._idle:  # only now: rule 10 needs no run in flight at 0
                self._pending -= len(batch) + len(due)
                self._idle.notify_all()
            if stop:
                return

    def _until_deferred(self) -> float | None:
        if not self._deferred:
            return None
        return max(0.0, min(self._deferred.values()) - time.monotonic())

    def _take_due(self) -> set[SubscriptionId]:
        """Rule 9: the deferred subscriptions whose time has come."""
        now = time.monotonic()
        due = {sub_id for sub_id, at in self._deferred.items() if at <= now}
        for sub_id in due:
            del self._deferred[sub_id]
        return due

    def _handle(self, batch: list[_Item], due: set[SubscriptionId]) -> bool:
        affected = set(due)
        # Rule 11: the writes that affected each subscription, in order; None where
        # something else did too (a deferral, a re-definition, a gap).
        touched = {sub_id: self._held.pop(sub_id, None) for sub_id in due}
        now = time.monotonic()
        for item in batch:  # in order: a start sees every write queued before it
            match item:
                case _Stop():
                    return True
                case _Writes(writes):
                    if writes:
                        hit = self._index.affected(writes)  # rule 2
                        affected |= hit
                        _touch(touched, hit, writes)
                case _Affected(ids, writes):
                    affected |= ids  # rule 10
                    _touch(touched, ids, writes)
                case _Start(sub):
                    self._start(sub)
                case _Forget(sub):
                    self._drop(sub)
                case _Redefined(name):
                    names = self._by_name.get(name, set())
                    affected |= names  # rule 4
                    touched.update(dict.fromkeys(names))
                case _Everything():
                    affected |= set(self._subs)  # rule 8
                    touched.update(dict.fromkeys(self._subs))
        for sub_id in sorted(affected):  # rule 5: once each per batch
            rerun = self._subs.get(sub_id)
            if rerun is None or rerun.closed:
                continue
            if sub_id in self._deferred:
                _hold(self._held, sub_id, touched.get(sub_id))
                continue
            wait = rerun.min_interval - (now - rerun._last_run)
            if wait > 0:  # rule 9
                self._deferred[sub_id] = now + wait
                self._held[sub_id] = touched.get(sub_id)
                with self._idle:
                    self._pending += 1
                continue
            self._run(rerun, touched.get(sub_id))
        return False

    def _start(self, sub: Subscription) -> None:
        if sub.closed:
            sub._first.set()
            return
        self._subs[sub.id] = sub
        self._by_name[sub.query.name].add(sub.id)
        self._run(sub)  # rule 1

    def _run(self, sub: Subscription, writes: Sequence[Write] | None = None) -> None:
        if writes and self._patched(sub, writes):
            return
        sub.runs += 1
        sub._last_run = time.monotonic()
        try:
            result, reads = self._database.read(lambda reader: _run_pinned(sub, reader))
            payload = to_jsonable(result, where=f"Query `{sub.query.name}`")
        except Exception as exc:
            self._index.record(sub.id, ReadSet(everything=True))  # rule 3
            sub._fail(exc)
            return
        self._index.record(sub.id, reads)
        sub._deliver(result, payload)

    def _patched(self, sub: Subscription, writes: Sequence[Write]) -> bool:
        """Rule 11: deliver the query's `patch` of its last result, if it has one."""
        patch = getattr(sub.query, "patch", None)
        if patch is None or sub.error is not None or sub.runs == 0:
            return False
        try:
            result = patch(sub.result, writes)
            if result is None:
                return False
            payload = to_jsonable(result, where=f"Query `{sub.query.name}`")
        except Exception:  # the run decides: it raises, or not, as it would have
            log.debug("rxnb: patching %s failed; running it", sub.query.name, exc_info=True)
            return False
        sub.patches += 1
        sub._last_run = time.monotonic()
        sub._deliver(result, payload)
        return True

    def _drop(self, sub: Subscription) -> None:
        self._subs.pop(sub.id, None)
        self._held.pop(sub.id, None)
        if self._deferred.pop(sub.id, None) is not None:
            with self._idle:
                self._pending -= 1
        self._index.remove(sub.id)
        names = self._by_name.get(sub.query.name)
        if names is not None:
            names.discard(sub.id)


def _touch(
    touched: dict[SubscriptionId, list[Write] | None],
    ids: frozenset[SubscriptionId] | set[SubscriptionId],
    writes: Sequence[Write],
) -> None:
    for sub_id in ids:
        if sub_id not in touched:
            touched[sub_id] = list(writes)
        else:
            so_far = touched[sub_id]
            if so_far is not None:
                so_far.extend(writes)


def _hold(
    held: dict[SubscriptionId, list[Write] | None],
    sub_id: SubscriptionId,
    writes: list[Write] | None,
) -> None:
    so_far = held.get(sub_id)
    if writes is None or so_far is None:
        held[sub_id] = None
    else:
        so_far.extend(writes)


def _run_pinned(sub: Subscription, reader: Reader) -> Any:
    """Run `sub`'s query with its page ends at hand (`db.paginate` in live queries)."""
    reader._rx_pinned = sub.pinned
    try:
        result = sub.query.run(reader, sub.args)
    finally:
        reader._rx_pinned = None
    sub.pinned.sweep()
    return result

"""An executor's heartbeat: its owner row renewed every second, and on each beat the
checks that need no wake-up (rules 4 and 6 of `Executor`)."""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from sqlmodel import select

from rxnb.execution import _clock as clock
from rxnb.execution._model import Owner, Run, RunStatus
from rxnb.execution._owners import lease_seconds, new_owner, orphans_exist, recover_orphans
from rxnb.execution._transitions import unclaim
from rxnb.store import Writer

if TYPE_CHECKING:
    from rxnb.execution._executor import Executor

log = logging.getLogger("rxnb.runs")

HEARTBEAT_SECONDS = 1.0
"""How often an executor renews its owner row."""


class Heartbeat:
    """The heartbeat thread of one executor.

    Responsibilities:
    1. renew the executor's owner row (`rx_owners`) every `HEARTBEAT_SECONDS`, and
       write it again if it was removed as stale while this process was stalled;
    2. recover orphans: the running runs of owners that are dead (rule 4 of
       `Executor`); after this process was itself cut off from the database, trust
       other owners' heartbeats again only a lease later;
    3. give back claims that committed unseen (rule 6 of `Executor`).
    """

    def __init__(self, executor: Executor) -> None:
        self.executor = executor
        self.store = executor.store
        self._leases_from = 0.0
        """Monotonic time from which other owners' heartbeats are trusted."""
        self._thread = threading.Thread(target=self._loop, name="rxnb-heartbeat", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        """Wait for the thread to end (once the executor has stopped)."""
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        last_beat = time.monotonic()
        while not self.executor.stopped.wait(HEARTBEAT_SECONDS):
            try:
                last_beat = self.beat(last_beat)
            except Exception:
                if self.executor.stopped.is_set() or self.store.closed:
                    return
                log.exception("rxnb: heartbeat of %s failed", self.executor.id)

    def beat(self, last_beat: float) -> float:
        """Renew the owner row, recover orphans, requeue lost claims; when it beat."""
        self.write_owner()
        now = time.monotonic()
        if now - last_beat > HEARTBEAT_SECONDS + lease_seconds() / 2:
            # This process was cut off from the database (an outage, a stall): so
            # were others, likely, whose heartbeats are as old as ours was. Give them
            # a lease to beat again before judging them by their heartbeats.
            self._leases_from = now + lease_seconds()
        leases = now >= self._leases_from
        # One read each beat; a write only when an owner is dead (rule 2) or a claim
        # was lost (rule 3).
        orphans, lost = self._look(leases)
        if orphans:
            self.recover_orphans(leases)
        self._requeue(lost)
        return now

    def recover_orphans(self, leases: bool = True) -> int:
        """Recover runs whose owner is gone; how many were recovered. `leases=False`
        judges owners by their process (on this host) only, not by their heartbeat."""
        me = self.executor.id
        return int(self.store.database.write(lambda db: recover_orphans(db, me, leases)))

    def _look(self, leases: bool) -> tuple[bool, list[tuple[str, int]]]:
        """Whether a dead owner left runs (rule 2), and the runs recorded as claimed by
        this executor that it is not running (rule 3), in one read.

        A claim whose commit reached the database while the connection broke (the
        server restarted, a network cut) is retried as if it had failed, so the first
        attempt's claim stays behind: `running` here, yet never started. Nothing else
        would ever end it (its owner is alive), so it is given back to the queue.
        """
        settled = clock.now() - 2 * HEARTBEAT_SECONDS  # older than any claim in flight
        me = self.executor.id

        def claimed_here(db: Any) -> list[tuple[str, int]]:
            rows = db.exec(
                select(Run.id, Run.attempt).where(
                    Run.owner == me,
                    Run.status == RunStatus.RUNNING.value,
                    Run.started_at < settled,  # type: ignore[operator]
                )
            ).all()
            return [(run_id, attempt) for run_id, attempt in rows]

        # Lost claims are looked for between claims only: a claim's runs join the
        # running set one by one after its commit, and a stall there (a workflow
        # context reads its journal, through an outage too) must not make them look
        # lost and run twice.
        claiming = self.executor.claiming
        between = claiming.acquire(timeout=HEARTBEAT_SECONDS)  # else: next beat
        try:
            orphans, claimed = self.store.database.read(
                lambda db: (orphans_exist(db, me, leases), claimed_here(db) if between else [])
            )[0]
            running = self.executor.running_ids()
        finally:
            if between:
                claiming.release()
        return orphans, [(run, attempt) for run, attempt in claimed if run not in running]

    def _requeue(self, lost: list[tuple[str, int]]) -> None:
        me = self.executor.id
        for run_id, attempt in lost:
            log.warning("rxnb: run %s was claimed by %s but never started; requeued", run_id, me)
            self.store.database.write(
                functools.partial(unclaim, run_id=run_id, owner=me, attempt=attempt)
            )

    def write_owner(self, functions: list[str] | None = None) -> None:
        """Renew the owner row (and its functions, if given), adding it if missing."""
        now = time.time()
        executor = self.executor

        def write(db: Writer) -> None:
            owner = db.get(Owner, executor.id)
            if owner is None:  # removed as stale while we were stalled: come back
                owner = new_owner(executor.id, now)
                db.add(owner)
            owner.heartbeat_at = now
            claimed = functions if functions is not None else executor.functions()
            owner.functions = json.dumps(claimed if executor.claims else [])

        self.store.database.write(write)

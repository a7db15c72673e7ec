"""`ChangeFeed`: other processes' commits, read from the change log, for the reactor."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Sequence
from typing import Final

from rxnb.store import Database, Write

log = logging.getLogger("rxnb.reactive")

RETENTION_SECONDS: Final = float(os.environ.get("RXNB_CHANGE_RETENTION", "600"))
"""How long change-log entries are kept; a process away longer re-runs everything."""
PRUNE_EVERY: Final = 60.0
BATCH: Final = 5000


class ChangeFeed:
    """Tails the change log on a dedicated connection and thread, one per store.

    Responsibilities: wake when another connection commits, read the new entries,
    hand the writes of other processes to `on_writes`, report a gap (entries pruned
    before they were read) to `on_gap`, and prune entries older than the retention.
    """

    def __init__(
        self,
        database: Database,
        on_writes: Callable[[Sequence[Write]], None],
        on_gap: Callable[[str], None],
    ) -> None:
        self._origin = database.origin
        self._watcher = database.open_watcher()
        self._on_writes, self._on_gap = on_writes, on_gap
        self._last = self._watcher.last_seq()
        self._stop = threading.Event()
        self._next_prune = time.monotonic() + PRUNE_EVERY
        self._thread = threading.Thread(target=self._loop, name="rxnb-change-feed", daemon=True)
        self._thread.start()

    def reporting(self) -> bool:
        """Whether the caller is this feed's thread (reporting other processes' writes)."""
        return threading.current_thread() is self._thread

    def stop(self) -> None:
        self._stop.set()
        self._watcher.interrupt()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)
        self._watcher.close()

    def _loop(self) -> None:
        failures = 0
        while not self._stop.is_set():
            try:
                if self._watcher.wait(1.0, self._stop):
                    self._catch_up()
                    if self._watcher.reconnected():
                        self._on_gap("the connection to the database was lost and remade")
                if time.monotonic() >= self._next_prune:
                    self._next_prune = time.monotonic() + PRUNE_EVERY
                    self._watcher.prune(time.time() - RETENTION_SECONDS)
                failures = 0
            except Exception:
                if self._stop.is_set():
                    return
                failures += 1
                log.exception("rxnb change feed failed (%d in a row); retrying", failures)
                self._stop.wait(min(5.0, 0.05 * 2**failures))

    def _catch_up(self) -> None:
        while True:
            changes = self._watcher.read_since(self._last, BATCH, self._origin)
            if not changes:
                return
            if self._watcher.contiguous() and changes[0].seq != self._last + 1:
                self._on_gap(f"change log entries {self._last + 1}..{changes[0].seq - 1} pruned")
            self._last = max(self._last, changes[-1].seq)  # late commits fill holes below it
            writes = [c.write for c in changes if c.write is not None]
            if writes:
                self._on_writes(writes)
            if len(changes) < BATCH:
                return

"""`Dispatcher`: the one thread per store that sends every live widget's updates."""

from __future__ import annotations

import logging
import math
import threading
import time
import weakref
from typing import Protocol

log = logging.getLogger("rxnb.widgets")


class Flushable(Protocol):
    """What the dispatcher drives: a widget with updates to send."""

    def _due(self) -> float | None:
        """When (monotonic seconds) it next has something to send; None if nothing."""
        ...

    def _flush(self, now: float) -> None:
        """Send what is due at `now`. Called on the dispatcher thread only."""
        ...


class Dispatcher:
    """Sends the updates of every live widget of one store, from one thread.

    Responsibilities:
    - wake the moment a widget has news (`post`), and at the time a throttled widget
      is next allowed to send; never poll;
    - call each widget's `_flush` on this thread only, so a widget's messages and
      display updates are sent by one thread in order (ipywidgets' sync state is
      not thread-safe), and never by the main thread: a busy cell blocks nothing;
    - keep going when a widget's send fails (logged), and stop with its store.
    """

    def __init__(self, name: str = "rxnb-widgets") -> None:
        self._cond = threading.Condition()
        self._active: weakref.WeakSet[Flushable] = weakref.WeakSet()
        self._stopped = False
        self._draining = False
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def post(self, widget: Flushable) -> None:
        """`widget` has something to send (now or after its throttle)."""
        with self._cond:
            self._active.add(widget)
            self._cond.notify()

    def stop(self, timeout: float = 5.0) -> None:
        """Send what is pending (throttles waived), then end the thread."""
        with self._cond:
            self._stopped = True
            self._cond.notify()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                due = self._wait_for_due()
            if due is None:
                return
            # Once stopping, the clock is moved past every throttle: all pending goes out.
            now = time.monotonic() + (3600.0 if self._stopped else 0.0)
            for widget in due:
                try:
                    widget._flush(now)
                except Exception:
                    log.exception("rxnb: sending an update of %r failed", widget)

    def _wait_for_due(self) -> list[Flushable] | None:
        """The widgets due now, after waiting as long as nothing is.

        Once stopped: every widget with anything pending, once; then None.
        """
        if self._stopped:
            if self._draining:
                return None
            self._draining = True
            return [w for w in list(self._active) if w._due() is not None]
        while not self._stopped:
            now = time.monotonic()
            due: list[Flushable] = []
            next_at = math.inf
            for widget in list(self._active):
                at = widget._due()
                if at is None:
                    self._active.discard(widget)
                elif at <= now:
                    due.append(widget)
                else:
                    next_at = min(next_at, at)
            if due:
                return due
            self._cond.wait(None if next_at == math.inf else next_at - now)
        return self._wait_for_due()

"""Wake-ups when a file is written, from Linux's inotify (through ctypes, no
dependency): the SQLite change watcher sleeps until another connection writes the
store's WAL file instead of waking every few milliseconds to ask. Where inotify is
not to be had (another system, no instance left), `FileWrites.watch` gives None and
the watcher polls as before."""

from __future__ import annotations

import ctypes
import os
import select
import sys
import threading
from pathlib import Path
from typing import Final

IN_MODIFY: Final = 0x00000002


class FileWrites:
    """An inotify instance watching one file for writes."""

    def __init__(self, fd: int) -> None:
        self._fd = fd
        self._woken, self._waker = os.pipe()
        os.set_blocking(self._woken, False)
        self._poll = select.poll()
        self._poll.register(fd, select.POLLIN)
        self._poll.register(self._woken, select.POLLIN)
        self._lock = threading.Lock()

    @classmethod
    def watch(cls, path: Path) -> FileWrites | None:
        """Watch `path` (which must exist) for writes; None where inotify is missing."""
        if not sys.platform.startswith("linux"):
            return None
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            init, add = libc.inotify_init1, libc.inotify_add_watch
        except (OSError, AttributeError):
            return None
        fd = init(os.O_NONBLOCK | os.O_CLOEXEC)
        if fd < 0:  # EMFILE: the user's inotify instances are used up
            return None
        if add(fd, os.fsencode(path), IN_MODIFY) < 0:
            os.close(fd)
            return None
        return cls(fd)

    def wait(self, timeout: float) -> bool:
        """Block until the file is written (then forget the events read), `wake` is
        called, or `timeout` seconds pass; whether the file was written."""
        with self._lock:
            if self._fd < 0:
                return False
            ready = {fd for fd, _ in self._poll.poll(max(0, int(timeout * 1000)))}
            _drain(self._woken)
            return self._fd in ready and _drain(self._fd)

    def wake(self) -> None:
        """Make a `wait` in progress (or the next one) return now."""
        os.write(self._waker, b"\0")

    def close(self) -> None:
        self.wake()
        with self._lock:
            if self._fd >= 0:
                for fd in (self._fd, self._woken, self._waker):
                    os.close(fd)
                self._fd = -1


def _drain(fd: int) -> bool:
    """Read what is waiting on non-blocking `fd`; True."""
    while True:
        try:
            if not os.read(fd, 65536):
                return True
        except BlockingIOError:
            return True

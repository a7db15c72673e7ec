"""When this process stops, its executors hand their runs over (rule 7 of `Executor`).

The ways a process stops, and what each is told ("why", as runs and chats show it):

1. A Jupyter kernel asked to shut down or restart (the front end's Kernel menu,
   `jupyter_client`'s `shutdown_kernel`/`restart_kernel`), or `exit()` in a cell:
   ipykernel sets its shell's `exit_now` before it stops its loops; rxnb observes
   that trait. The hand-over happens while the kernel still answers, before the
   interpreter starts to exit (when libraries' thread pools are already shut down and
   a generation still streaming would fail with "cannot schedule new futures after
   shutdown"). Jupyter kills a kernel that has not exited 5 s after the request.
2. The interpreter exiting (a script's end, `sys.exit`): a hook that runs before
   Python joins threads at exit, ahead of `concurrent.futures`' own.
3. SIGTERM, where no handler is set: the hand-over, on a thread of its own (the
   handler must not write to the store from inside whatever transaction the main
   thread was in when the signal came), then the signal's default action (the process
   ends as it would have). A SIGTERM repeated meanwhile waits for the hand-over.
4. `store.close()` (`Executor.stop`'s default reason) and `rxnb worker` stopping
   (SIGTERM, Ctrl-C) call `Executor.stop` themselves.

A kill -9 (or OOM, or a machine lost) leaves no time for any of this: the runs are
recovered as orphans, a crash (`recover_orphans`).

The shell is found through `sys.modules` only: this layer never imports IPython.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import sys
import threading
import weakref
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rxnb.execution._executor import Executor

log = logging.getLogger("rxnb.runs")

RESTARTED = "the kernel restarted"
SHUT_DOWN = "the kernel shut down"
EXITED_KERNEL = "the kernel exited (exit() in a cell)"
EXITED = "its process exited"
TERMINATED = "its process was stopped (SIGTERM)"

_stopping: list[str] = []
"""Why this process is stopping, once it is (see `process_stopping`)."""

_executors: weakref.WeakSet[Executor] = weakref.WeakSet()
_lock = threading.Lock()
_installed: set[str] = set()


def watch(executor: Executor) -> None:
    """Hand `executor`'s runs over when this process stops (installs the hooks once)."""
    with _lock:
        _executors.add(executor)
        if "exit" not in _installed:
            _installed.add("exit")
            _at_thread_exit(lambda: _shielded(EXITED))
    _watch_kernel()
    _watch_sigterm()


def process_stopping() -> str | None:
    """Why this process is stopping (rules 1-3: "the kernel restarted"), else None:
    views need not tell their readers that a store closed as the process ends."""
    return _stopping[0] if _stopping else None


def stop_all(why: str) -> None:
    """Stop every executor of this process, handing its runs over because of `why`.
    The executors stop at once, and share one grace period for their actions."""
    if not _stopping:
        _stopping.append(why)
    executors = [e for e in list(_executors) if not e.stopped.is_set()]
    if len(executors) == 1:
        executors[0].stop(why)
        return
    threads = [
        threading.Thread(target=e.stop, args=(why,), name="rxnb-handover", daemon=True)
        for e in executors
    ]
    try:
        for thread in threads:
            thread.start()
    except RuntimeError:  # no new threads while the interpreter exits: one by one
        for e in executors:
            e.stop(why)
    for thread in threads:
        if thread.ident is not None:
            thread.join()


def _shielded(why: str) -> None:
    """`stop_all(why)` on a thread, waited for through Ctrl-C: a second Ctrl-C at exit
    must not cut the hand-over short (it lasts `RXNB_HANDOVER_SECONDS` at most)."""
    thread = threading.Thread(target=stop_all, args=(why,), name="rxnb-handover", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # no new threads now: here, then
        stop_all(why)
        return
    while thread.is_alive():
        with contextlib.suppress(KeyboardInterrupt):
            thread.join(0.1)


def _at_thread_exit(fn: Any) -> None:
    """Call `fn` when the interpreter exits, before it joins non-daemon threads (the
    run pool's, and litellm's, whose shutdown would break a generation still going).
    `threading._register_atexit` (CPython >= 3.9) runs its hooks in reverse order,
    so this one runs ahead of `concurrent.futures`', registered when it was imported."""
    register = getattr(threading, "_register_atexit", None)
    if register is None:  # pragma: no cover - not CPython: at least at atexit
        import atexit

        atexit.register(fn)
        return
    with contextlib.suppress(RuntimeError):  # the interpreter is already exiting
        register(fn)


def _watch_kernel() -> None:
    """Rule 1: observe the kernel shell's `exit_now` (once per shell)."""
    ipython = sys.modules.get("IPython")
    shell: Any = getattr(ipython, "get_ipython", lambda: None)() if ipython else None
    kernel = getattr(shell, "kernel", None)
    if shell is None or kernel is None or not hasattr(shell, "observe"):
        return
    with _lock:
        key = f"kernel:{id(shell)}"
        if key in _installed:
            return
        _installed.add(key)

    def exiting(change: dict[str, Any]) -> None:
        if change.get("new"):
            stop_all(_kernel_reason(kernel))

    shell.observe(exiting, names="exit_now")


def _kernel_reason(kernel: Any) -> str:
    """Restart or shutdown (the control channel's request), or exit() in a cell."""
    try:
        parent = kernel.get_parent("control") or {}
    except Exception:  # an ipykernel without per-channel parents
        parent = {}
    header = parent.get("header", {}) if isinstance(parent, dict) else {}
    if header.get("msg_type") == "shutdown_request":
        return RESTARTED if parent.get("content", {}).get("restart") else SHUT_DOWN
    return EXITED_KERNEL


def _watch_sigterm() -> None:
    """Rule 3, from the main thread (only it may set handlers), if SIGTERM has none."""
    if threading.current_thread() is not threading.main_thread():
        return
    with _lock:
        if "sigterm" in _installed:
            return
        try:
            if signal.getsignal(signal.SIGTERM) is not signal.SIG_DFL:
                return  # the program handles SIGTERM itself (rxnb worker does)
            signal.signal(signal.SIGTERM, _terminated)
        except (ValueError, OSError):  # not the main thread of the main interpreter
            return
        _installed.add("sigterm")


_handed_over = threading.Event()
_handing_over = threading.Event()


def _terminated(signum: int, frame: Any) -> None:
    """Rule 3. The first SIGTERM starts the hand-over on a thread and returns (the main
    thread finishes what it was doing, its transaction included); the thread, done,
    signals the main thread again, and that second call ends the process as SIGTERM's
    default does."""
    if _handed_over.is_set():
        signal.signal(signum, signal.SIG_DFL)
        signal.raise_signal(signum)
        return
    if _handing_over.is_set():
        return  # a repeated SIGTERM: the hand-over ends soon, then the process
    _handing_over.set()
    main = threading.main_thread().ident

    def hand_over() -> None:
        try:
            stop_all(TERMINATED)
        finally:
            _handed_over.set()
            if main is not None:
                with contextlib.suppress(OSError):  # the main thread has ended
                    signal.pthread_kill(main, signum)

    threading.Thread(target=hand_over, name="rxnb-handover").start()

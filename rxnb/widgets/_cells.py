"""Which notebook cell is running, and the widgets each cell made.

Front ends send a cell's id in the execute request's metadata (`cellId`). rxnb keys
what a cell creates by that id, so that when the cell runs again its earlier widgets
and subscriptions are disposed instead of piling up.
"""

from __future__ import annotations

import sys
import threading
import weakref
from dataclasses import dataclass
from typing import Any, Protocol


class Disposable(Protocol):
    def close(self) -> None: ...


@dataclass(frozen=True)
class CellRun:
    """One execution of one cell."""

    cell_id: str
    execution: str
    """The execute request's message id: different every time the cell runs."""


def current_cell() -> CellRun | None:
    """The cell whose execution is in progress, if rxnb runs in a kernel that says."""
    if "IPython" not in sys.modules:
        return None
    from IPython import get_ipython

    kernel: Any = getattr(get_ipython(), "kernel", None)
    if kernel is None:
        return None
    try:
        parent = kernel.get_parent("shell")
    except Exception:  # an older or unusual kernel
        return None
    if not isinstance(parent, dict):
        return None
    header = parent.get("header") or {}
    cell_id = (parent.get("metadata") or {}).get("cellId")
    if header.get("msg_type") != "execute_request" or not isinstance(cell_id, str):
        return None
    return CellRun(cell_id=cell_id, execution=str(header.get("msg_id")))


class CellOwners:
    """Remembers what each cell created, and disposes it when the cell runs again."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._owned: dict[str, list[tuple[str, weakref.ref[Disposable]]]] = {}

    def adopt(self, item: Disposable) -> CellRun | None:
        """Record `item` as made by the running cell (disposing that cell's older items)."""
        run = current_cell()
        if run is not None:
            self.started(run)
            with self._lock:
                self._owned.setdefault(run.cell_id, []).append((run.execution, weakref.ref(item)))
        return run

    def started(self, run: CellRun) -> None:
        """`run` began: close what earlier runs of the same cell made."""
        with self._lock:
            entries = self._owned.get(run.cell_id, [])
            stale = [ref for execution, ref in entries if execution != run.execution]
            self._owned[run.cell_id] = [e for e in entries if e[0] == run.execution]
        for ref in stale:
            item = ref()
            if item is not None:
                item.close()

    def owned(self, cell_id: str) -> list[Disposable]:
        with self._lock:
            refs = [ref for _, ref in self._owned.get(cell_id, [])]
        return [item for item in (ref() for ref in refs) if item is not None]


owners = CellOwners()

"""Helpers of the in-process workflow tests: counted step bodies, a run's journal, and
cell-like names."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

from sqlmodel import select

import rxnb as rx
from rxnb.workflows import JournalEntry

CALLS: Counter[str] = Counter()
"""How many times each step body ran (in this process); cleared before each test."""


def counted(name: str, value: Any = None) -> Any:
    CALLS[name] += 1
    return value if value is not None else name


def journal(store: rx.Store, run_id: str) -> list[JournalEntry]:
    return store.database.read(
        lambda db: list(
            db.exec(
                select(JournalEntry).where(JournalEntry.run_id == run_id).order_by(JournalEntry.seq)  # type: ignore[arg-type]
            ).all()
        )
    )[0]


def named(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a workflow function a module-level name, as a notebook cell's would have:
    defining it again under that name is re-running the cell."""

    def rename(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn.__qualname__ = fn.__name__ = name
        return fn

    return rename

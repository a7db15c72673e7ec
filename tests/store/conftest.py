"""Fixtures of the store tests: no RXNB_URL, no store left open, no table left defined."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
import sqlalchemy as sa
from sqlmodel import SQLModel

from rxnb.reactive import open_stores


@pytest.fixture(autouse=True)
def _close_leftover_stores(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every test starts without RXNB_URL; stores a failing test left open are closed."""
    monkeypatch.delenv("RXNB_URL", raising=False)
    before = {id(s) for s in open_stores()}
    yield
    for store in open_stores():
        if id(store) not in before:
            store.close()


@pytest.fixture
def forget_table() -> Iterator[Callable[[sa.Table], None]]:
    """Register a table class's table to be removed from SQLModel.metadata afterwards."""
    tables: list[sa.Table] = []
    yield tables.append
    for table in tables:
        SQLModel.metadata.remove(table)

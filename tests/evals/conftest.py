"""The evals tests run on both dialects: a fresh store per test on SQLite and on a
PostgreSQL schema of its own (rxnb.testing's `temporary_schema`)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from pgtools import PG_URL

import rxnb as rx
from rxnb.testing import temporary_schema


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[rx.Store]:
    if request.param == "sqlite":
        s = rx.open(f"sqlite:///{tmp_path / 'store.db'}")
        yield s
        s.close()
        return
    with temporary_schema(PG_URL) as url:
        s = rx.open(url)
        yield s
        s.close()

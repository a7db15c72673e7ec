"""Shared fixtures: a store URL and a fresh store per test, on each dialect.

Tests under the directories in `BOTH_DIALECTS` that take `url` (or `store`) run twice:
on a SQLite file and on PostgreSQL (`RXNB_TEST_PG_URL`, default the local server's
database `test`), each PostgreSQL test in a schema of its own that is dropped after
it. `@pytest.mark.sqlite_only` keeps a test about SQLite files on SQLite alone.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from pgtools import PG_URL, ensure_pgvector

import rxnb as rx
from rxnb.testing import temporary_schema

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

BOTH_DIALECTS = (
    "store",
    "reactive",
    "functions",
    "execution",
    "workflows",
    "agents",
    "flow",
    "pg",
    "data",
    "otel",
    "evals",
)
TESTS = Path(__file__).parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "sqlite_only: the test is about SQLite itself")
    config.addinivalue_line("markers", "postgres_only: the test is about PostgreSQL itself")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "dialect" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker
    folder = Path(metafunc.definition.path).relative_to(TESTS).parts[0]
    if marker("postgres_only"):
        dialects = ["postgres"]
    elif folder in BOTH_DIALECTS and not marker("sqlite_only"):
        dialects = ["sqlite", "postgres"]
    else:
        dialects = ["sqlite"]
    metafunc.parametrize("dialect", dialects, indirect=True)


@pytest.fixture
def dialect(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="session")
def pgvector_missing() -> str | None:
    """Why pgvector is not in the test database, or None (see `ensure_pgvector`)."""
    return ensure_pgvector()


@pytest.fixture
def pgvector(dialect: str, pgvector_missing: str | None) -> bool:
    """Whether this test's store keeps `rx.Vector` columns as pgvector columns. Where
    the server lacks pgvector, tests that need it are skipped, saying so, except in CI
    (RXNB_REQUIRE_PGVECTOR=1), where that fails them."""
    if dialect != "postgres":
        return False
    if pgvector_missing is not None:
        if os.environ.get("RXNB_REQUIRE_PGVECTOR") == "1":
            pytest.fail(pgvector_missing)
        pytest.skip(pgvector_missing)
    return True


@pytest.fixture
def url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[str]:
    if dialect == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.db'}"
        return
    request.getfixturevalue("pgvector_missing")  # installed before any schema exists
    with temporary_schema(PG_URL) as schema_url:  # rxnb's pytest plugin, as users have it
        yield schema_url


@pytest.fixture
def store(url: str) -> Iterator[rx.Store]:
    s = rx.open(url)
    yield s
    s.close()

"""Fixtures of the PostgreSQL tests: worker subprocesses, and a database of a test's own.

The kernel and worker helpers of tests/kernel, tests/execution and tests/widgets are
imported from here too (their basenames are unique across tests/).
"""

from __future__ import annotations

import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

TESTS = Path(__file__).resolve().parent.parent
for folder in ("kernel", "execution", "widgets"):
    if str(TESTS / folder) not in sys.path:
        sys.path.append(str(TESTS / folder))

from run_procs import Processes  # noqa: E402 (importable once the folders are on the path)


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.close()


@pytest.fixture
def own_database(url: str) -> Iterator[str]:
    """A store URL on a PostgreSQL database of this test's own (schema `scale`).

    For tests that terminate every backend of their database: on a database of their
    own, that touches no other test's connections (other schemas of `test` may be in
    use by tests running beside this one).
    """
    name = f"rxnb_scale_{uuid.uuid4().hex[:10]}"
    server = sa.make_url(url).difference_update_query(["options"])
    admin = sa.create_engine(server, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE DATABASE {name}")
    mine = sa.create_engine(
        server.set(database=name), isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
    )
    try:
        with mine.connect() as conn:
            conn.exec_driver_sql("CREATE SCHEMA scale")
        yield (
            server.set(database=name)
            .update_query_dict({"options": "-csearch_path=scale"})
            .render_as_string(hide_password=False)
        )
    finally:
        mine.dispose()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP DATABASE {name} WITH (FORCE)")
        admin.dispose()

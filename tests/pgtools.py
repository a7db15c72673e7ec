"""The PostgreSQL server the tests use (`RXNB_TEST_PG_URL`, default the local one)."""

from __future__ import annotations

import os

import sqlalchemy as sa

PG_URL = os.environ.get("RXNB_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def pg_admin() -> sa.Engine:
    """An engine on the PostgreSQL test database, for creating and dropping schemas."""
    return sa.create_engine(
        sa.make_url(PG_URL).set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )


def schema_url(schema: str) -> str:
    """PG_URL with `schema` first on the search path."""
    url = sa.make_url(PG_URL).update_query_dict({"options": f"-csearch_path={schema}"})
    return url.render_as_string(hide_password=False)


def terminate_backends(application: str = "rxnb%") -> int:
    """Terminate every connection to the test database whose application name is
    like `application` (rxnb names its pools `rxnb` and its feeds `rxnb-feed`), as a
    server restart would; how many there were."""
    admin = pg_admin()
    try:
        with admin.connect() as conn:
            killed = conn.exec_driver_sql(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                "AND application_name LIKE %s",
                (application,),
            ).scalar()
    finally:
        admin.dispose()
    return int(killed or 0)


def ensure_pgvector() -> str | None:
    """Install pgvector in the test database's `public` schema if the server has it
    (`scripts/install-pgvector` builds it), once, before any test's schema exists: a
    test that created it would install it in its own schema, dropped after it. Returns
    why it is missing, or None."""
    admin = pg_admin()
    try:
        with admin.connect() as conn:
            available = conn.exec_driver_sql(
                "SELECT 1 FROM pg_available_extensions WHERE name = 'vector'"
            ).first()
            if available is None:
                return (
                    "pgvector is not installed on the PostgreSQL server; run "
                    "scripts/install-pgvector (as root) to build it"
                )
            conn.exec_driver_sql("CREATE EXTENSION IF NOT EXISTS vector SCHEMA public")
        return None
    finally:
        admin.dispose()

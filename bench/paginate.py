"""Reactive pagination: `python bench/paginate.py [--quick] [--pg [URL]]`.

G1  one-off page query, page 1 vs page 100 of a 10,000-row table (keyset, 100 rows a
    page), beside OFFSET/LIMIT for page 100 as the baseline keyset avoids
G2  per-write cost, mutation call until every affected subscription has delivered
    (`store.wait_idle()`): an update in page 3 with 5 live pages of 100 rows, beside
    the same update with one live query of the whole table, and with nothing live

SQLite in a temporary file by default; `--pg` runs on PostgreSQL (default the local
database `test`) in a schema of its own, dropped afterwards. Prints figures; exits 0.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, select

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report

import rxnb as rx

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ROWS = 10_000
SIZE = 100


class BenchPageRow(SQLModel, table=True):
    __tablename__ = "bench_page_row"
    id: int | None = Field(default=None, primary_key=True)
    rank: int = Field(index=True)
    body: str = ""


def by_rank() -> Any:
    return select(BenchPageRow).order_by(BenchPageRow.rank)


@rx.query
def page(db: rx.Reader, cursor: str | None = None) -> rx.Page[BenchPageRow]:
    return db.paginate(by_rank(), cursor, size=SIZE)


@rx.query
def everything(db: rx.Reader) -> list[BenchPageRow]:
    return list(db.exec(by_rank()).all())


@rx.mutation
def fill(db: rx.Writer, n: int) -> None:
    rows = [{"rank": i, "body": f"row {i}"} for i in range(n)]
    sa.orm.Session.execute(db, sa.insert(BenchPageRow), rows)


@rx.mutation
def edit(db: rx.Writer, row_id: int, body: str) -> None:
    row = db.get(BenchPageRow, row_id)
    assert row is not None
    row.body = body
    db.add(row)


def median_ms(fn: Callable[[], object], repeat: int) -> float:
    fn()  # warm
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        fn()
        times.append(time.perf_counter() - began)
    return statistics.median(times) * 1000


def page_queries(store: rx.Store, repeat: int) -> list[list[str]]:
    cursors: list[str | None] = [None]
    while len(cursors) < ROWS // SIZE:
        cursors.append(page(cursor=cursors[-1]).cursor)
    statement = by_rank()

    def keyset(cursor: str | None) -> Callable[[], object]:
        return lambda: store.database.read(lambda db: db.paginate(statement, cursor, SIZE))

    first = median_ms(keyset(None), repeat)
    last = median_ms(keyset(cursors[-1]), repeat)
    offset_stmt = by_rank().order_by(BenchPageRow.id).offset(ROWS - SIZE).limit(SIZE)
    offset = median_ms(lambda: store.database.read(lambda db: db.exec(offset_stmt).all()), repeat)
    return [
        ["G1 page 1 (keyset)", f"{first:.2f} ms", "baseline"],
        ["G1 page 100 (keyset)", f"{last:.2f} ms", f"{last / first:.2f}x page 1"],
        ["G1 page 100 (OFFSET 9,900)", f"{offset:.2f} ms", f"{offset / first:.2f}x page 1"],
    ]


def write_cost(store: rx.Store, writes: int) -> list[list[str]]:
    start = page(cursor=None)
    for _ in range(40):  # the live pages sit in the middle of the table
        start = page(cursor=start.cursor)
    target = None

    def one_write(i: int) -> float:
        began = time.perf_counter()
        edit(row_id=target, body=f"edit {i}")
        assert store.wait_idle(60)
        return time.perf_counter() - began

    def measure() -> float:
        one_write(-1)
        return statistics.median(one_write(i) for i in range(writes)) * 1000

    cursor = start.cursor
    subs = []
    for _ in range(5):
        subs.append(store.subscribe(page, {"cursor": cursor}))
        cursor = subs[-1].result.cursor
    target = subs[2].result.items[SIZE // 2].id
    runs_before = [s.runs for s in subs]
    five = measure()
    reran = [s.runs - b for s, b in zip(subs, runs_before, strict=True)]
    for sub in subs:
        sub.close()
    full = store.subscribe(everything)
    whole = measure()
    full.close()
    assert store.wait_idle(10)
    bare = measure()
    return [
        ["G2 write, nothing live", f"{bare:.2f} ms", "baseline"],
        ["G2 write, 5 live pages", f"{five:.2f} ms", f"{five / bare:.2f}x; re-runs/page {reran}"],
        ["G2 write, 1 live full query", f"{whole:.2f} ms", f"{whole / bare:.2f}x"],
    ]


@contextmanager
def store_at(pg: str | None) -> Iterator[rx.Store]:
    if pg is None:
        with tempfile.TemporaryDirectory() as tmp:
            store = rx.open(f"sqlite:///{tmp}/bench.db")
            try:
                yield store
            finally:
                store.close()
        return
    schema = f"bench_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(pg, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    url = sa.make_url(pg).update_query_dict({"options": f"-csearch_path={schema}"})
    store = rx.open(url.render_as_string(hide_password=False))
    try:
        yield store
    finally:
        store.close()
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--pg", nargs="?", const=DEFAULT_PG, help="PostgreSQL URL")
    options = parser.parse_args()
    began = time.perf_counter()
    repeat, writes = (10, 5) if options.quick else (50, 30)
    with store_at(options.pg) as store:
        fill(n=ROWS)
        rows = page_queries(store, repeat) + write_cost(store, writes)
    dialect = "PostgreSQL" if options.pg else "SQLite"
    print(f"rxnb pagination on {dialect}: {ROWS:,} rows, {SIZE} rows a page, medians")
    report.print_table(["figure", "measured", "vs"], rows)
    print(
        f"\ntotal {time.perf_counter() - began:.1f} s; load average now "
        f"{report.load_average()} (other busy processes skew these figures)"
    )


if __name__ == "__main__":
    main()

"""rxnb on PostgreSQL: `python bench/pg.py [--quick] [--url URL]`.

F   one INSERT + COMMIT through psycopg alone (durable: the WAL is flushed)   baseline
P2  commit in another process -> subscriber callback                 p50 <= 10 ms
P6  per-step overhead of a 1,000-step workflow                        <= 1,000 µs
    beside DBOS's own 1,000-step workflow on the same server, in the same run
R3  trivial runs drained by 4 `rxnb worker` processes / by 1          >= 3x
R4  claim latency, due -> started_at, 4 workers, runs due 50 ms apart  (reported)

Every measurement runs in a schema of its own on the server at --url (default
RXNB_BENCH_PG_URL, else the local database `test`), dropped afterwards; DBOS's system
tables get a schema of their own too. R3 and R4 queue runs from this process with
RXNB_EXECUTE=0, so that only the worker subprocesses (8 threads each) claim them, and
this process closes its store while they drain, so that its change feed takes no CPU
from them. The R3 burst is queued once the workers have settled (`runs.Bench.settle`:
a new worker imports litellm, seconds of CPU, once it first runs nothing), so that it
measures the drain, not that import. Each phase has a deadline; one that passes it
is reported, not waited for. Exits 0 whether targets pass or fail (the table says
which); an exception exits nonzero.
"""

from __future__ import annotations

import argparse
import collections
import os
import statistics
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _report as report  # noqa: E402
import run as store_bench  # noqa: E402
import runs as runs_bench  # noqa: E402
import workflows as workflow_bench  # noqa: E402

import rxnb as rx  # noqa: E402

DEFAULT_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
TRIVIAL = "_runs_jobs.trivial"
POLL = 0.05
"""Seconds between two looks at the queue while workers drain it (each look is a query)."""


@dataclass(frozen=True)
class Config:
    floor_commits: int
    p2_writes: int
    p2_interval: float
    p6_steps: int
    p6_rounds: int
    r3_runs: int
    r3_deadline: float
    r4_runs: int
    r4_spacing: float


FULL = Config(300, 300, 0.02, 1000, 2, 2000, 180.0, 120, 0.05)
QUICK = Config(100, 60, 0.02, 200, 1, 300, 60.0, 40, 0.05)


Figure = report.Figure


class Postgres:
    """The server the figures are taken on: a fresh schema per measurement."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url)
        self.admin = sa.create_engine(
            self.url.set(drivername="postgresql+psycopg"),
            isolation_level="AUTOCOMMIT",
            poolclass=sa.pool.NullPool,
        )

    def describe(self) -> str:
        with self.admin.connect() as conn:
            show = {
                name: conn.exec_driver_sql(f"SHOW {name}").scalar()
                for name in ("server_version", "synchronous_commit", "max_connections")
            }
        return (
            f"PostgreSQL {show['server_version']} at {self.url.host}:{self.url.port or 5432} "
            f"(synchronous_commit={show['synchronous_commit']}, "
            f"max_connections={show['max_connections']})"
        )

    def libpq(self) -> str:
        """The server's URL without driver or options, as libpq and DBOS take it."""
        bare = self.url.set(drivername="postgresql", query={})
        return bare.render_as_string(hide_password=False)

    def store_url(self, schema: str) -> str:
        url = self.url.update_query_dict({"options": f"-csearch_path={schema}"})
        return url.render_as_string(hide_password=False)

    @contextmanager
    def schema(self, label: str) -> Iterator[str]:
        """A new schema's name, dropped (with everything in it) afterwards."""
        name = f"bench_{label}_{uuid.uuid4().hex[:8]}"
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {name}")
        try:
            yield name
        finally:
            for store in rx.reactive.open_stores():
                if f"search_path={name}" in store.url or name in store.url:
                    store.close()
            with self.admin.connect() as conn:
                conn.exec_driver_sql("SET lock_timeout = '10s'")
                conn.exec_driver_sql(f"DROP SCHEMA {name} CASCADE")

    def query(self, sql: str, **params: object) -> list[Any]:
        with self.admin.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def close(self) -> None:
        self.admin.dispose()


@contextmanager
def queue_only() -> Iterator[None]:
    """RXNB_EXECUTE=0 while a store opens: its executor queues runs but claims none
    (the worker subprocesses, started with the variable as it was, claim them all)."""
    before = os.environ.get("RXNB_EXECUTE")
    os.environ["RXNB_EXECUTE"] = "0"
    try:
        yield
    finally:
        if before is None:
            del os.environ["RXNB_EXECUTE"]
        else:
            os.environ["RXNB_EXECUTE"] = before


percentile = report.percentile


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def us(seconds: float) -> str:
    return f"{seconds * 1e6:,.0f} µs"


class Bench:
    def __init__(self, pg: Postgres) -> None:
        self.pg = pg
        self.figures: list[Figure] = []
        self.floor = 0.0
        """Median seconds of one durable INSERT + COMMIT through psycopg alone."""
        self.workers = runs_bench.Bench()  # the `rxnb worker` subprocesses of bench/runs.py

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        report.announce(figure)

    def cleanup(self) -> None:
        self.workers.cleanup()


# -- F: the server's own cost ----------------------------------------------------------------


def bench_floor(bench: Bench, cfg: Config) -> None:
    import psycopg

    n = cfg.floor_commits
    print(f"F: {n} single-row INSERT + COMMIT, and {n} SELECT 1, through psycopg alone")
    with bench.pg.schema("floor") as schema, psycopg.connect(bench.pg.libpq()) as conn:
        conn.execute(f"CREATE TABLE {schema}.floor (id serial PRIMARY KEY, v text)")
        conn.commit()
        commits: list[float] = []
        trips: list[float] = []
        for i in range(-20, n):
            start = time.perf_counter()
            conn.execute(f"INSERT INTO {schema}.floor (v) VALUES (%s)", (str(i),))
            conn.commit()
            middle = time.perf_counter()
            conn.execute("SELECT 1").fetchone()
            conn.commit()
            if i >= 0:
                commits.append(middle - start)
                trips.append(time.perf_counter() - middle)
    bench.floor = statistics.median(commits)
    print(
        f"  INSERT + COMMIT p50 {us(bench.floor)}  p99 {us(percentile(commits, 99))}; "
        f"round trip (SELECT 1 + COMMIT) p50 {us(statistics.median(trips))}"
    )
    bench.add(
        Figure(
            "F",
            "durable INSERT + COMMIT, psycopg alone",
            "-",
            f"p50 {us(bench.floor)}",
            "baseline",
            None,
        )
    )


# -- P2 ----------------------------------------------------------------------------------------


def bench_p2(bench: Bench, cfg: Config) -> None:
    n, interval = cfg.p2_writes, cfg.p2_interval
    print(f"P2: other-process commit -> callback, {n} writes {interval * 1000:.0f} ms apart")
    with bench.pg.schema("p2") as schema:
        latencies = store_bench.p2_latencies(bench.pg.store_url(schema), n, interval)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        f"  received {len(latencies)}/{n}  p50 {ms(p50)}  p99 {ms(p99)}  max {ms(max(latencies))}"
    )
    bench.add(
        Figure(
            "P2",
            "commit in other process -> callback",
            f"{len(latencies)}/{n} delivered; one bare commit {ms(bench.floor)}",
            f"p50 {ms(p50)} / p99 {ms(p99)}",
            "p50 <= 10 ms",
            p50 <= 0.010,
        )
    )


# -- P6 ----------------------------------------------------------------------------------------


def bench_p6(bench: Bench, cfg: Config) -> None:
    steps = cfg.p6_steps
    dbos = workflow_bench.dbos_installed()
    print(
        f"P6: per-step overhead, {steps}-step workflow, {cfg.p6_rounds} round(s)"
        + (", rxnb and DBOS interleaved" if dbos else "")
    )
    ours: list[float] = []
    theirs: list[float] = []
    for _ in range(cfg.p6_rounds):  # interleaved so drift affects both alike
        with bench.pg.schema("p6") as schema:
            ours.append(workflow_bench.rxnb_per_step(steps, bench.pg.store_url(schema)))
        print(f"  rxnb {us(ours[-1])}/step", flush=True)
        if dbos:
            with bench.pg.schema("p6_dbos") as schema:
                value = workflow_bench.dbos_per_step(steps, (bench.pg.libpq(), schema))
            if value is None:
                raise RuntimeError("P6: the DBOS run failed (its error is printed above)")
            theirs.append(value)
            print(f"  DBOS {us(theirs[-1])}/step", flush=True)
    best = min(ours)
    rounds = ", ".join(us(v) for v in ours)
    if theirs:
        baseline = f"DBOS {us(min(theirs))} ({best / min(theirs):.2f}x of it)"
    else:
        baseline = "DBOS not installed: pip install -e .[bench]"
        print(f"  {baseline}")
    bench.add(
        Figure(
            "P6",
            f"workflow step overhead, {steps} steps",
            f"{baseline}; one bare commit {us(bench.floor)}",
            f"{us(best)} (rounds {rounds})",
            "<= 1,000 µs",
            best <= 1000e-6,
        )
    )


# -- R3 and R4: worker processes ---------------------------------------------------------------


@dataclass(frozen=True)
class Drain:
    """How `n` runs queued at once fared: finished in time, rate, per-owner shares."""

    n: int
    done: int
    seconds: float
    waits: list[float]
    """Seconds from each run's due time to its claim (its wait in the queue)."""
    shares: list[int]

    @property
    def rate(self) -> float:
        return self.done / self.seconds if self.seconds > 0 else 0.0


def _await_runs(bench: Bench, schema: str, since: float, n: int, deadline: float) -> int:
    """How many runs created at or after `since` have succeeded, once all `n` have or
    `deadline` (monotonic) has passed."""
    sql = f"SELECT count(*) FROM {schema}.rx_runs WHERE created_at >= :since AND status = :s"
    while True:
        done = int(bench.pg.query(sql, since=since, s="succeeded")[0][0])
        if done >= n or time.monotonic() > deadline:
            return done
        time.sleep(POLL)  # pacing between looks at another process's progress


def _runs_since(bench: Bench, schema: str, since: float) -> list[tuple[float, float, float, str]]:
    """(due_at, started_at, finished_at, owner) of the runs created since `since` that
    succeeded."""
    rows = bench.pg.query(
        f"SELECT due_at, started_at, finished_at, owner FROM {schema}.rx_runs "
        "WHERE created_at >= :since AND status = 'succeeded'",
        since=since,
    )
    return [(float(due), float(start), float(end), str(owner)) for due, start, end, owner in rows]


def drain(bench: Bench, cfg: Config, workers: int, paced: bool) -> tuple[Drain, list[float]]:
    """`cfg.r3_runs` trivial runs queued at once, drained by `workers` processes; then
    (when `paced`) `cfg.r4_runs` runs due `cfg.r4_spacing` apart: their claim latencies."""
    with bench.pg.schema(f"r3_{workers}") as schema:
        url = bench.pg.store_url(schema)
        try:
            result = _burst(bench, cfg, schema, url, workers)
            latencies = _paced(bench, cfg, schema, url) if paced and result.done == result.n else []
        finally:
            bench.workers.stop_workers()  # before the schema is dropped under them
    return result, latencies


def _burst(bench: Bench, cfg: Config, schema: str, url: str, workers: int) -> Drain:
    n = cfg.r3_runs
    with queue_only():
        store = rx.open(url)
    try:
        bench.workers.start_workers(store, url, workers)
        warm = runs_bench.insert_runs(store, TRIVIAL, [time.time()] * (8 * workers), {"n": 0})
        for run_id in warm:
            rx.RunHandle(run_id, store).wait(runs_bench.WAIT)
        print(f"  {workers} worker(s) settled in {bench.workers.settle():.1f} s", flush=True)
        queued_at = time.time()
        runs_bench.insert_runs(store, TRIVIAL, [queued_at] * n, {"n": 1})
    finally:
        store.close()  # this process's change feed would take CPU from the workers
    done = _await_runs(bench, schema, queued_at, n, time.monotonic() + cfg.r3_deadline)
    rows = _runs_since(bench, schema, queued_at)
    first = min((r[1] for r in rows), default=queued_at)
    last = max((r[2] for r in rows), default=time.time())
    waits = [r[1] - r[0] for r in rows] or [float("inf")]
    owners = collections.Counter(r[3] for r in rows)
    result = Drain(n, done, last - first, waits, sorted(owners.values(), reverse=True))
    print(
        f"  {workers} worker(s): {done}/{n} in {result.seconds:.2f} s, {result.rate:.0f} runs/s "
        f"(runs per worker {result.shares}); queue wait p50 {ms(percentile(waits, 50))} "
        f"p99 {ms(percentile(waits, 99))}",
        flush=True,
    )
    return result


def _paced(bench: Bench, cfg: Config, schema: str, url: str) -> list[float]:
    """Seconds from due to claim of runs due one at a time, for idle workers."""
    with queue_only():
        store = rx.open(url)
    try:
        since = time.time()
        dues = [since + 0.3 + i * cfg.r4_spacing for i in range(cfg.r4_runs)]
        runs_bench.insert_runs(store, TRIVIAL, dues, {"n": 2})
    finally:
        store.close()
    deadline = time.monotonic() + 0.3 + cfg.r4_runs * cfg.r4_spacing + 60
    _await_runs(bench, schema, since, cfg.r4_runs, deadline)
    return [r[1] - r[0] for r in _runs_since(bench, schema, since)]


def bench_r3(bench: Bench, cfg: Config) -> None:
    n = cfg.r3_runs
    print(
        f"R3: {n} trivial runs queued at once, drained by 1 vs 4 `rxnb worker` processes "
        f"(deadline {cfg.r3_deadline:.0f} s each)"
    )
    one, _ = drain(bench, cfg, 1, paced=False)
    four, latencies = drain(bench, cfg, 4, paced=True)
    ratio = four.rate / one.rate if one.rate else 0.0
    complete = one.done == n and four.done == n
    late = "" if complete else f" (deadline passed: {one.done}/{n}, {four.done}/{n} done)"
    bench.add(
        Figure(
            "R3",
            "trivial runs/s, 4 workers / 1 worker",
            f"1 worker {one.rate:.0f} runs/s",
            f"{ratio:.2f}x (4 workers {four.rate:.0f} runs/s, shares {four.shares}){late}",
            ">= 3x",
            complete and ratio >= 3.0,
        )
    )
    for key, result in (("R3 wait 1", one), ("R3 wait 4", four)):
        bench.add(
            Figure(
                key,
                f"queue wait in that burst, {key[-1]} worker(s)",
                "-",
                f"p50 {ms(percentile(result.waits, 50))} / p99 {ms(percentile(result.waits, 99))}",
                "reported",
                None,
            )
        )
    if latencies:
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        print(f"R4: {len(latencies)} runs due {cfg.r4_spacing * 1000:.0f} ms apart, 4 workers")
        print(f"  due -> claimed (started_at) p50 {ms(p50)}  p99 {ms(p99)}")
        bench.add(
            Figure(
                "R4",
                f"claim latency, 4 workers, 1 run per {cfg.r4_spacing * 1000:.0f} ms",
                "-",
                f"p50 {ms(p50)} / p99 {ms(p99)} (max {ms(max(latencies))})",
                "reported",
                None,
            )
        )


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    parser.add_argument(
        "--url",
        default=os.environ.get("RXNB_BENCH_PG_URL", DEFAULT_URL),
        help=f"the PostgreSQL database to create schemas in (default {DEFAULT_URL})",
    )
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    pg = Postgres(args.url)
    bench = Bench(pg)
    report.print_header(args.quick)
    print(pg.describe())
    if not workflow_bench.dbos_installed():
        print("DBOS not installed: pip install -e .[bench]")
    started = time.perf_counter()
    try:
        for step in (bench_floor, bench_p2, bench_p6, bench_r3):
            step(bench, cfg)
    finally:
        bench.cleanup()
        pg.close()
    report.print_figures(bench.figures)
    report.print_outcome(bench.figures, args.quick, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

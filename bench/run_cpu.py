"""CPU per trivial run, drained in-process, on SQLite and PostgreSQL (issue 16).

    python bench/run_cpu.py [--runs N] [--url POSTGRES_URL] [--sqlite-only]
                            [--before SOURCE]

For each dialect, N trivial runs are queued with executing off, then drained by 1 and
by 4 in-process executors (4 stores opened on the same database in one process, each
with its own executor of 8 threads); it prints runs/s and CPU per run (the draining
process's `time.process_time`, everything included: claims, ends, change feeds,
heartbeats). Each drain runs in a subprocess of its own.

`--before SOURCE` drains the same way with the `rxnb` package of another checkout
(a directory holding `rxnb/`, e.g. `git archive <commit> rxnb | tar -x -C SOURCE`),
right after each drain of this one, and prints the CPU ratio: today's figures
measured in the same run on the same machine.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import _report as report  # noqa: E402
import runs as runs_bench  # noqa: E402
from _runs_jobs import trivial  # noqa: E402

import rxnb as rx  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
POLL = 0.05
"""Seconds between two looks at the queue while the executors drain it."""


def _left(engine: sa.Engine) -> int:
    with engine.connect() as conn:
        sql = "SELECT count(*) FROM rx_runs WHERE status IN ('queued', 'running')"
        return int(conn.execute(sa.text(sql)).scalar_one())


def drain(url: str, n: int, executors: int) -> tuple[float, float]:
    """(runs/s, ms of CPU per run) of `executors` stores draining `n` queued runs."""
    os.environ["RXNB_EXECUTE"] = "0"
    store = rx.open(url)
    runs_bench.insert_runs(store, trivial.name, [time.time()] * n, {"n": 0})
    store.close()
    check = sa.create_engine(url)
    os.environ["RXNB_EXECUTE"] = "1"
    cpu0, wall0 = time.process_time(), time.perf_counter()
    stores = [rx.open(url) for _ in range(executors)]
    deadline = time.monotonic() + 60 + n * 0.05
    while _left(check) and time.monotonic() < deadline:
        time.sleep(POLL)  # pacing between looks at the executors' progress
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    for each in stores:
        each.close()
    with check.begin() as conn:
        conn.execute(sa.text("DELETE FROM rx_runs"))
    check.dispose()
    return n / wall, 1000 * cpu / n


def drain_in_subprocess(url: str, n: int, executors: int, source: str) -> tuple[float, float]:
    """`drain` in a fresh process importing `rxnb` from `source`."""
    env = {**os.environ, "PYTHONPATH": source}
    out = subprocess.run(
        [sys.executable, __file__, "--one", url, str(n), str(executors)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    ).stdout.split()
    return float(out[-2]), float(out[-1])


def databases(args: argparse.Namespace) -> list[tuple[str, str, str, list[str]]]:
    """(name, URL for this checkout, URL for --before, PostgreSQL schemas to drop) per
    dialect: each side in a database of its own (an earlier rxnb refuses a store with
    columns it lacks)."""
    folder = tempfile.mkdtemp(prefix="rxnb-run-cpu-")
    found = [("SQLite", f"sqlite:///{folder}/now.db", f"sqlite:///{folder}/before.db", [])]
    if not args.sqlite_only:
        schemas = ["run_cpu_" + uuid.uuid4().hex[:8] for _ in range(2)]
        admin = sa.create_engine(args.url)
        with admin.begin() as conn:
            for schema in schemas:
                conn.execute(sa.text(f"CREATE SCHEMA {schema}"))
        admin.dispose()
        now, before = (f"{args.url}?options=-csearch_path%3D{schema}" for schema in schemas)
        found.append(("PostgreSQL", now, before, schemas))
    return found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=600)
    parser.add_argument("--url", default=os.environ.get("RXNB_BENCH_PG_URL", DEFAULT_PG))
    parser.add_argument("--sqlite-only", action="store_true")
    parser.add_argument("--before", help="a checkout of an earlier rxnb to compare with")
    parser.add_argument("--one", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        rate, cpu = drain(args.one[0], int(args.one[1]), int(args.one[2]))
        print(rate, cpu)
        return
    here = str(BENCH.parent)
    print(f"{args.runs} trivial runs per drain; load average {report.load_average()}")
    rows = []
    for name, url, before_url, schemas in databases(args):
        try:
            for executors in (1, 4):
                rate, cpu = drain_in_subprocess(url, args.runs, executors, here)
                row = [name, str(executors), f"{rate:.0f}", f"{cpu:.2f} ms"]
                if args.before:
                    b_rate, b_cpu = drain_in_subprocess(
                        before_url, args.runs, executors, args.before
                    )
                    row += [f"{b_rate:.0f}", f"{b_cpu:.2f} ms", f"{b_cpu / cpu:.2f}x"]
                rows.append(row)
        finally:
            if schemas:
                admin = sa.create_engine(args.url)
                with admin.begin() as conn:
                    for schema in schemas:
                        conn.execute(sa.text(f"DROP SCHEMA {schema} CASCADE"))
                admin.dispose()
    headers = ["database", "executors", "runs/s", "CPU/run"]
    if args.before:
        headers += ["runs/s before", "CPU/run before", "CPU before/now"]
    report.print_table(headers, rows)


if __name__ == "__main__":
    main()

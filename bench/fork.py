"""Forks: `python bench/fork.py [--quick] [--pg URL]`

F1  rx.fork of a finished 1,000-step workflow from step k -> the first new step's body
    running (the fork copies steps 0..k-1, is claimed, replays them and runs step k),
    for k = 1, 500, 999, on SQLite (WAL) and, when reachable, PostgreSQL
                                                                  target <= 0.5 s

Each figure is the worst of a few forks from that step. Exits 0 whether targets pass
or fail (the table says which).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report

import rxnb as rx

PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"

FIRST: dict[str, float] = {}
"""tag -> time.perf_counter() when a step body first ran for that tag."""
SEEN = threading.Condition()


def step(i: int, tag: str) -> int:
    if tag not in FIRST:
        with SEEN:
            FIRST.setdefault(tag, time.perf_counter())
            SEEN.notify_all()
    return i + 1


@rx.workflow
def many_steps(ctx: rx.WorkflowContext, n: int, tag: str) -> int:
    total = 0
    for i in range(n):
        total += ctx.step(step, i, tag)
    return total


def first_step_after(tag: str, timeout: float = 30.0) -> float:
    with SEEN:
        if not SEEN.wait_for(lambda: tag in FIRST, timeout):
            raise TimeoutError(f"no step of {tag} ran within {timeout} s")
        return FIRST[tag]


def fork_latencies(
    name: str, url: str, steps: int, ks: list[int], trials: int
) -> dict[int, list[float]]:
    """Seconds from `rx.fork(...)` to the fork's first new step, per k (`name` makes
    the step tags of this store's runs its own)."""
    store = rx.open(url)
    try:
        many_steps.start(n=3, tag=f"{name}-warm").result(timeout=60)
        source = many_steps.start(n=steps, tag=f"{name}-source")
        source.result(timeout=600)
        rx.fork(source.id, from_step=1, tag=f"{name}-warm-fork").result(timeout=60)
        out: dict[int, list[float]] = {k: [] for k in ks}
        for trial in range(trials):
            for k in ks:
                tag = f"{name}-fork-{k}-{trial}"
                started = time.perf_counter()
                fork = rx.fork(source.id, from_step=k, tag=tag)
                out[k].append(first_step_after(tag) - started)
                fork.result(timeout=60)
        return out
    finally:
        store.close()


def postgres_url() -> str | None:
    """A fresh schema's URL on the local PostgreSQL, or None if it is not reachable."""
    import sqlalchemy as sa

    url = os.environ.get("RXNB_BENCH_PG_URL", PG_URL)
    try:
        engine = sa.create_engine(url)
        with engine.begin() as conn:
            conn.execute(sa.text("DROP SCHEMA IF EXISTS rxnb_bench_fork CASCADE"))
            conn.execute(sa.text("CREATE SCHEMA rxnb_bench_fork"))
        engine.dispose()
    except Exception as exc:  # any failure means: no PostgreSQL here
        print(f"PostgreSQL not reachable ({type(exc).__name__}); SQLite only", flush=True)
        return None
    return f"{url}?options=-csearch_path%3Drxnb_bench_fork"


def drop_schema() -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(os.environ.get("RXNB_BENCH_PG_URL", PG_URL))
    with engine.begin() as conn:
        conn.execute(sa.text("DROP SCHEMA IF EXISTS rxnb_bench_fork CASCADE"))
    engine.dispose()


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    started = time.perf_counter()
    report.print_header(quick)
    steps = 300 if quick else 1000
    ks = [1, steps // 2, steps - 1]
    trials = 2 if quick else 5
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-fork-"))
    dialects = [("SQLite", f"sqlite:///{tmp / 'b.db'}")]
    pg = postgres_url()
    if pg is not None:
        dialects.append(("PostgreSQL", pg))
    figures: list[report.Measured] = []
    try:
        for name, url in dialects:
            for k, lags in fork_latencies(name, url, steps, ks, trials).items():
                worst, p50 = max(lags), report.percentile(lags, 50)
                figure = report.Measured(
                    key=f"F1 {name} k={k}",
                    name=f"fork from step {k} of {steps} -> first new step ({trials} forks, max)",
                    measured=f"{worst * 1000:.0f} ms (p50 {p50 * 1000:.0f} ms)",
                    target="<= 500 ms",
                    passed=worst <= 0.5,
                )
                report.announce(figure)
                figures.append(figure)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        if pg is not None:
            drop_schema()
    report.print_measured(figures)
    report.print_outcome(figures, quick, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

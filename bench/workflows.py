"""P6 and P8: durable workflows. `python bench/workflows.py [--quick]`

P6  per-step overhead of a 1,000-step workflow on SQLite (WAL)     target <= 250 µs
    and, when `dbos` is installed, <= 0.25x DBOS's in this same run (DBOS's own
    1,000-step workflow on a SQLite system database, WAL as rxnb uses it)
P8  kill -9 of a process mid-workflow -> first resumed step, from the moment the new
    process has opened the store                                  target <= 0.5 s

A step's overhead is (workflow wall time - the same calls in a plain loop) / steps.
Exits 0 whether targets pass or fail (the table says which).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
sys.path.insert(0, str(Path(__file__).resolve().parent))

import _report as report

import rxnb as rx


def step(i: int) -> int:
    return i + 1


@rx.workflow
def many_steps(ctx: rx.WorkflowContext, n: int) -> int:
    total = 0
    for i in range(n):
        total += ctx.step(step, i)
    return total


def rxnb_per_step(steps: int, url: str | None = None) -> float:
    """Seconds of overhead per journaled step, on the store at `url` (default: a new
    SQLite file)."""
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-wf-"))
    store = rx.open(url or f"sqlite:///{tmp / 'b.db'}")
    try:
        many_steps.start(n=3).result(timeout=30)  # warm up: tables, executor, code paths
        started = time.perf_counter()
        run = many_steps.start(n=steps)
        run.result(timeout=600)
        wall = time.perf_counter() - started
        base = time.perf_counter()
        for i in range(steps):
            step(i)
        plain = time.perf_counter() - base
        return (wall - plain) / steps
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


DBOS_SCRIPT = textwrap.dedent(
    """
    import sys, time, sqlite3
    from dbos import DBOS, DBOSConfig
    url = sys.argv[1]
    n = int(sys.argv[2])
    config: DBOSConfig = {"name": "bench", "system_database_url": url}
    if len(sys.argv) > 3:  # PostgreSQL: the system tables in this schema
        config["dbos_system_schema"] = sys.argv[3]
    DBOS(config=config)

    @DBOS.step()
    def step(i: int) -> int:
        return i + 1

    @DBOS.workflow()
    def many(n: int) -> int:
        return sum(step(i) for i in range(n))

    DBOS.launch()
    if url.startswith("sqlite:///"):
        con = sqlite3.connect(url.removeprefix("sqlite:///"))
        con.execute("PRAGMA journal_mode=WAL")
        con.close()
    many(3)
    started = time.perf_counter()
    many(n)
    wall = time.perf_counter() - started
    print(wall / n)
    DBOS.destroy()
    """
)


def dbos_installed() -> bool:
    try:
        import dbos  # noqa: F401
    except ImportError:
        return False
    return True


def dbos_per_step(steps: int, postgres: tuple[str, str] | None = None) -> float | None:
    """DBOS's seconds per step in a fresh process (None when dbos is not installed), on
    a new SQLite system database, or on `postgres` = (libpq URL, schema) when given."""
    if not dbos_installed():
        return None
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-dbos-"))
    database = list(postgres) if postgres else [f"sqlite:///{tmp / 'dbos.sqlite'}"]
    try:
        out = subprocess.run(
            [sys.executable, "-c", DBOS_SCRIPT, database[0], str(steps), *database[1:]],
            capture_output=True,
            text=True,
            timeout=600,
            cwd=tmp,
            check=False,
        )
        if out.returncode != 0:
            print("DBOS run failed:", out.stderr[-2000:], file=sys.stderr)
            return None
        return float(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _slow(i: int, marks: str) -> int:
    with open(marks, "a") as f:
        f.write(f"{i} {time.time()}\n")
    time.sleep(0.02)
    return i


@rx.workflow
def slow_steps(ctx: rx.WorkflowContext, n: int, marks: str) -> int:
    for i in range(n):
        ctx.step(_slow, i, marks)
    return n


def recovery_latency(trials: int) -> list[float]:
    """Seconds from the new process's rx.open() returning to its first resumed step."""
    here = str(Path(__file__).resolve().parent)
    script = textwrap.dedent(
        """
        import sys, time
        sys.path.insert(0, sys.argv[2])
        import rxnb as rx
        from workflows import slow_steps
        store = rx.open(sys.argv[1])
        print("opened", time.time(), flush=True)
        if sys.argv[3] == "start":
            print("run", slow_steps.start(n=1000, marks=sys.argv[4]).id, flush=True)
        time.sleep(600)
        """
    )
    out: list[float] = []
    for _ in range(trials):
        tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-p8-"))
        url, marks = f"sqlite:///{tmp / 'p8.db'}", str(tmp / "marks.txt")
        try:
            first = subprocess.Popen(
                [sys.executable, "-c", script, url, here, "start", marks],
                stdout=subprocess.PIPE,
                text=True,
            )
            while not Path(marks).exists() or len(Path(marks).read_text().splitlines()) < 5:
                time.sleep(0.01)
            os.kill(first.pid, signal.SIGKILL)
            first.wait()
            done = len(Path(marks).read_text().splitlines())
            second = subprocess.Popen(
                [sys.executable, "-c", script, url, here, "resume", marks],
                stdout=subprocess.PIPE,
                text=True,
            )
            assert second.stdout is not None
            opened = float(second.stdout.readline().split()[1])
            deadline = time.time() + 30
            while time.time() < deadline:
                lines = Path(marks).read_text().splitlines()
                if len(lines) > done:
                    out.append(float(lines[done].split()[1]) - opened)
                    break
                time.sleep(0.005)
            second.kill()
            second.wait()
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def main(argv: list[str] | None = None) -> int:
    quick = "--quick" in (argv if argv is not None else sys.argv[1:])
    steps = 300 if quick else 1000
    ours = rxnb_per_step(steps)
    theirs = dbos_per_step(steps)
    rows = [
        (
            "P6",
            f"per-step overhead, {steps} steps, SQLite WAL",
            f"{ours * 1e6:.0f} µs",
            "<= 250 µs",
            "PASS" if ours <= 250e-6 else "FAIL",
        )
    ]
    if theirs is None:
        rows.append(("P6 DBOS", "DBOS not installed: pip install -e .[bench]", "n/a", "", ""))
    else:
        ratio = ours / theirs
        rows.append(
            ("P6 DBOS", "DBOS per step, same machine and run", f"{theirs * 1e6:.0f} µs", "", "")
        )
        rows.append(
            (
                "P6 ratio",
                "rxnb / DBOS",
                f"{ratio:.2f}x",
                "<= 0.25x",
                "PASS" if ratio <= 0.25 else "FAIL",
            )
        )
    lags = recovery_latency(3 if quick else 5)
    worst = max(lags) if lags else float("inf")
    rows.append(
        (
            "P8",
            f"kill -9 -> first resumed step after open ({len(lags)} trials, max)",
            f"{worst * 1000:.0f} ms (p50 {report.percentile(lags, 50) * 1000:.0f} ms)",
            "<= 500 ms",
            "PASS" if worst <= 0.5 else "FAIL",
        )
    )
    report.print_table(("", "figure", "measured", "target", "result"), rows)
    print(f"load average {report.load_average()}")
    print(json.dumps({"p6_us": ours * 1e6, "dbos_us": None if theirs is None else theirs * 1e6}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""rxnb runs figures: `python bench/runs.py [--quick]`.

R1  run_after: due -> action began, this process's executor       p50 <= 10 ms
R2  run_after: due -> action began, in a worker process            p50 <= 10 ms
R3  trivial runs/s on SQLite, 1 worker process vs 4 worker processes (reported)

Runs in R1 are due at known times, spaced apart so that each is scheduled on its
own. R2 and R3 queue runs by writing `rx_runs` rows from this process, which does
not register their actions, so every run is claimed and executed by `rxnb worker`
subprocesses (8 threads each); R3's burst is queued once they have settled
(`Bench.settle`). Exits 0 whether targets pass or fail (the table
says which); an exception exits nonzero.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

from sqlmodel import func, select

import rxnb as rx
from rxnb.execution import Owner

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _report as report  # noqa: E402

WAIT = 60.0
"""Seconds any single wait may take before the bench gives up."""


@dataclass(frozen=True)
class Config:
    latency_runs: int
    latency_spacing: float
    throughput_runs: int


FULL = Config(300, 0.013, 3000)
QUICK = Config(60, 0.013, 400)


Figure = report.Measured


@rx.action
def stamp(ctx: rx.ActionContext) -> float:
    """The wall-clock time at which the action began."""
    return time.time()


percentile = report.percentile


class Bench:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-runs-"))
        self._n = 0
        self.figures: list[Figure] = []
        self.workers: list[subprocess.Popen[bytes]] = []

    def fresh_url(self, label: str) -> str:
        """A SQLite URL in a new, empty folder (rx.open shares stores by URL)."""
        self._n += 1
        folder = self.tmp / f"{self._n:02d}-{label}"
        folder.mkdir()
        return f"sqlite:///{folder / 'bench.db'}"

    def start_workers(self, store: rx.Store, url: str, count: int) -> None:
        """`count` `rxnb worker` processes for bench/_runs_jobs.py, registered."""
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(BENCH), *sys.path]),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        for i in range(count):
            log = open(self.tmp / f"worker-{self._n}-{i}.log", "wb")  # noqa: SIM115
            self.workers.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "rxnb",
                        "worker",
                        "--url",
                        url,
                        "--import",
                        "_runs_jobs",
                    ],
                    env=env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                )
            )
            log.close()

        def registered() -> int:
            owners = store.database.read(lambda db: db.exec(select(Owner)).all())[0]
            return sum("_runs_jobs.trivial" in json.loads(o.functions) for o in owners)

        poll(lambda: registered() >= count, "workers to register")

    def settle(self) -> float:
        """Wait until every worker process has finished starting up: a worker that
        runs nothing imports litellm (2-4 s of CPU, once), and a burst queued while
        it does measures that import, not the drain (with 4 new workers on 2 cores,
        most of the burst's CPU). Settled: each uses under 2% of a core over 0.5 s.
        Returns the seconds it took (0 where /proc does not tell CPU time)."""
        started = time.monotonic()
        before = _cpu_seconds([proc.pid for proc in self.workers])
        while before is not None:
            time.sleep(SETTLE_WINDOW)  # the window CPU use is measured over
            after = _cpu_seconds([proc.pid for proc in self.workers])
            if after is None or all(
                b - a < SETTLED * SETTLE_WINDOW for a, b in zip(before, after, strict=True)
            ):
                break
            if time.monotonic() - started > WAIT:
                raise TimeoutError(f"workers still busy after {WAIT:.0f} s with nothing queued")
            before = after
        return time.monotonic() - started

    def stop_workers(self) -> None:
        for proc in self.workers:
            proc.send_signal(signal.SIGTERM)
        for proc in self.workers:
            proc.wait(30)
        self.workers.clear()

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        report.announce(figure)

    def cleanup(self) -> None:
        if self.workers:
            for proc in self.workers:
                proc.kill()
                proc.wait(10)
        shutil.rmtree(self.tmp, ignore_errors=True)


SETTLE_WINDOW = 0.5
SETTLED = 0.02
"""A worker using less than this share of a core over `SETTLE_WINDOW` has settled."""


def _cpu_seconds(pids: list[int]) -> list[float] | None:
    """CPU seconds (user + system) each of `pids` has used; None without Linux /proc."""
    ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
    out = []
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
                fields = stat.read().rsplit(")", 1)[1].split()
        except OSError:
            return None
        out.append((int(fields[11]) + int(fields[12])) / ticks)
    return out


def poll(condition: object, what: str, timeout: float = WAIT) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(0.01)


def insert_runs(
    store: rx.Store, function: str, dues: list[float], args: dict[str, object]
) -> list[str]:
    """Queue runs of `function` (registered elsewhere) by writing their rows, as
    `start` writes them (`ties=0` where this rxnb has the column: nothing points at
    them)."""
    now = time.time()
    marks = {"ties": 0} if "ties" in rx.Run.model_fields else {}
    runs = [
        rx.Run(
            id=uuid.uuid4().hex,
            function=function,
            args=json.dumps(args),
            due_at=due,
            created_at=now,
            **marks,
        )
        for due in dues
    ]

    def write(db: rx.Writer) -> None:
        for run in runs:
            db.add(run)

    store.database.write(write)
    return [run.id for run in runs]


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f} ms"


def latency_figure(key: str, name: str, lateness: list[float], claimed: list[float]) -> Figure:
    p50, p99 = percentile(lateness, 50), percentile(lateness, 99)
    c50, c99 = percentile(claimed, 50), percentile(claimed, 99)
    print(f"  due -> claimed (started_at)  p50 {ms(c50)}  p99 {ms(c99)}  max {ms(max(claimed))}")
    print(f"  due -> action began          p50 {ms(p50)}  p99 {ms(p99)}  max {ms(max(lateness))}")
    early = [x for x in lateness if x < 0]
    if early:
        print(f"  !! {len(early)} run(s) began before they were due")
    return Figure(
        key, name, f"p50 {ms(p50)} / p99 {ms(p99)}", "p50 <= 10 ms", p50 <= 0.010 and not early
    )


# -- R1 ------------------------------------------------------------------------------------


def bench_r1(bench: Bench, cfg: Config) -> None:
    n = cfg.latency_runs
    print(f"R1: {n} run_after runs due {cfg.latency_spacing * 1000:.0f} ms apart, this process")
    store = rx.open(bench.fresh_url("r1"))
    try:
        stamp.start().result(WAIT)  # the pool's first thread, started before measuring
        first = 0.3
        handles = [rx.run_after(first + i * cfg.latency_spacing, stamp) for i in range(n)]
        lateness, claimed = [], []
        for handle in handles:
            began = handle.result(WAIT)
            row = handle.run()
            lateness.append(began - row.due_at)
            claimed.append((row.started_at or 0.0) - row.due_at)
    finally:
        store.close()
    bench.add(latency_figure("R1", "run_after due -> began, same process", lateness, claimed))


# -- R2 ------------------------------------------------------------------------------------


def bench_r2(bench: Bench, cfg: Config) -> None:
    n = cfg.latency_runs
    print(f"R2: {n} runs due {cfg.latency_spacing * 1000:.0f} ms apart, run by a worker process")
    url = bench.fresh_url("r2")
    store = rx.open(url)
    try:
        bench.start_workers(store, url, 1)
        [warm] = insert_runs(store, "_runs_jobs.stamp_remote", [time.time()], {})
        rx.RunHandle(warm, store).result(WAIT)
        start = time.time() + 0.3
        dues = [start + i * cfg.latency_spacing for i in range(n)]
        ids = insert_runs(store, "_runs_jobs.stamp_remote", dues, {})
        lateness, claimed = [], []
        for run_id in ids:
            handle = rx.RunHandle(run_id, store)
            began = handle.result(WAIT)
            row = handle.run()
            lateness.append(began - row.due_at)
            claimed.append((row.started_at or 0.0) - row.due_at)
        bench.stop_workers()
    finally:
        store.close()
    bench.add(latency_figure("R2", "run_after due -> began, worker process", lateness, claimed))


# -- R3 ------------------------------------------------------------------------------------


def throughput(bench: Bench, workers: int, n: int) -> float:
    url = bench.fresh_url(f"r3-{workers}")
    store = rx.open(url)
    try:
        bench.start_workers(store, url, workers)
        warm = insert_runs(store, "_runs_jobs.trivial", [time.time()] * (8 * workers), {"n": 0})
        for run_id in warm:
            rx.RunHandle(run_id, store).wait(WAIT)
        print(f"  {workers} worker(s) settled in {bench.settle():.1f} s")

        def finished() -> int:
            return int(
                store.database.read(
                    lambda db: db.exec(
                        select(func.count()).where(
                            rx.Run.function == "_runs_jobs.trivial",
                            rx.Run.status == "succeeded",
                        )
                    ).one()
                )[0]
            )

        queued_at = time.time()
        insert_runs(store, "_runs_jobs.trivial", [queued_at] * n, {"n": 1})
        poll(lambda: finished() >= n + len(warm), f"{n} runs on {workers} worker(s)")
        last = store.database.read(lambda db: db.exec(select(func.max(rx.Run.finished_at))).one())[
            0
        ]
        per_owner = store.database.read(
            lambda db: db.exec(
                select(rx.Run.owner, func.count())
                .where(rx.Run.created_at >= queued_at - 1)
                .group_by(rx.Run.owner)
            ).all()
        )[0]
        bench.stop_workers()
    finally:
        store.close()
    rate = n / (float(last) - queued_at)
    shares = sorted((count for _, count in per_owner), reverse=True)
    print(f"  {workers} worker(s): {rate:.0f} runs/s (runs per worker {shares})")
    return rate


def bench_r3(bench: Bench, cfg: Config) -> None:
    n = cfg.throughput_runs
    print(f"R3: {n} trivial runs queued at once, SQLite, 1 vs 4 worker processes")
    one = throughput(bench, 1, n)
    four = throughput(bench, 4, n)
    bench.add(
        Figure(
            "R3",
            "trivial runs/s, SQLite",
            f"1 worker {one:.0f}/s, 4 workers {four:.0f}/s ({four / one:.2f}x)",
            "reported",
            None,
        )
    )


def print_table(figures: list[Figure]) -> None:
    report.print_measured(figures)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    bench = Bench()
    report.print_header(args.quick)
    started = time.perf_counter()
    try:
        for step in (bench_r1, bench_r2, bench_r3):
            step(bench, cfg)
    finally:
        bench.cleanup()
    print_table(bench.figures)
    report.print_outcome(bench.figures, args.quick, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

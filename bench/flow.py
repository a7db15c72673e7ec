"""rxnb flow-control figures: `python bench/flow.py [--quick]` (SQLite).

F1  queue bookkeeping per claim: the claim transaction of one run on a queue (its
    limits read and counted) minus the claim of one run on no queue, same store,
    interleaved                                                      p50 <= 1 ms more
F2  an idle process with 1,000 runs queued behind a full queue (concurrency=1, its
    one run waiting on a gate): the process's CPU over 5 s, beside the same process
    with none waiting, on SQLite                                     <= 1 % of a core
F2p the same on PostgreSQL (--pg URL, default the local database `test`; skipped
    with --no-pg)                                                    <= 1 % of a core

Claims are timed directly (`claim` in a write transaction, as the executor does),
with RXNB_EXECUTE=0 in F1 so no executor takes the runs first. Exits 0 whether
targets pass or fail (the table says which).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import sqlalchemy as sa  # noqa: E402
from _report import Measured, percentile, print_header, print_measured  # noqa: E402
from pg import DEFAULT_URL, Postgres  # noqa: E402

import rxnb as rx  # noqa: E402
from rxnb.execution._transitions import claim  # noqa: E402


def f1(tmp: Path, n: int) -> Measured:
    os.environ["RXNB_EXECUTE"] = "0"  # this process queues runs, claims none by itself
    store = rx.open(f"sqlite:///{tmp / 'f1.db'}")
    try:
        wide = rx.Queue("bench-wide", concurrency=10**6, per_partition=10**6, rate=(10**6, 60.0))

        @rx.action
        def plain(ctx: rx.ActionContext, i: int) -> None: ...

        @rx.action(queue=wide)
        def queued(ctx: rx.ActionContext, i: int) -> None: ...

        for i in range(n):
            plain.start(i=i)
            queued.start(i=i, partition=f"p{i % 10}")
        times: dict[str, list[float]] = {"plain": [], "queued": []}
        for _ in range(n):
            for label, action in (("plain", plain), ("queued", queued)):
                started = time.perf_counter()
                got = store.database.write(
                    lambda db, a=action: claim(db, [a.name], "bench-owner", 1), claim=True
                )
                times[label].append(time.perf_counter() - started)
                assert len(got) == 1
    finally:
        store.close()
        del os.environ["RXNB_EXECUTE"]
    plain50 = percentile(times["plain"], 50) * 1000
    queued50 = percentile(times["queued"], 50) * 1000
    extra = queued50 - plain50
    print(f"  claim p50: no queue {plain50:.3f} ms, on a queue {queued50:.3f} ms")
    return Measured(
        "F1",
        "queue bookkeeping per claim",
        f"+{extra:.3f} ms (p50 {queued50:.3f} vs {plain50:.3f})",
        "<= 1 ms more",
        extra <= 1.0,
    )


def f2(url: str, key: str, waiting: int, seconds: float) -> Measured:
    store = rx.open(url)
    gate = threading.Event()
    try:
        one = rx.Queue("bench-one", concurrency=1)

        @rx.action(queue=one)
        def holds(ctx: rx.ActionContext, i: int) -> None:
            if i == 0:
                gate.wait(600)

        first = holds.start(i=0)
        deadline = time.monotonic() + 30
        while first.status != "running" and time.monotonic() < deadline:
            time.sleep(0.01)
        alone = idle_cpu(seconds)
        for i in range(1, waiting + 1):
            holds.start(i=i)
        time.sleep(1.0)  # the last start's wake-ups settle before measuring
        cpu = idle_cpu(seconds)
    finally:
        gate.set()
        store.close()
    print(f"  {key} idle: {alone:.2f} % of a core with no run waiting, {cpu:.2f} % with {waiting}")
    return Measured(
        key,
        f"idle CPU, {waiting} runs waiting ({sa.make_url(url).get_backend_name()})",
        f"{cpu:.2f} % ({alone:.2f} % with none)",
        "<= 1 %",
        cpu <= 1.0,
    )


def idle_cpu(seconds: float) -> float:
    """This process's CPU over `seconds` of doing nothing, in % of one core."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    time.sleep(seconds)
    return (time.process_time() - cpu0) / (time.perf_counter() - wall0) * 100


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer claims, shorter idle")
    parser.add_argument("--pg", default=os.environ.get("RXNB_BENCH_PG_URL", DEFAULT_URL))
    parser.add_argument("--no-pg", action="store_true", help="SQLite only")
    options = parser.parse_args(argv)
    quick = options.quick
    print_header(quick)
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-flow-"))
    idle = 2.0 if quick else 5.0
    try:
        figures = [
            f1(tmp, 100 if quick else 500),
            f2(f"sqlite:///{tmp / 'f2.db'}", "F2", 1000, idle),
        ]
        if not options.no_pg:
            server = Postgres(options.pg)
            with server.schema("flow") as schema:
                figures.append(f2(server.store_url(schema), "F2p", 1000, idle))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print_measured(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

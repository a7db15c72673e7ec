"""rxnb performance figures: `python bench/run.py [--quick]`.

P1  commit -> subscriber callback, same process      p50 <= 1 ms, p99 <= 5 ms
P1r the same p50 / the query called directly once     ratio <= 3
P2  commit in another process -> callback (SQLite)   p50 <= 25 ms
P3  mutation throughput vs plain SQLModel commit     ratio >= 0.5
P4  per-write cost, 10,000 vs 10 live subscriptions  ratio <= 1.5

Every database lives in its own fresh temporary folder. Exits 0 whether targets
pass or fail (the table says which); an exception exits nonzero.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, create_engine

import rxnb as rx

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import _report as report  # noqa: E402
from _models import PlainRow, counter, create_counters, insert_row, rows, set_counter  # noqa: E402

BUSY_TIMEOUT_MS = 10_000
WAIT = 10.0
"""Seconds any single wait on another thread may take before the bench gives up."""


@dataclass(frozen=True)
class Config:
    p1_iterations: int
    p1_warmup: int
    p2_writes: int
    p2_interval: float
    p3_ops: int
    p3_rounds: int
    p4_small: int
    p4_large: int
    p4_writes: int
    p4_rounds: int


FULL = Config(500, 50, 100, 0.02, 2000, 3, 10, 10_000, 500, 5)
QUICK = Config(100, 20, 30, 0.02, 300, 2, 10, 1_000, 100, 2)


Figure = report.Figure


class Bench:
    def __init__(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-"))
        self._n = 0
        self.figures: list[Figure] = []

    def fresh_url(self, label: str) -> str:
        """A SQLite URL in a new, empty folder (rx.open shares stores by URL)."""
        self._n += 1
        folder = self.tmp / f"{self._n:02d}-{label}"
        folder.mkdir()
        return f"sqlite:///{folder / 'bench.db'}"

    @contextmanager
    def store(self, label: str) -> Iterator[rx.Store]:
        store = rx.open(self.fresh_url(label))
        try:
            yield store
        finally:
            store.close()

    def add(self, figure: Figure) -> None:
        self.figures.append(figure)
        report.announce(figure)

    def cleanup(self) -> None:
        shutil.rmtree(self.tmp, ignore_errors=True)


percentile = report.percentile


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.3f} ms"


def _wait(event: threading.Event, what: str, timeout: float = WAIT) -> None:
    if not event.wait(timeout):
        raise TimeoutError(f"timed out after {timeout:.0f} s waiting for {what}")


def _idle(store: rx.Store) -> None:
    if not store.wait_idle(WAIT):
        raise TimeoutError(f"store {store.url} did not go idle within {WAIT:.0f} s")


# -- P1 -------------------------------------------------------------------------------


def bench_p1(bench: Bench, cfg: Config) -> None:
    print(f"P1: same-process commit -> callback, {cfg.p1_iterations} updates of one row")
    with bench.store("p1") as store:
        create_counters(thread_ids=["t1"])
        expected: list[str] = [""]
        fired_at: list[float] = [0.0]
        fired = threading.Event()

        def callback(result: list[Any]) -> None:
            if result and result[0].content == expected[0]:
                fired_at[0] = time.perf_counter()
                fired.set()

        sub = store.subscribe(counter, {"thread_id": "t1"}, callback)
        commit_to_cb: list[float] = []
        call_to_cb: list[float] = []
        gc.collect()
        for i in range(-cfg.p1_warmup, cfg.p1_iterations):
            content = f"v{i}"
            expected[0] = content
            fired.clear()
            before = time.perf_counter()
            set_counter(thread_id="t1", content=content)
            after = time.perf_counter()
            _wait(fired, f"P1 callback {i}")
            if i >= 0:
                commit_to_cb.append(max(0.0, fired_at[0] - after))
                call_to_cb.append(fired_at[0] - before)
        sub.close()
        direct: list[float] = []  # the same query, called once directly, as often
        for _ in range(cfg.p1_iterations):
            before = time.perf_counter()
            counter(thread_id="t1")
            direct.append(time.perf_counter() - before)

    p50, p99 = percentile(commit_to_cb, 50), percentile(commit_to_cb, 99)
    q50 = percentile(direct, 50)
    c50, c99 = percentile(call_to_cb, 50), percentile(call_to_cb, 99)
    call_cost = statistics.median(c - b for c, b in zip(call_to_cb, commit_to_cb, strict=True))
    print(f"  commit->callback p50 {ms(p50)}  p99 {ms(p99)}  max {ms(max(commit_to_cb))}")
    print(f"  call->callback   p50 {ms(c50)}  p99 {ms(c99)}  max {ms(max(call_to_cb))}")
    bench.add(
        Figure(
            "P1",
            "commit -> callback, same process",
            f"call->cb p50 {c50 * 1000:.2f} / p99 {c99 * 1000:.2f} ms "
            f"(call itself ~{call_cost * 1000:.2f} ms)",
            f"p50 {p50 * 1000:.2f} / p99 {p99 * 1000:.2f} ms",
            "p50 <= 1 ms, p99 <= 5 ms",
            p50 <= 0.001 and p99 <= 0.005,
        )
    )
    print(f"  the query called directly p50 {ms(q50)}: commit->callback {p50 / q50:.2f}x")
    bench.add(
        Figure(
            "P1r",
            "commit -> callback / the query run once",
            f"query called directly p50 {q50 * 1000:.2f} ms",
            f"{p50 / q50:.2f}x",
            "<= 3x",
            p50 <= 3 * q50,
        )
    )


# -- P2 -------------------------------------------------------------------------------


def p2_latencies(url: str, n: int, interval: float, warmup: int = 10) -> list[float]:
    """Seconds from just before each of `n` writes in a writer process (bench/_writer.py,
    `interval` apart after `warmup` unmeasured ones) to the callback of a subscription
    in this one, on the store at `url` (SQLite or PostgreSQL); one entry per delivery."""
    store = rx.open(url)
    try:
        create_counters(thread_ids=["p2"])
        latencies: list[float] = []
        done = threading.Event()

        def callback(result: list[Any]) -> None:
            now = time.time()
            if not result or not result[0].content:
                return  # the row as created, before the writer's first write
            seq = int(result[0].content)
            if seq >= 0:
                latencies.append(now - result[0].written_at)
            if seq == n - 1:
                done.set()

        sub = store.subscribe(counter, {"thread_id": "p2"}, callback)
        gc.collect()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(BENCH / "_writer.py"),
                url,
                "p2",
                str(n),
                str(interval),
                str(warmup),
            ],
        )
        try:
            deadline = time.monotonic() + (n + warmup) * interval + 60
            while not done.wait(0.1):  # stop early if the writer dies
                if proc.poll() is not None or time.monotonic() > deadline:
                    break
            finished = done.wait(1.0)  # the last delivery may trail the writer's exit
            rc = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        if rc != 0:
            raise RuntimeError(f"P2 writer exited with status {rc}")
        if not finished:
            raise TimeoutError("P2: the last write from the writer process never arrived")
        sub.close()
    finally:
        store.close()
    return latencies


def bench_p2(bench: Bench, cfg: Config) -> None:
    n, interval = cfg.p2_writes, cfg.p2_interval
    print(f"P2: other-process commit -> callback, {n} writes {interval * 1000:.0f} ms apart")
    latencies = p2_latencies(bench.fresh_url("p2"), n, interval)
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    print(
        f"  received {len(latencies)}/{n}  p50 {ms(p50)}  p99 {ms(p99)}  max {ms(max(latencies))}"
    )
    bench.add(
        Figure(
            "P2",
            "commit in other process -> callback",
            f"{len(latencies)}/{n} deliveries (absolute target)",
            f"p50 {p50 * 1000:.2f} / p99 {p99 * 1000:.2f} ms",
            "p50 <= 25 ms",
            p50 <= 0.025,
        )
    )


# -- P3 -------------------------------------------------------------------------------


def _plain_engine(url: str) -> sa.Engine:
    engine = create_engine(url, connect_args={"check_same_thread": False})

    @sa.event.listens_for(engine, "connect")
    def _pragmas(dbapi_conn: Any, _record: Any) -> None:
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.close()

    return engine


def _plain_rate(bench: Bench, ops: int) -> float:
    engine = _plain_engine(bench.fresh_url("p3-plain"))
    try:
        SQLModel.metadata.create_all(engine)

        def insert(i: int) -> None:
            with Session(engine) as s:
                s.add(PlainRow(thread_id="w", content=f"row {i}"))
                s.commit()

        for i in range(100):  # warmup: pool, statement cache
            insert(i)
        gc.collect()
        start = time.perf_counter()
        for i in range(ops):
            insert(i)
        return ops / (time.perf_counter() - start)
    finally:
        engine.dispose()


def _rxnb_rate(bench: Bench, ops: int, *, subscribed: bool) -> float:
    with bench.store("p3-rxnb-sub" if subscribed else "p3-rxnb") as store:
        sub = (
            store.subscribe(rows, {"thread_id": "unrelated"}, lambda _r: None)
            if subscribed
            else None
        )
        for i in range(100):
            insert_row(thread_id="w", content=f"row {i}")
        _idle(store)
        gc.collect()
        start = time.perf_counter()
        for i in range(ops):
            insert_row(thread_id="w", content=f"row {i}")
        _idle(store)  # include the reactor's handling of the writes
        rate = ops / (time.perf_counter() - start)
        if sub is not None:
            sub.close()
        return rate


def bench_p3(bench: Bench, cfg: Config) -> None:
    print(
        f"P3: mutation throughput, {cfg.p3_ops} single-row inserts, best of {cfg.p3_rounds} rounds"
    )
    plain: list[float] = []
    bare: list[float] = []
    with_sub: list[float] = []
    for _ in range(cfg.p3_rounds):  # interleaved so drift affects all three alike
        plain.append(_plain_rate(bench, cfg.p3_ops))
        bare.append(_rxnb_rate(bench, cfg.p3_ops, subscribed=False))
        with_sub.append(_rxnb_rate(bench, cfg.p3_ops, subscribed=True))
    base, rx0, rx1 = max(plain), max(bare), max(with_sub)
    print(f"  plain SQLModel  {base:8.0f} ops/s   rounds {_rates(plain)}")
    print(f"  rxnb, 0 subs    {rx0:8.0f} ops/s   rounds {_rates(bare)}   ratio {rx0 / base:.2f}")
    print(
        f"  rxnb, 1 sub     {rx1:8.0f} ops/s   rounds {_rates(with_sub)}   ratio {rx1 / base:.2f}"
    )
    bench.add(
        Figure(
            "P3",
            "mutation throughput / plain SQLModel",
            f"plain {base:.0f} ops/s",
            f"{rx0 / base:.2f}x ({rx0:.0f} ops/s)",
            ">= 0.5x",
            rx0 / base >= 0.5,
        )
    )
    bench.add(
        Figure(
            "P3b",
            "same, 1 live subscription elsewhere",
            f"plain {base:.0f} ops/s",
            f"{rx1 / base:.2f}x ({rx1:.0f} ops/s)",
            ">= 0.5x",
            rx1 / base >= 0.5,
        )
    )


def _rates(values: list[float]) -> str:
    return ", ".join(f"{v:.0f}" for v in values)


# -- P4 -------------------------------------------------------------------------------


class _P4Store:
    """A store with `n_subs` live subscriptions on distinct thread ids, for P4."""

    WRITTEN = tuple(f"t{i:05d}" for i in range(10))

    def __init__(self, bench: Bench, n_subs: int) -> None:
        self.n_subs = n_subs
        self.store = rx.open(bench.fresh_url(f"p4-{n_subs}"))
        self.store.call(create_counters, thread_ids=list(self.WRITTEN))
        self.delivered = 0
        start = time.perf_counter()
        self.subs = [
            self.store.subscribe(counter, {"thread_id": f"t{i:05d}"}, self._callback)
            for i in range(n_subs)
        ]
        self.setup = time.perf_counter() - start
        self.costs: list[float] = []
        self.write(50, "warm")

    def _callback(self, _result: object) -> None:
        self.delivered += 1

    def write(self, m: int, tag: str) -> float:
        """Seconds for `m` writes round-robin over the first 10 ids, plus reactions."""
        before = self.delivered
        start = time.perf_counter()
        for j in range(m):
            self.store.call(set_counter, thread_id=self.WRITTEN[j % 10], content=f"{tag} {j}")
        _idle(self.store)
        elapsed = time.perf_counter() - start
        if self.delivered == before:
            raise RuntimeError("P4: no deliveries; the writes did not reach subscribers")
        return elapsed

    def close(self) -> None:
        for sub in self.subs:
            sub.close()
        self.store.close()


def bench_p4(bench: Bench, cfg: Config) -> None:
    small, large = cfg.p4_small, cfg.p4_large
    print(
        f"P4: per-write cost, {cfg.p4_writes} writes + wait_idle, "
        f"{large} vs {small} subscriptions, best of {cfg.p4_rounds} interleaved rounds"
    )
    stores = [_P4Store(bench, small), _P4Store(bench, large)]
    try:
        for r in range(cfg.p4_rounds):  # interleaved so drift affects both alike
            for s in stores:
                gc.collect()
                s.costs.append(s.write(cfg.p4_writes, f"r{r}") / cfg.p4_writes)
    finally:
        for s in stores:
            s.close()
    for s in stores:
        print(
            f"  {s.n_subs:>6} subs: {ms(min(s.costs))}/write  rounds {_costs(s.costs)}  "
            f"(subscribing took {s.setup:.2f} s)"
        )
    cs, cl = min(stores[0].costs), min(stores[1].costs)
    ratio = cl / cs
    bench.add(
        Figure(
            "P4",
            f"per-write cost, {large:,} / {small} subs",
            f"{small} subs {cs * 1000:.3f} ms/write",
            f"{ratio:.2f}x ({large:,} subs {cl * 1000:.3f} ms/write)",
            "<= 1.5x",
            ratio <= 1.5,
        )
    )


def _costs(values: list[float]) -> str:
    return ", ".join(f"{v * 1000:.3f}" for v in values)


# -- main -------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a smoke run")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    steps: list[Callable[[Bench, Config], None]] = [bench_p1, bench_p2, bench_p3, bench_p4]
    bench = Bench()
    report.print_header(args.quick)
    started = time.perf_counter()
    try:
        for step in steps:
            step(bench, cfg)
    finally:
        bench.cleanup()
    report.print_figures(bench.figures)
    report.print_outcome(bench.figures, args.quick, started)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""PostgreSQL under load: four `rxnb worker` processes drain 400 queued runs, and every
run is executed exactly once, by one of them.

Executions are counted outside the store (`run_jobs.record` appends `run_id pid
attempt` to a file with one O_APPEND write per execution), so a run executed twice,
or by the wrong process, shows up there whatever its status says. Throughput and the
claim latency are printed, not judged: bench/pg.py is where those have targets.
"""

from __future__ import annotations

import collections
import json
import time
import uuid
from pathlib import Path

import pytest
from polling import until
from run_jobs import read_lines
from run_procs import Processes, owners_registering
from sqlmodel import select

import rxnb as rx

RUNS = 400
WORKERS = 4
RECORD = "run_jobs.record"

pytestmark = [pytest.mark.postgres_only, pytest.mark.slow]


def queue(store: rx.Store, count: int, path: str) -> list[str]:
    """`count` runs of `record`, queued in one transaction by writing their rows."""
    now = time.time()
    runs = [
        rx.Run(
            id=uuid.uuid4().hex,
            function=RECORD,
            args=json.dumps({"path": path, "pause": 0.005}),
            due_at=now,
            created_at=now,
        )
        for _ in range(count)
    ]

    def write(db: rx.Writer) -> None:
        for run in runs:
            db.add(run)

    store.database.write(write)
    return [run.id for run in runs]


def finished(store: rx.Store, ids: list[str]) -> list[rx.Run]:
    """The runs among `ids` that have ended, whatever their status."""
    rows = store.database.read(
        lambda db: db.exec(
            select(rx.Run).where(
                rx.Run.id.in_(ids),  # type: ignore[attr-defined]
                rx.Run.finished_at != None,  # noqa: E711
            )
        ).all()
    )[0]
    return list(rows)


@pytest.mark.timeout(120)
def test_4_workers_drain_400_runs_each_exactly_once(
    url: str, procs: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 4 threads a worker: 4 processes x (pools + feed) stay well inside the server's
    # max_connections, which tests running beside this one share.
    procs.env.update({"RXNB_WORKERS": "4", "RXNB_EXECUTE": "1"})
    workers = [procs.worker(url, "run_jobs") for _ in range(WORKERS)]
    # This process only queues: its executor (which knows `record` too, when the
    # runs tests were imported first) claims nothing.
    monkeypatch.setenv("RXNB_EXECUTE", "0")
    store = rx.open(url)
    try:
        until(lambda: len(owners_registering(store, RECORD)) >= WORKERS, timeout=30)
        effects = str(tmp_path / "effects")
        ids = queue(store, RUNS, effects)
        started = time.monotonic()
        until(lambda: len(finished(store, ids)) == RUNS, timeout=60, interval=0.05)
        drained = time.monotonic() - started
        runs = finished(store, ids)
    finally:
        store.close()

    assert collections.Counter(r.status for r in runs) == {"succeeded": RUNS}
    lines = [line.split() for line in read_lines(effects)]
    executed = collections.Counter(run_id for run_id, _, _ in lines)
    assert sorted(executed) == sorted(ids)
    assert set(executed.values()) == {1}, [r for r, n in executed.items() if n > 1]
    assert {attempt for _, _, attempt in lines} == {"1"}
    by_pid = collections.Counter(int(pid) for _, pid, _ in lines)
    assert set(by_pid) == {w.pid for w in workers}, f"runs per worker process: {dict(by_pid)}"
    by_owner = collections.Counter(r.owner for r in runs)
    assert len(by_owner) == WORKERS
    assert all(r.owner and f":{r.result}:" in r.owner for r in runs)  # the executor that ran it

    waits = sorted((r.started_at or 0.0) - r.due_at for r in runs)
    print(
        f"\n{RUNS} runs on {WORKERS} workers in {drained:.2f} s ({RUNS / drained:.0f} runs/s); "
        f"runs per worker {sorted(by_pid.values(), reverse=True)}; queue wait (due -> "
        f"claimed) p50 {waits[len(waits) // 2] * 1000:.0f} ms, "
        f"p99 {waits[int(len(waits) * 0.99) - 1] * 1000:.0f} ms"
    )

"""Crons across real processes: `rxnb worker --import cron_jobs` processes define a
1-second cron; one run per tick in all, never two at once, a tick while the last run
still runs is skipped and counted, and removing the cron stops it everywhere."""

from __future__ import annotations

import itertools
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.execution import Cron, Run

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "execution"))

from run_procs import Processes  # noqa: E402

TICK = "cron_jobs.tick"
WITNESS = "cron_jobs.witness"


@pytest.fixture
def cron_procs(tmp_path: Path) -> Iterator[Processes]:
    """Worker processes that import tests/flow/cron_jobs.py, logging to CRON_LOG."""
    processes = Processes(tmp_path)
    processes.env["PYTHONPATH"] = f"{HERE}:{processes.env['PYTHONPATH']}"
    processes.env["CRON_LOG"] = str(tmp_path / "cron.log")
    yield processes
    processes.close()


def start_workers(procs: Processes, url: str, n: int) -> None:
    workers = [procs.worker(url, "cron_jobs") for _ in range(n)]
    for worker in workers:
        until(
            lambda w=worker: "rxnb worker" in procs.output(w) or w.poll() is not None,
            timeout=30,
        )
        assert worker.poll() is None, procs.output(worker)


def log(procs: Processes) -> list[tuple[str, str, int, float]]:
    """(what, run id, pid, time) of each line the runs wrote."""
    path = Path(procs.env["CRON_LOG"])
    lines = path.read_text().splitlines() if path.exists() else []
    return [(w, run, int(pid), float(t)) for w, run, pid, t in (line.split() for line in lines)]


def spans(procs: Processes) -> list[tuple[float, float | None, str]]:
    """(start, end or None, run id) of each run of `tick`, by start."""
    entries = log(procs)
    ends = {run: t for what, run, _, t in entries if what == "end"}
    return sorted((t, ends.get(run), run) for what, run, _, t in entries if what == "start")


def assert_one_at_a_time(found: list[tuple[float, float | None, str]]) -> None:
    for (_, end, run), (start, _, later) in itertools.pairwise(found):
        assert end is not None and end <= start, f"run {later} started while {run} ran"


def tick_runs(store: rx.Store) -> list[Run]:
    return store.database.read(
        lambda db: db.exec(select(Run).where(Run.function == TICK).order_by(Run.created_at)).all()
    )[0]


def test_a_one_second_cron_in_two_processes_runs_once_per_tick_until_removed(
    url: str, store: rx.Store, cron_procs: Processes
) -> None:
    cron_procs.env["CRON_WITNESS"] = "1"
    cron_procs.env["CRON_PAUSE"] = "0.1"
    start_workers(cron_procs, url, 2)
    t0 = time.time()
    # Ten seconds of ticks: wait for the first run that starts after them.
    until(lambda: any(start >= t0 + 10 for start, _, _ in spans(cron_procs)), timeout=15)
    found = spans(cron_procs)
    window = [s for s in found if t0 <= s[0] < t0 + 10]
    assert 9 <= len(window) <= 11, found
    assert_one_at_a_time([s for s in found if s[1] is not None])
    assert len({run for _, _, run in found}) == len(found)  # no run started twice
    runs = tick_runs(store)
    assert len({r.id for r in runs}) == len(runs) >= len(found)  # each run ran once
    tick_seconds = [int(r.created_at) for r in runs]
    assert len(set(tick_seconds)) == len(tick_seconds), tick_seconds  # one run per tick
    [info] = [c for c in rx.crons() if c.name == TICK]
    # A tick whose run before had not ended (a loaded machine) is skipped, not run late.
    assert (info.schedule, info.defined_here) == ("every 1s", False)
    assert info.last_run_id in {r.id for r in tick_runs(store)}

    removed_at = time.time()
    assert rx.remove_cron(TICK) is True
    witnessed = sum(1 for what, *_ in log(cron_procs) if what == "witness")
    # Two more ticks of the other cron, fired by the same workers: neither fired `tick`.
    until(
        lambda: sum(1 for what, *_ in log(cron_procs) if what == "witness") >= witnessed + 2,
        timeout=10,
    )
    assert [r.id for r in tick_runs(store) if r.created_at > removed_at] == []
    assert store.database.read(lambda db: db.get(Cron, TICK))[0] is None  # not written again
    assert [c.name for c in rx.crons()] == [WITNESS]


def test_a_tick_while_the_last_run_still_runs_is_skipped_and_recorded(
    url: str, store: rx.Store, cron_procs: Processes
) -> None:
    cron_procs.env["CRON_PAUSE"] = "2.5"  # each run spans two more ticks
    start_workers(cron_procs, url, 2)
    until(lambda: len([s for s in spans(cron_procs) if s[1] is not None]) >= 2, timeout=15)
    found = spans(cron_procs)
    assert_one_at_a_time([s for s in found if s[1] is not None])
    first, second = found[0], found[1]
    assert second[0] - first[0] >= 2.5  # the ticks in between started nothing
    [info] = rx.crons()
    assert info.skipped >= 2
    assert info.last_skipped_time is not None
    assert len(tick_runs(store)) == len(found)

"""Fixtures of the flow-control tests: a store, and worker subprocesses."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "execution"))

import queue_jobs  # noqa: E402
from run_procs import Processes  # noqa: E402

import rxnb as rx  # noqa: E402


@pytest.fixture
def no_claims_here(monkeypatch: pytest.MonkeyPatch) -> None:
    """This process queues runs and leaves them to its workers (RXNB_EXECUTE=0): asked
    for before `store`, whose executor reads it."""
    monkeypatch.setenv("RXNB_EXECUTE", "0")


@pytest.fixture
def store(url: str) -> Iterator[rx.Store]:
    s = rx.open(url)
    yield s
    for gate in queue_jobs.GATES.values():
        gate.set()
    queue_jobs.GATES.clear()
    s.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    processes.env["PYTHONPATH"] = str(HERE) + ":" + processes.env["PYTHONPATH"]
    yield processes
    processes.close()

"""Fixtures of the runs tests: worker subprocesses, and gates opened after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import run_jobs
from run_procs import Processes

import rxnb as rx


def open_all_gates() -> None:
    for event in run_jobs.GATES.values():
        event.set()
    run_jobs.GATES.clear()
    run_jobs.NOTICED.clear()


@pytest.fixture(autouse=True)
def _open_gates() -> Iterator[None]:
    """No gated action outlives its test (its pool thread would hold pytest's exit)."""
    yield
    open_all_gates()


@pytest.fixture
def store(url: str) -> Iterator[rx.Store]:
    """The store of tests/conftest.py, whose gates open before it closes: closing
    waits up to 5 s for the runs in progress to end."""
    s = rx.open(url)
    yield s
    open_all_gates()
    s.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.close()

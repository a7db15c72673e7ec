"""Fixtures of the workflow tests: step counters cleared before each test, and its
subprocesses ended after it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flow_procs import Processes
from flow_tools import CALLS


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.close()


@pytest.fixture(autouse=True)
def _fresh_counts() -> None:
    CALLS.clear()

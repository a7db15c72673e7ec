"""Fixtures of the workflow tests: subprocesses ended after each test."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from flow_procs import Processes


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    processes = Processes(tmp_path)
    yield processes
    processes.close()

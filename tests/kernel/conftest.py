from __future__ import annotations

import gc
import warnings
from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_session import KernelSession


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelSession]:
    session = KernelSession(tmp_path)
    yield session
    session.close()
    # jupyter_client's blocking client leaves asyncio loops to the garbage collector.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ResourceWarning)
        gc.collect()

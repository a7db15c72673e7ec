from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from kernel_session import KernelSession


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelSession]:
    session = KernelSession(tmp_path)
    yield session
    session.close()

"""Widgets without a kernel: ipywidgets' real code with a comm that records messages."""

from __future__ import annotations

from collections.abc import Iterator

import comm
import pytest
from recording_comm import Comms

import rxnb.widgets


@pytest.fixture
def comms(monkeypatch: pytest.MonkeyPatch) -> Iterator[Comms]:
    recorder = Comms()
    monkeypatch.setattr(comm, "create_comm", recorder.create)
    yield recorder
    for widget in rxnb.widgets.live_widgets():
        widget.close()

"""Fixtures of the agents tests: worker subprocesses (tests/execution's `Processes`),
and recorders of what agents send their model and what their searches embed."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))

from run_procs import Processes

import rxnb as rx
from rxnb.agents import _model_call, _retrieve, _thread_search


@pytest.fixture
def store(url: str) -> Iterator[rx.Store]:
    s = rx.open(url)
    yield s
    s.close()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.close()


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[list[dict[str, Any]]]:
    """The messages of each request the agents' model calls send litellm."""
    seen: list[list[dict[str, Any]]] = []
    real = _model_call.stream

    def recording(*args: Any, **kwargs: Any) -> Any:
        seen.append([dict(m) for m in kwargs["messages"]])
        return real(*args, **kwargs)

    monkeypatch.setattr(_model_call, "stream", recording)
    return seen


@pytest.fixture
def embeds(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """The texts of each embedding request the turns' searches made (of a table, of
    the thread)."""
    seen: list[list[str]] = []
    for module in (_retrieve, _thread_search):
        real = module.embed

        def counting(texts: list[str], real: Any = real, **kwargs: Any) -> list[list[float]]:
            seen.append(list(texts))
            return real(texts, **kwargs)

        monkeypatch.setattr(module, "embed", counting)
    return seen

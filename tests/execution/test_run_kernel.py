"""A real IPython kernel: a run outlives re-runs of its cells, and threads do not pile up."""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kernel"))
from kernel_session import KernelSession

SETUP = """
import threading, rxnb as rx
store = rx.open()
"""

DEFINE = """
@rx.action
def long_job(ctx: rx.ActionContext, steps: int) -> str:
    for i in range(steps):
        ctx.check_cancelled()
        ctx.progress(i + 1, steps, f"step {i + 1}")
        ctx.wait(0.1)
    finish_line.wait(60)  # the test lets it end once its cells have been re-run
    return "VERSION " + str(steps)

@rx.action
def double(ctx: rx.ActionContext, n: int) -> int:
    return 2 * n
"""


def define(version: str) -> str:
    """The defining cell; the version is in the function's code, not in a global."""
    return DEFINE.replace("VERSION", version)


THREADS = "sorted(t.name for t in threading.enumerate() if t.name.startswith('rxnb-'))"


@pytest.fixture
def kernel(tmp_path: Path) -> Iterator[KernelSession]:
    session = KernelSession(tmp_path)
    yield session
    session.close()


def rxnb_threads(kernel: KernelSession) -> list[str]:
    names: list[str] = ast.literal_eval(kernel.eval(THREADS))
    return names


def test_run_survives_cell_reruns_without_leaking_threads(kernel: KernelSession) -> None:
    kernel.run(SETUP, cell_id="setup")
    kernel.run(define("v1"), cell_id="define")
    kernel.run(
        "finish_line = threading.Event()\nhandle = long_job.start(steps=30)", cell_id="start"
    )
    kernel.run("assert double.start(n=1).result(10) == 2", cell_id="other")
    before = rxnb_threads(kernel)
    assert "rxnb-scheduler" in before and "rxnb-heartbeat" in before

    counts = []
    for i in range(5):
        kernel.run(define("v1"), cell_id="define")
        kernel.run(SETUP, cell_id="setup")
        kernel.run(f"assert double.start(n={i}).result(10) == {2 * i}", cell_id="other")
        kernel.run("print(handle.status, handle.run().progress)", cell_id="peek")
        counts.append(len(rxnb_threads(kernel)))
    assert kernel.eval("handle.status") == "'running'", "the re-runs happened mid-run"
    assert counts == [len(before)] * 5, (before, counts, rxnb_threads(kernel))

    # Semantics 9: a redefinition runs for new runs; the running one keeps its code.
    kernel.run(define("v2"), cell_id="define")
    assert kernel.eval("handle.status") == "'running'"
    kernel.run("finish_line.set()", cell_id="release")
    assert kernel.eval("handle.result(timeout=20)") == "'v1 30'"
    assert kernel.eval("long_job.start(steps=1).result(10)") == "'v2 1'"
    assert kernel.eval("__import__('json').loads(handle.run().progress)['done']") == "30"
    assert len(rxnb_threads(kernel)) == len(before)

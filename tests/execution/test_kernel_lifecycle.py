"""The lifecycle matrix: nothing a kernel was generating is lost when it stops.

The chat app of `examples/chat_app.py` runs in a real kernel, which streams three
replies at once (its executor owns every run). Then the kernel stops, one of five
ways: {graceful restart, hard restart (kill -9), shutdown, `exit()` in a cell,
`store.close()`}, and either an `rxnb worker` takes the replies up, or (no worker)
the cells are run again in a new kernel (after `store.close()`, in the same one).
Every reply must end `done` with its whole text, no run `failed`, each reply started
over in its own row (its earlier attempt's generation `interrupted`, saying why), and
the run's attempt not spent. The time from the event to each reply streaming again is
printed (bench/lifecycle.py measures it over many runs).
"""

from __future__ import annotations

import ast
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from polling import until
from run_procs import Processes

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "kernel"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from kernel_session import KernelSession

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DELAY = "0.04"
"""Seconds per token of the offline model: a reply takes ~5 s, long enough to be
streaming when the kernel stops, short enough to keep the matrix quick."""
REPLIES = 3

WHY = {
    "restart": "the kernel restarted",
    "kill": "its process died",
    "shutdown": "the kernel shut down",
    "exit": "the kernel exited (exit() in a cell)",
    "close": "its store was closed",
}


def notebook(url: str) -> str:
    """The cells of a chat notebook that a user runs (again)."""
    return f"""
import os, sys
os.environ["RXNB_CHAT_DELAY"] = {DELAY!r}
sys.path.insert(0, {str(EXAMPLES)!r})
import rxnb as rx
from chat_app import messages, send, offline_answer
store = rx.open({url!r})
"""


class Watcher:
    """What the store says, read with plain SQL from the test process (which defines
    no action, so that it never runs one)."""

    def __init__(self, url: str) -> None:
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)

    def rows(self, sql: str) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql)).all())

    def replies(self) -> list[Any]:
        return self.rows(
            "SELECT id, status, content FROM chat_message WHERE role = 'assistant' ORDER BY id"
        )

    def runs(self) -> list[Any]:
        return self.rows(
            "SELECT id, status, attempt, max_attempts, owner, interrupted, crashes, error "
            "FROM rx_runs ORDER BY created_at"
        )

    def generations(self) -> list[Any]:
        return self.rows(
            "SELECT row_key, attempt, status, error, started_at FROM rx_generations ORDER BY id"
        )


@pytest.fixture
def watcher(url: str) -> Iterator[Watcher]:
    w = Watcher(url)
    yield w
    w.engine.dispose()


def stop_kernel(kernel: KernelSession, event: str) -> None:
    """Stop the kernel's work `event`'s way; the kernel is not restarted unless the
    event is a restart."""
    manager = kernel.manager
    if event == "restart":  # JupyterLab's Kernel > Restart: a shutdown request, then a new one
        manager.restart_kernel(now=False)
    elif event == "kill":  # a hard restart: the old kernel is killed at once
        manager.restart_kernel(now=True)
    elif event == "shutdown":
        manager.shutdown_kernel(now=False)
    elif event == "exit":
        kernel.execute("exit()")
        until(lambda: not manager.is_alive(), timeout=20, interval=0.02)
    else:
        kernel.run("store.close()")


@pytest.mark.slow
# Its deadlines (two kernels importing litellm on a loaded machine) add up past 120 s.
@pytest.mark.timeout(300)
@pytest.mark.parametrize("worker", ["worker", "no-worker"])
@pytest.mark.parametrize("event", list(WHY))
def test_every_reply_ends_done_with_its_whole_text_whichever_way_the_kernel_stops(
    event: str,
    worker: str,
    url: str,
    tmp_path: Path,
    watcher: Watcher,
    capsys: pytest.CaptureFixture[str],
) -> None:
    procs = Processes(tmp_path)
    procs.env.update(
        RXNB_CHAT_DELAY=DELAY,
        PYTHONPATH=os.pathsep.join([str(EXAMPLES), procs.env["PYTHONPATH"]]),
    )
    kernels = [KernelSession(tmp_path)]
    try:
        kernel = kernels[0]
        kernel.run(notebook(url))
        pid = kernel.eval("os.getpid()")
        kernel.run(f"ids = [send(thread_id='t', text=f'question {{i}}') for i in range({REPLIES})]")
        expected = {
            reply_id: ast.literal_eval(kernel.eval(f"offline_answer('question {i}')"))
            for i, reply_id in enumerate(ast.literal_eval(kernel.eval("ids")))
        }

        def streaming_here() -> bool:
            replies, runs = watcher.replies(), watcher.runs()
            return (
                len(replies) == REPLIES
                and all(status == "streaming" and len(text) > 20 for _, status, text in replies)
                and all(run.owner and f":{pid}:" in run.owner for run in runs)
            )

        until(streaming_here, timeout=60, interval=0.02)  # the kernel runs every reply
        if worker == "worker":
            helper = procs.worker(url, "chat_app")
            until(lambda: "rxnb worker" in procs.output(helper), timeout=30)
            runner = str(helper.pid)

        stopped_at = time.time()
        stop_kernel(kernel, event)
        if worker == "no-worker":  # the user runs the cells again
            if event in ("shutdown", "exit"):
                kernels.append(kernel := KernelSession(tmp_path))
            else:
                kernel.wait_ready()
            kernel.run(notebook(url))
            runner = kernel.eval("os.getpid()")

        def all_done() -> bool:
            # A reply is done a moment before its run records its end (two
            # transactions): wait for both, before the kernels close below.
            return all(status == "done" for _, status, _ in watcher.replies()) and all(
                run.status in ("succeeded", "failed", "cancelled") for run in watcher.runs()
            )

        until(all_done, timeout=90, interval=0.05)
    finally:
        for session in kernels:
            session.close()
        procs.close()

    # Every reply is whole, in its own row.
    replies = watcher.replies()
    assert {reply_id: text for reply_id, _, text in replies} == expected
    # No run failed; each started twice, its first start not spent.
    runs = watcher.runs()
    assert [run.status for run in runs] == ["succeeded"] * REPLIES, runs
    for run in runs:
        assert (run.attempt, run.max_attempts, run.interrupted) == (2, 2, WHY[event]), run
        assert run.crashes == (1 if event == "kill" else 0), run
        assert run.error is None, run
        assert f":{runner}:" in run.owner, (run, "ran in the worker or the new kernel")
    # Each reply's first generation was interrupted, saying why; its second streamed it all.
    generations = watcher.generations()
    by_reply: dict[str, list[Any]] = {}
    for generation in generations:
        by_reply.setdefault(generation.row_key, []).append(generation)
    assert sorted(by_reply) == sorted(str(i) for i in expected)
    gaps = []
    for attempts in by_reply.values():
        assert [(g.attempt, g.status) for g in attempts] == [(1, "interrupted"), (2, "done")]
        assert attempts[0].error == WHY[event]
        gaps.append(attempts[1].started_at - stopped_at)
    with capsys.disabled():
        print(
            f"\n  lifecycle {event:8} {worker:9}: streaming again "
            f"{min(gaps):.2f}-{max(gaps):.2f} s after the event"
        )

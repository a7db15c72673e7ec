"""examples/agent_queue.py: a planner agent fills a work queue, three worker agents
(each a durable loop) empty it; each task is claimed, answered and recorded exactly
once, and no more than three are worked on at a time: in one process, and when the
worker process running the loops is killed (kill -9) midway. SQLite and PostgreSQL."""

from __future__ import annotations

import collections
import itertools
import os
import sys
from pathlib import Path

from polling import until
from run_procs import Processes
from sqlmodel import col, select

import rxnb as rx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import agent_queue as q

EXAMPLES = Path(q.__file__).parent


def log_of(store: rx.Store) -> list[tuple[int, str, str | None]]:
    """The queue's audit trail: (task, event, worker), in order."""
    return store.database.read(
        lambda db: [
            (e.task_id, e.event, e.worker)
            for e in db.exec(select(q.TaskLog).order_by(col(q.TaskLog.id))).all()
        ]
    )[0]


def check_each_task_once(store: rx.Store, done: list[int]) -> list[q.Task]:
    """Every task done, by one of the workers, its answer its own turn's; and each
    added, claimed and done exactly once, by the worker that holds it."""
    assert sum(done) == 30, done
    rows = q.tasks()
    assert [(t.title, t.status) for t in rows] == [(title, "done") for title in q.TITLES]
    # Each task's answer is its own turn's (the offline worker repeats its task).
    assert [t.result for t in rows] == [f"Task {t.id}: {t.title}" for t in rows]
    names = {agent.name for agent in q.workers}
    assert {t.worker for t in rows} <= names
    assert sorted(collections.Counter(t.worker for t in rows).values()) == sorted(done)
    log = log_of(store)
    assert collections.Counter((task, event) for task, event, _ in log) == {
        (t.id, event): 1 for t in rows for event in ("added", "claimed", "done")
    }
    by = {t.id: t.worker for t in rows}
    assert all(worker == by[task] for task, event, worker in log if event != "added")
    # One turn per task, in a thread of its own, ended.
    for t in rows:
        messages = rx.agents.messages(f"queue-task-{t.id}")
        assert [(m.role, m.status) for m in messages] == [("user", "done"), ("assistant", "done")]
        assert messages[1].text == t.result and messages[1].agent == t.worker
    return rows


def test_thirty_tasks_three_workers_each_task_exactly_once(store: rx.Store) -> None:
    board = q.board()
    try:
        plan = q.planner.send("plan", "Summarize the book, chapter by chapter.")
        assert plan.result(timeout=30) == "30 tasks are in the queue."
        assert q.counts() == {"open": 30}

        runs = q.start_workers()
        # A loop already running for a worker is returned, not a second one.
        assert [r.id for r in q.start_workers()] == [r.id for r in runs]
        done = [run.result(timeout=60) for run in runs]
        assert min(done) >= 1, done  # all three took part
        rows = check_each_task_once(store, done)

        # Each worker did one task at a time: at most three at once.
        for name in {t.worker for t in rows}:
            spans = sorted((t.claimed_at, t.done_at) for t in rows if t.worker == name)
            assert all(a[1] <= b[0] for a, b in itertools.pairwise(spans)), name

        # The live table followed the queue to its end.
        def statuses() -> list[str]:
            data = board.data
            at = data["columns"].index("status")
            return [row[at] for row in data["rows"]]

        until(lambda: statuses() == ["done"] * 30, timeout=10)
    finally:
        board.close()


def test_a_worker_process_killed_midway_leaves_no_task_done_twice(
    url: str, procs: Processes
) -> None:
    os.environ["RXNB_EXECUTE"] = "0"  # this process only queues: the worker runs the loops
    try:
        queuing = rx.open(url)
    finally:
        del os.environ["RXNB_EXECUTE"]
    try:
        procs.env["PYTHONPATH"] = os.pathsep.join([str(EXAMPLES), procs.env["PYTHONPATH"]])
        q.add_tasks(titles=q.TITLES)
        runs = q.start_workers()
        worker = procs.worker(url, "agent_queue")
        until(lambda: q.counts().get("done", 0) >= 6, timeout=60)
        worker.kill()  # kill -9: up to three tasks claimed, their turns midway
        worker.wait(10)
        left = q.counts()
        assert left.get("open", 0) > 0, (left, procs.output(worker))
    finally:
        queuing.close()
    store = rx.open(url)  # this process runs runs: it resumes the loops from their journals
    try:
        done = [rx.RunHandle(run.id, store).result(timeout=60) for run in runs]
        check_each_task_once(store, done)
    finally:
        store.close()

"""examples/agent_queue.py: a planner agent fills a work queue, three worker agents
(each a durable loop) empty it; each task is claimed, answered and recorded exactly
once, and no more than three are worked on at a time."""

from __future__ import annotations

import collections
import sys
from pathlib import Path

from polling import until
from sqlmodel import col, select

import rxnb as rx

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))

import agent_queue as q


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
        assert sum(done) == 30, done

        rows = q.tasks()
        assert [(t.title, t.status) for t in rows] == [(title, "done") for title in q.TITLES]
        # Each task's answer is its own turn's (the offline worker repeats its task).
        assert [t.result for t in rows] == [f"Task {t.id}: {t.title}" for t in rows]
        names = {agent.name for agent in q.workers}
        assert {t.worker for t in rows} <= names
        assert sorted(collections.Counter(t.worker for t in rows).values()) == sorted(done)

        # Side effects, counted: each task added, claimed and done exactly once.
        log = store.database.read(
            lambda db: [
                (e.task_id, e.event, e.worker)
                for e in db.exec(select(q.TaskLog).order_by(col(q.TaskLog.id))).all()
            ]
        )[0]
        assert collections.Counter((task, event) for task, event, _ in log) == {
            (t.id, event): 1 for t in rows for event in ("added", "claimed", "done")
        }
        assert all(worker == by[task] for task, event, worker in log if event != "added")

        # Each worker did one task at a time: at most three at once.
        for name in names:
            spans = sorted((t.claimed_at, t.done_at) for t in rows if t.worker == name)
            assert all(a[1] <= b[0] for a, b in zip(spans, spans[1:])), name

        # One turn per task, in a thread of its own, ended.
        for t in rows:
            messages = rx.agents.messages(f"queue-task-{t.id}")
            assert [(m.role, m.status) for m in messages] == [
                ("user", "done"),
                ("assistant", "done"),
            ]
            assert messages[1].text == t.result and messages[1].agent == t.worker

        # The live table followed the queue to its end.
        until(lambda: [r[2] for r in board.data["rows"]] == ["done"] * 30, timeout=10)
    finally:
        board.close()

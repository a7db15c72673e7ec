"""A work queue shared by agents: a planner splits a job into tasks, workers claim them.

    import rxnb as rx
    import agent_queue as q

    store = rx.open()
    q.board()                                   # the queue as a live table
    q.planner.send("plan", "Summarize the book, chapter by chapter.").result()
    runs = q.start_workers()                    # one durable loop per worker agent
    [run.result() for run in runs]              # how many tasks each worker did

- The queue is a table, `Task` (open -> claimed -> done, or failed), and the planner's
  tool `add_tasks` is an `@rx.mutation`: the tasks exist iff its transaction commits.
- `claim` takes the oldest open task and marks it claimed by one worker, in one
  serializable transaction: two workers that race for a task cannot both get it (one
  of the transactions is retried, and sees it claimed).
- Each worker is an `@rx.workflow` loop (`work`): claim, answer the task in a turn of
  its agent (a child run, in a thread of its own), record the answer; until no task is
  open. Each of these is journaled: a loop whose process dies resumes from its journal
  in any process that imports this module (`rxnb worker --import agent_queue`), so no
  task is claimed or recorded twice, and each has one turn (an interrupted one goes on,
  its model call streaming again into the same reply). A waiting loop holds no thread.
- At most k tasks are worked on at a time, k the number of loops started:
  `start_workers` starts one per worker agent, and no second one while it runs.

Offline: the planner is `rxnb/scripted` (it plays `TITLES`), the workers are
`rxnb/echo` (each answers with its task's text). Give them a real model (and no
`turns=`) and they plan and work for real.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from sqlmodel import Field, SQLModel, col, func, select

import rxnb as rx

# The offline model's speed (seconds per token): slow enough to watch, fast in tests.
DELAY = 0.01


class Task(SQLModel, table=True):
    """One task of the queue."""

    __tablename__ = "queue_tasks"
    __table_args__ = {"extend_existing": True}  # a notebook may run this module again

    id: int | None = Field(default=None, primary_key=True)
    title: str
    status: str = Field(default="open", index=True)  # open | claimed | done | failed
    worker: str | None = None
    result: str | None = None
    claimed_at: float | None = None
    done_at: float | None = None


class TaskLog(SQLModel, table=True):
    """What happened to each task, one row per change (an audit trail)."""

    __tablename__ = "queue_log"
    __table_args__ = {"extend_existing": True}

    id: int | None = Field(default=None, primary_key=True)
    task_id: int = Field(index=True)
    worker: str | None = None
    event: str  # added | claimed | done | failed
    at: float = Field(default_factory=time.time)


# -- the queue: mutations and queries ----------------------------------------------------


@rx.mutation
def add_tasks(db: rx.Writer, titles: list[str]) -> str:
    """Add one open task per title to the work queue."""
    for title in titles:
        task = Task(title=title)
        db.add(task)
        db.flush()
        assert task.id is not None
        db.add(TaskLog(task_id=task.id, event="added"))
    return f"added {len(titles)} tasks"


@rx.mutation
def claim(db: rx.Writer, worker: str) -> dict[str, Any] | None:
    """The oldest open task, now claimed by `worker`; None when no task is open."""
    task = db.exec(select(Task).where(Task.status == "open").order_by(col(Task.id))).first()
    if task is None or task.id is None:
        return None
    task.status, task.worker, task.claimed_at = "claimed", worker, time.time()
    db.add(TaskLog(task_id=task.id, worker=worker, event="claimed"))
    return {"id": task.id, "title": task.title}


@rx.mutation
def finish(
    db: rx.Writer, task_id: int, worker: str, result: str | None, error: str | None = None
) -> str:
    """Record the answer to a task `worker` claimed (or why it failed)."""
    task = db.get(Task, task_id)
    if task is None or task.status != "claimed" or task.worker != worker:
        state = "gone" if task is None else f"{task.status} by {task.worker}"
        raise rx.RxnbError(f"task {task_id} is not claimed by {worker}: it is {state}")
    task.status = "done" if error is None else "failed"
    task.result, task.done_at = (result if error is None else error), time.time()
    db.add(TaskLog(task_id=task_id, worker=worker, event=task.status))
    return task.status


@rx.query
def tasks(db: rx.Reader) -> list[Task]:
    """The queue, oldest first."""
    return list(db.exec(select(Task).order_by(col(Task.id))).all())


@rx.query
def counts(db: rx.Reader) -> dict[str, int]:
    """How many tasks are in each status."""
    rows = db.exec(select(Task.status, func.count()).group_by(Task.status)).all()
    return {status: int(n) for status, n in rows}


def board() -> Any:
    """The queue as a live table (in a notebook: the cell's output)."""
    return rx.widgets.live(
        tasks,
        view={"formats": {"status": "status", "claimed_at": "hidden", "done_at": "hidden"}},
    )


# -- the agents --------------------------------------------------------------------------

TITLES = [f"Summarize chapter {n} of the book" for n in range(1, 31)]
"""What the offline planner splits the job into."""

planner = rx.Agent(
    "planner",
    model="rxnb/scripted",
    instructions="Split the job into small tasks and add them to the queue with add_tasks.",
    tools=[add_tasks],
    delay=DELAY,
    turns=[
        {
            "script": f"I will split it into {len(TITLES)} tasks.",
            "tool_calls": [{"name": "add_tasks", "arguments": {"titles": TITLES}}],
        },
        {"script": f"{len(TITLES)} tasks are in the queue."},
    ],
)

workers = [
    rx.Agent(
        f"worker-{n}",
        model="rxnb/echo",
        instructions="Do the task you are given; answer with the result only.",
        delay=DELAY,
    )
    for n in (1, 2, 3)
]


# -- a worker's loop -----------------------------------------------------------------------


@rx.mutation
def open_thread(db: rx.Writer, worker: str, thread_id: str, text: str) -> int:
    """A task's thread: its first message and a pending reply, whose turn the loop runs
    as its child run (`schedule=False`); the reply's id."""
    return rx.agents.agent_named(worker).send_in(db, thread_id, text, schedule=False)


@rx.workflow
def work(ctx: rx.WorkflowContext, worker: str) -> int:
    """Worker agent `worker`'s loop: claim the oldest open task, answer it in a turn of
    its own thread, record the answer; until no task is open. How many it did."""
    agent = rx.agents.agent_named(worker)
    done = 0
    while (task := ctx.mutation(claim, worker=worker)) is not None:
        thread_id = f"queue-task-{task['id']}"
        text = f"Task {task['id']}: {task['title']}"
        # The turn as a child run: its thread and pending reply, then the agent's turn.
        reply_id = ctx.mutation(open_thread, worker=worker, thread_id=thread_id, text=text)
        try:
            answer = ctx.child(agent.workflow, thread_id=thread_id, message_id=reply_id)
        except rx.StepError as exc:  # the turn failed or was stopped: say so, go on
            ctx.mutation(finish, task_id=task["id"], worker=worker, result=None, error=str(exc))
            continue
        ctx.mutation(finish, task_id=task["id"], worker=worker, result=str(answer))
        done += 1
    return done


def start_workers(agents: Sequence[rx.Agent] = workers) -> list[rx.RunHandle]:
    """One loop per worker agent (a loop already running for one is returned instead)."""
    return [work.start(worker=agent.name, key=f"queue-worker:{agent.name}") for agent in agents]

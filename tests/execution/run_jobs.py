"""Actions, queries and mutations the runs tests share (importable from subprocesses too).

Side effects that must be counted across processes go to files opened with O_APPEND,
one line per execution, so that every execution is seen whoever ran it.
"""

from __future__ import annotations

import datetime
import os
import threading
import time
from typing import Any

from sqlmodel import Field, SQLModel, select

import rxnb as rx

GATES: dict[str, threading.Event] = {}
"""In-process gates the tests open to let a gated action return."""
NOTICED: set[str] = set()
"""Gates whose action saw `ctx.cancelled` become true (and went on regardless)."""


def gate(name: str) -> threading.Event:
    return GATES.setdefault(name, threading.Event())


def append_line(path: str, line: str) -> None:
    """One write(2) on an O_APPEND descriptor: lines from many processes never mix."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
    finally:
        os.close(fd)


def read_lines(path: str) -> list[str]:
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


@rx.action
def add(ctx: rx.ActionContext, a: int, b: int) -> int:
    ctx.progress(1, 2, "halfway")
    ctx.progress(2, 2, f"{a} + {b}")
    return a + b


@rx.action
def describe(ctx: rx.ActionContext, when: datetime.datetime, n: int) -> dict[str, Any]:
    """What the action received: the types must not depend on where it runs."""
    return {"when": type(when).__name__, "n": type(n).__name__, "run_id": ctx.run_id}


@rx.action
def take_anything(ctx: rx.ActionContext, value: Any) -> None:
    return None


@rx.action
def gated(ctx: rx.ActionContext, name: str) -> str:
    """Wait for the test to open gate `name`; notice a cancel but never act on it."""
    opened = gate(name)
    deadline = time.monotonic() + 30
    while not opened.wait(0.01):
        if ctx.cancelled:
            NOTICED.add(name)
        if time.monotonic() > deadline:
            raise TimeoutError(f"gate {name} never opened")
    return f"{name} done"


@rx.action
def record(ctx: rx.ActionContext, path: str, pause: float = 0.0) -> int:
    """Append `run_id pid attempt` to `path`: one line per execution."""
    append_line(path, f"{ctx.run_id} {os.getpid()} {ctx.attempt}")
    if pause:
        time.sleep(pause)
    return os.getpid()


@rx.action
def stamp(ctx: rx.ActionContext) -> float:
    """The wall-clock time at which the action began."""
    return time.time()


@rx.action(retries=2, backoff=0.05)
def flaky(ctx: rx.ActionContext, fails: int, path: str) -> int:
    """Fail the first `fails` attempts; log each attempt and the error it found stored."""
    run = ctx.query(run_row, run_id=ctx.run_id)
    append_line(path, f"{ctx.attempt}\t{time.time()!r}\t{run['error'] if run else None}")
    if ctx.attempt <= fails:
        raise ValueError(f"failure number {ctx.attempt}")
    return ctx.attempt


@rx.action(retries=3, backoff=0.05)
def refuses(ctx: rx.ActionContext, path: str) -> None:
    append_line(path, f"{ctx.attempt}")
    raise rx.NonRetryableError("the input is malformed; retrying cannot help")


@rx.action
def breaks(ctx: rx.ActionContext, path: str) -> None:
    append_line(path, f"{ctx.attempt}")
    raise RuntimeError("broken on purpose")


@rx.action(retries=2, backoff=0.01)
def returns_garbage(ctx: rx.ActionContext, path: str) -> object:
    """Does its work, then returns something that is not JSON."""
    append_line(path, f"{ctx.attempt}")
    return object()


@rx.action(timeout=0.3)
def overruns(ctx: rx.ActionContext) -> str:
    """Loops politely (checks cancellation) far past its 0.3 s timeout."""
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        ctx.check_cancelled()
        ctx.wait(0.05)
    return "finished"


@rx.query
def run_status(db: rx.Reader, run_id: str) -> str | None:
    row = db.get(rx.Run, run_id)
    return None if row is None else row.status


@rx.query
def run_row(db: rx.Reader, run_id: str | None) -> dict[str, Any] | None:
    row = db.get(rx.Run, run_id) if run_id else None
    return None if row is None else row.model_dump()


@rx.query
def runs_of(db: rx.Reader, function: str) -> list[rx.Run]:
    return db.exec(select(rx.Run).where(rx.Run.function == function)).all()


@rx.mutation
def schedule_record(db: rx.Writer, path: str, then_fail: bool) -> str:
    """Schedule `record(path)`; raise after scheduling when `then_fail`."""
    run_id = db.schedule(record, path=path)
    if then_fail:
        raise ValueError("the mutation failed after scheduling")
    return run_id


@rx.action
def stops_when_asked(ctx: rx.ActionContext, path: str) -> str:
    """Appends a line per start, then waits (checking) until it is asked to stop."""
    append_line(path, f"{ctx.attempt} {os.getpid()}")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not ctx.wait(0.02):
        pass
    ctx.check_cancelled()
    return "nobody stopped it"


@rx.action(at_most_once=True)
def stops_at_most_once(ctx: rx.ActionContext, path: str) -> str:
    return stops_when_asked.fn(ctx, path)  # type: ignore[no-any-return]


@rx.action
def fails_deeply(ctx: rx.ActionContext, lines: int) -> None:
    """Raises an error whose message spans `lines` lines, with litellm's notes in it."""
    message = "\n".join(f"line {i} of a long explanation" for i in range(lines))
    raise RuntimeError(
        "\x1b[1;31mlitellm.APIConnectionError: APIConnectionError: provider down\n"
        + message
        + "\nGive Feedback / Get Help: https://github.com/BerriAI/litellm/issues/new\x1b[0m"
    )


@rx.action
def deaf(ctx: rx.ActionContext, seconds: float, path: str) -> str:
    """Never looks at `ctx`: a hand-over cannot stop it. A line as it starts and ends."""
    append_line(path, f"start {ctx.attempt}")
    time.sleep(seconds)
    append_line(path, f"end {ctx.attempt}")
    return "deaf done"


@rx.action
def returns_when_stopped(ctx: rx.ActionContext, path: str) -> str:
    """Returns early (a value, not an exception) once it sees it should stop."""
    append_line(path, f"{ctx.attempt} {os.getpid()}")
    if ctx.wait(30):
        return "stopped early"
    return "ran to the end"


@rx.action
def raises_a_nul(ctx: rx.ActionContext) -> None:
    raise ValueError("before\x00after")


class Note(SQLModel, table=True):
    """A table of the tests' own, for writes that have nothing to do with runs."""

    __tablename__ = "test_notes"
    id: int | None = Field(default=None, primary_key=True)
    text: str


@rx.mutation
def note(db: rx.Writer, text: str) -> None:
    db.add(Note(text=text))

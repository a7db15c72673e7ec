"""Side effects that outlive processes, for the workflow crash tests (no rxnb import:
the test process reads them without defining any workflow).

Every execution of a step body appends one line `KIND TAG SEQ PID TIME` to a log file
(one write(2) on an O_APPEND descriptor, then fsync), so lines from several processes
never mix and a line written just before a SIGKILL is kept.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

MODULUS = 1_000_003


def append_line(path: str, line: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, (line + "\n").encode())
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Line:
    kind: str
    """enter (a step body starts) | effect (its side effect) | hang | stamp | holding"""
    tag: str
    """Which workflow run (its `tag` argument)."""
    step: str
    """The step number (ten_steps) or label (stamp)."""
    pid: int
    at: float
    """time.time() when the line was written."""


def read_log(path: str) -> list[Line]:
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        return []
    lines = []
    for raw in text.splitlines():
        kind, tag, step, pid, at = raw.split()
        lines.append(Line(kind, tag, step, int(pid), float(at)))
    return lines


def next_value(acc: int, i: int) -> int:
    """What step `i` of ten_steps returns, given the previous step's result: each step
    depends on the one before, so a wrong replayed value shows in the result."""
    return (acc * 31 + i + 1) % MODULUS


def ten_steps_result(tag: str) -> int:
    acc = len(tag)
    for i in range(10):
        acc = next_value(acc, i)
    return acc

"""Crons the cron process tests run in `rxnb worker --import cron_jobs` processes (never
imported by the test process itself, which must not fire them).

Each run appends `start|end RUN_ID PID TIME` lines to CRON_LOG, with one write(2) on
an O_APPEND descriptor: lines from several processes never mix.
"""

from __future__ import annotations

import os
import time

import rxnb as rx

LOG = os.environ["CRON_LOG"]
PAUSE = float(os.environ.get("CRON_PAUSE", "0.3"))
"""How long a run of `tick` lasts, in seconds."""


def note(what: str, run_id: str | None) -> None:
    fd = os.open(LOG, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, f"{what} {run_id} {os.getpid()} {time.time()!r}\n".encode())
    finally:
        os.close(fd)


@rx.cron(every=1)
def tick(ctx: rx.ActionContext) -> None:
    note("start", ctx.run_id)
    ctx.wait(PAUSE)  # returns early if the worker is stopped
    note("end", ctx.run_id)


if os.environ.get("CRON_WITNESS"):

    @rx.cron(every=1)
    def witness(ctx: rx.ActionContext) -> None:
        """Ticks beside `tick`: its runs show that time went on after `tick` stopped."""
        note("witness", ctx.run_id)

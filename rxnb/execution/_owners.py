"""Owners: which executors are alive, and the recovery of runs whose owner is not.

An owner is dead when its heartbeat is older than the lease, or, on this host, when
its process is gone (seen within a heartbeat, without waiting for the lease; a pid
that a new process has taken since counts as gone).
"""

from __future__ import annotations

import json
import math
import os
import socket
import time
from collections.abc import Sequence
from typing import Any

from sqlmodel import select

from rxnb.execution._model import Owner, Run, RunStatus, ended, progressed
from rxnb.execution._transitions import not_again, requeue_interrupted
from rxnb.store import Writer

DIED = "its process died"
"""Why a run whose owner died was interrupted."""
STOPPED = "its executor stopped before the run ended (its store was closed)"
"""Why a run whose owner row is gone (an older rxnb, or a row removed by hand) was."""


def lease_seconds() -> float:
    """How old an owner's heartbeat may be before its runs are orphans (RXNB_LEASE_SECONDS)."""
    return float(os.environ.get("RXNB_LEASE_SECONDS", "10"))


HOST = socket.gethostname()


def _pid_alive(pid: int, since: float | None = None) -> bool:
    """Whether process `pid` exists here and (where /proc says when it started) was
    started by `since` (its owner row's start): a reused pid is another process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    started = _process_started(pid)
    return since is None or started is None or started <= since + 2.0  # /proc: 1 s steps


def _process_started(pid: int) -> float | None:
    """When process `pid` started (epoch seconds), from Linux's /proc; else None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        ticks = int(fields[19])  # field 22, counted after the command's ")"
        return _boot_time() + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _boot_time() -> float:
    with open("/proc/stat", encoding="ascii") as stat:
        for line in stat:
            if line.startswith("btime "):
                return float(line.split()[1])
    raise ValueError("no btime in /proc/stat")


def delete_owner(db: Writer, owner_id: str) -> None:
    owner = db.get(Owner, owner_id)
    if owner is not None:
        db.delete(owner)


def _dead_owners(owners: Sequence[Owner], me: str | None, leases: bool = True) -> set[str]:
    """Owners whose heartbeat is older than the lease (when `leases`), or whose
    process here is gone."""
    stale = time.time() - lease_seconds() if leases else -math.inf
    return {
        o.id
        for o in owners
        if o.id != me
        and (o.heartbeat_at < stale or (o.host == HOST and not _pid_alive(o.pid, o.started_at)))
    }


def can_run(db: Any, function: str) -> bool:
    """Whether a live executor (heartbeat within the lease) has `function` registered."""
    fresh = time.time() - lease_seconds()
    owners = db.exec(select(Owner).where(Owner.heartbeat_at >= fresh)).all()
    return any(function in json.loads(o.functions or "[]") for o in owners)


def orphans_exist(db: Any, me: str | None, leases: bool = True) -> bool:
    owners = db.exec(select(Owner)).all()
    if _dead_owners(owners, me, leases):
        return True
    known = {o.id for o in owners}
    running = db.exec(select(Run.owner).where(Run.status == RunStatus.RUNNING.value)).all()
    return any(owner not in known for owner in running)


def recover_orphans(db: Writer, me: str | None = None, leases: bool = True) -> int:
    """Rule 4 of `Executor`: the running runs of dead owners; how many there were.

    1. A run asked to stop meanwhile ends cancelled.
    2. A run whose owner was handing over (`Owner.stopping`: its process was stopping
       and the action had not stopped yet) is queued again for that reason: a
       hand-over, not a crash. An `at_most_once` run fails (it may have run in part).
    3. A run whose owner died is queued again, its attempt not spent, up to its
       `crash_retries` crashes in a row; then, or at once if `at_most_once`, it fails
       with "owner process died". A run that made lasting progress since it started
       (a workflow journaled a step) counts this crash as the first in a row.
    """
    now = time.time()
    owners = {o.id: o for o in db.exec(select(Owner)).all()}
    dead = _dead_owners(list(owners.values()), me, leases)
    running = db.exec(select(Run).where(Run.status == RunStatus.RUNNING.value)).all()
    recovered = 0
    for run in running:
        if run.owner == me or (run.owner in owners and run.owner not in dead):
            continue
        recovered += 1
        owner = owners.get(run.owner or "")
        if run.cancel_requested:  # rule 1
            run.status, run.finished_at = RunStatus.CANCELLED.value, now
            ended(db, run)
            continue
        if owner is None or owner.stopping is not None:  # rule 2
            why = STOPPED if owner is None else owner.stopping or STOPPED
            if run.at_most_once:
                _fail(db, run, not_again(why, run.id), now)
            else:
                requeue_interrupted(db, run, why)
            continue
        run.crashes = 1 if progressed(db, run) else run.crashes + 1  # rule 3
        if run.at_most_once:
            _fail(db, run, not_again("owner process died", run.id), now)
        elif run.crashes > run.crash_retries:
            _fail(db, run, _crashed_too_often(run), now)
        else:
            requeue_interrupted(db, run, DIED)
    for owner_id in dead:
        db.delete(owners[owner_id])
    return recovered


def _fail(db: Writer, run: Run, error: str, now: float) -> None:
    run.status, run.finished_at, run.error, run.traceback = RunStatus.FAILED.value, now, error, None
    ended(db, run)


def _crashed_too_often(run: Run) -> str:
    times = "once" if run.crashes == 1 else f"{run.crashes} times in a row"
    return (
        f"owner process died {times}, while running this run each time "
        f"(crash_retries={run.crash_retries}): the action may be what kills it (memory, a "
        "crash in native code, os._exit); fix that, then rx.retry("
        f"{run.id!r}), or raise crash_retries="
    )

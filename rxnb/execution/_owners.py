"""Owners: which executors are alive, and the recovery of runs whose owner is not.

An owner on this machine (the same kernel boot and pid namespace: not merely the same
host name, which containers share) is alive while its process is: a pid that a newer
process has taken counts as gone, and so does a process stopped by its own stopping
(`Owner.stopping`) once its heartbeat is a lease old. A process that stalls (a long C
call holding the GIL, a debugger) keeps its runs. An owner elsewhere is judged by its
heartbeat alone: dead once it is older than the lease (`RXNB_LEASE_SECONDS`).
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


def _machine() -> str | None:
    """This kernel's boot and pid namespace (Linux): processes that can see each
    other's pids share it, containers with one host name do not. None elsewhere."""
    try:
        with open("/proc/sys/kernel/random/boot_id", encoding="ascii") as boot:
            boot_id = boot.read().strip()
        return f"{boot_id}/{os.readlink('/proc/self/ns/pid')}"
    except OSError:
        return None


MACHINE = _machine()


def _started_ticks(pid: int) -> int | None:
    """When process `pid` started, in clock ticks since boot (Linux /proc: immune to
    the wall clock being set); None where /proc does not say."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return int(fields[19])  # field 22, counted after the command's ")"
    except (OSError, ValueError, IndexError):
        return None


PID_START = _started_ticks(os.getpid())


def new_owner(owner_id: str, now: float) -> Owner:
    """This process's owner row for executor `owner_id`."""
    return Owner(
        id=owner_id,
        host=HOST,
        machine=MACHINE,
        pid=os.getpid(),
        pid_start=PID_START,
        started_at=now,
        heartbeat_at=now,
    )


def _here(owner: Owner) -> bool:
    """Whether `owner`'s process is on this machine, where its pid can be looked at."""
    if MACHINE is not None and owner.machine is not None:
        return owner.machine == MACHINE
    return owner.host == HOST  # an owner row without a machine: a host name is all there is


def _alive(owner: Owner) -> bool:
    """Whether `owner`'s process (on this machine) still runs: its pid exists and, where
    /proc tells, was started when the owner's was (a reused pid is another process)."""
    try:
        os.kill(owner.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass
    if owner.pid_start is None:
        return True
    return _started_ticks(owner.pid) in (owner.pid_start, None)


def delete_owner(db: Writer, owner_id: str) -> None:
    owner = db.get(Owner, owner_id)
    if owner is not None:
        db.delete(owner)


def _dead_owners(owners: Sequence[Owner], me: str | None, leases: bool = True) -> set[str]:
    """Owners whose process here has ended (or stopped and gone silent for a lease),
    and owners elsewhere silent for a lease (when `leases`: see `Heartbeat`)."""
    stale = time.time() - lease_seconds() if leases else -math.inf
    dead = set()
    for o in owners:
        if o.id == me:
            continue
        silent = o.heartbeat_at < stale
        gone = not _alive(o) or (o.stopping is not None and silent) if _here(o) else silent
        if gone:
            dead.add(o.id)
    return dead


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
    times = "while running it" if run.crashes == 1 else f"{run.crashes} times in a row"
    return (
        f"owner process died {times} (crash_retries={run.crash_retries}): the action may "
        "be what kills it (memory, a crash in native code, os._exit); fix that, then "
        f"rx.retry({run.id!r}), or raise crash_retries="
    )

"""Owners: which executors are alive, and the recovery of runs whose owner is not.

An owner is dead when its heartbeat is older than the lease, or, on this host, when
its process is gone (seen within a heartbeat, without waiting for the lease).
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

from rxnb.execution._model import Owner, Run, RunStatus, ended
from rxnb.store import Writer


def lease_seconds() -> float:
    """How old an owner's heartbeat may be before its runs are orphans (RXNB_LEASE_SECONDS)."""
    return float(os.environ.get("RXNB_LEASE_SECONDS", "10"))


HOST = socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        if o.id != me and (o.heartbeat_at < stale or (o.host == HOST and not _pid_alive(o.pid)))
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
    """Rule 4 of `Executor`: requeue or fail the running runs of dead owners."""
    now = time.time()
    owners = {o.id: o for o in db.exec(select(Owner)).all()}
    dead = _dead_owners(list(owners.values()), me, leases)
    running = db.exec(select(Run).where(Run.status == RunStatus.RUNNING.value)).all()
    recovered = 0
    for run in running:
        if run.owner == me or (run.owner in owners and run.owner not in dead):
            continue
        recovered += 1
        why = (
            "owner process died"
            if run.owner in owners
            else "its executor stopped before the run ended (its store was closed)"
        )
        if run.cancel_requested:
            run.status, run.finished_at = RunStatus.CANCELLED.value, now
            ended(db, run)
        elif run.attempt < run.max_attempts:
            run.status, run.owner, run.due_at = RunStatus.QUEUED.value, None, now
            run.error = f"{why} (attempt {run.attempt}); retrying"
        else:
            run.status, run.finished_at = RunStatus.FAILED.value, now
            run.error = why
            ended(db, run)
    for owner_id in dead:
        db.delete(owners[owner_id])
    return recovered

"""`rxnb worker` and `rxnb runs`: the queue without a notebook.

rxnb worker [--url URL] [--import MODULE ...] [--concurrency N]
rxnb runs [--url URL] [--limit N]
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import json
import os
import signal
import sys
import threading
from collections.abc import Sequence

from sqlmodel import select

import rxnb as rx
from rxnb.functions import registry
from rxnb.runs import Action, Owner, Run, RunStatus, executor_for


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rxnb", description="rxnb's command line")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="run queued runs of the imported actions")
    worker.add_argument("--url", help="store URL (default: RXNB_URL or .rxnb/rxnb.db here)")
    worker.add_argument(
        "--import",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="a module defining @rx.action functions (repeatable)",
    )
    worker.add_argument("--concurrency", type=int, default=None, help="threads (RXNB_WORKERS)")
    runs = commands.add_parser("runs", help="print the runs in a store")
    runs.add_argument("--url")
    runs.add_argument("--limit", type=int, default=50)
    args = parser.parse_args(argv)
    if args.command == "worker":
        return _worker(args.url, args.modules, args.concurrency)
    return _runs(args.url, args.limit)


def _worker(url: str | None, modules: list[str], concurrency: int | None) -> int:
    sys.path.insert(0, os.getcwd())
    for module in modules:
        importlib.import_module(module)
    actions = [f for f in registry.all() if isinstance(f, Action)]
    if not actions:
        print("rxnb worker: no @rx.action found; pass --import MODULE", file=sys.stderr)
        return 2
    if concurrency is not None:
        os.environ["RXNB_WORKERS"] = str(concurrency)
    store = rx.open(url)
    executor = executor_for(store)
    for action in actions:
        executor.register(action)
    print(
        f"rxnb worker {executor.id}: {store.url}, {executor.workers} thread(s), "
        f"actions: {', '.join(a.name for a in actions)}",
        flush=True,
    )
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    stop.wait()
    store.close()
    return 0


def _runs(url: str | None, limit: int) -> int:
    store = rx.open(url)
    rows, owners = store.database.read(
        lambda db: (
            db.exec(select(Run).order_by(Run.created_at.desc()).limit(limit)).all(),  # type: ignore[attr-defined]
            db.exec(select(Owner)).all(),
        )
    )[0]
    registered = {name for o in owners for name in json.loads(o.functions)}
    print(f"{'id':16} {'status':10} {'att':>3}  {'function':40} note")
    for run in rows:
        note = run.error or ""
        if run.status == RunStatus.QUEUED.value and run.function not in registered:
            note = f"no executor has registered `{run.function}`"
        created = datetime.datetime.fromtimestamp(run.created_at).strftime("%H:%M:%S")
        print(
            f"{run.id:16} {run.status:10} {run.attempt:>3}  {run.function[:40]:40} {created} {note}"
        )
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

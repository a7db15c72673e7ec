"""`rxnb worker` and `rxnb runs`: the queue without a notebook.

rxnb worker [--url URL] [--import MODULE ...] [--concurrency N]
rxnb runs [--url URL] [--limit N]
rxnb demo [--dir DIR] [--worker] [--port N] [--no-browser]
rxnb app NOTEBOOK [--port N] [--no-browser] [--worker MODULE ...]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from sqlmodel import select

from rxnb.execution import Action, Executor, Owner, Run, clock, executor_for, run_note, waits
from rxnb.functions import registry
from rxnb.llm import column_action, load_litellm
from rxnb.reactive import open as open_store


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
    demo = commands.add_parser(
        "demo", help="open the chat demo (01_chat.ipynb, offline model) in JupyterLab"
    )
    demo.add_argument("--dir", default="rxnb-demo", help="where to copy it (default ./rxnb-demo)")
    demo.add_argument("--worker", action="store_true", help="also run an `rxnb worker` there")
    demo.add_argument("--port", type=int, default=8888)
    demo.add_argument("--no-browser", action="store_true", help="do not open a browser")
    app = commands.add_parser(
        "app", help="serve a notebook as an app with Voila: its widgets, no code"
    )
    app.add_argument("notebook", help="the notebook (.ipynb) to serve")
    app.add_argument("--port", type=int, default=8866)
    app.add_argument("--no-browser", action="store_true", help="do not open a browser")
    app.add_argument(
        "--worker",
        dest="modules",
        action="append",
        default=[],
        metavar="MODULE",
        help="also run an `rxnb worker --import MODULE` beside it (repeatable)",
    )
    args = parser.parse_args(argv)
    if args.command == "app":
        return _app(Path(args.notebook), args.port, not args.no_browser, args.modules)
    if args.command == "worker":
        return _worker(args.url, args.modules, args.concurrency)
    if args.command == "demo":
        return _demo(
            Path(args.dir), worker=args.worker, port=args.port, browser=not args.no_browser
        )
    return _runs(args.url, args.limit)


def _worker(url: str | None, modules: list[str], concurrency: int | None) -> int:
    # The worker's own handlers, first: a signal while it starts is its to handle
    # (rxnb's SIGTERM hand-over would take it if none were set yet).
    stop = threading.Event()

    def on_signal(signum: int, _: object) -> None:
        if stop.is_set():  # the second Ctrl-C or SIGTERM: now
            print("rxnb worker: stopping now; runs still going are handed over", flush=True)
            os._exit(128 + signum)  # the owner row says it was stopping: not a crash
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, on_signal)
    sys.path.insert(0, os.getcwd())
    for module in modules:
        importlib.import_module(module)
    column_action()  # a worker also streams the columns of rx.llm.compare and %%ai cells
    actions = [f for f in registry.all() if isinstance(f, Action)]
    # rxnb's own actions (a comparison's columns) are served too, but a worker that
    # found none of the user's was most likely started without its module.
    own = [a for a in actions if a.name.startswith("rxnb.")]
    users = [a for a in actions if a not in own]
    if not users:
        print("rxnb worker: no @rx.action found; pass --import MODULE", file=sys.stderr)
        return 2
    if concurrency is not None:
        os.environ["RXNB_WORKERS"] = str(concurrency)
    store = open_store(url)
    executor = executor_for(store)
    for action in actions:
        executor.register(action)
    print(
        f"rxnb worker {executor.id}: {store.url}, {executor.workers} thread(s), "
        f"actions: {', '.join(a.name for a in users)}"
        + (f" (and rxnb's own: {', '.join(a.name for a in own)})" if own else ""),
        flush=True,
    )
    threading.Thread(
        target=_warm_up_litellm, args=(executor, stop), name="rxnb-litellm-import", daemon=True
    ).start()
    stop.wait()
    # Hand its runs over: those that stop when asked go back to the queue at once. The
    # others are waited for (a worker, unlike a kernel, has no one to kill it after 5 s:
    # the process could not exit before they end anyway), their outcomes recorded.
    executor.stop(WORKER_STOPPED)
    if not executor.wait_idle(0):
        left = len(executor.running_ids())
        print(
            f"rxnb worker: waiting for {left} run(s) that did not stop when asked "
            "(Ctrl-C again to stop now; they are then handed over)",
            flush=True,
        )
        executor.wait_idle()
    store.close()
    return 0


WORKER_STOPPED = "the worker stopped"


IDLE_CHECK_SECONDS = 0.25
"""How often a new worker looks whether it runs nothing, to import litellm then."""


def _warm_up_litellm(executor: Executor, stop: threading.Event) -> None:
    """Import litellm (seconds of CPU) once this worker runs nothing, so that a reply
    a restarted kernel hands over later does not wait for it, and so that it takes no
    CPU from runs (four workers started on a queue of short runs each spent a quarter
    of the drain on it). A run that needs it sooner imports it itself."""
    while not stop.wait(IDLE_CHECK_SECONDS):
        if executor.wait_idle(0):
            with contextlib.suppress(Exception):  # the first generation reports it, in context
                load_litellm()
            return


DEMO_FILES = ("01_chat.ipynb", "chat_app.py")


def demo_sources() -> Path:
    """Where the demo's files are: inside the installed package, else the source tree."""
    for folder in (Path(__file__).parent / "_demo", Path(__file__).parents[1] / "examples"):
        if all((folder / name).is_file() for name in DEMO_FILES):
            return folder
    raise SystemExit("rxnb demo: the demo files are missing from this installation; reinstall rxnb")


def copy_demo(folder: Path) -> Path:
    """Copy the demo into `folder` (keeping a notebook already there); the notebook."""
    folder.mkdir(parents=True, exist_ok=True)
    source = demo_sources()
    for name in DEMO_FILES:
        if name.endswith(".py") or not (folder / name).exists():  # the app stays current
            shutil.copy(source / name, folder / name)
    return folder / DEMO_FILES[0]


def _demo(folder: Path, *, worker: bool, port: int, browser: bool) -> int:
    if importlib.util.find_spec("jupyterlab") is None:
        print("rxnb demo needs JupyterLab: pip install jupyterlab", file=sys.stderr)
        return 2
    notebook = copy_demo(folder)
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    print(f"rxnb demo: {notebook} (store: {folder / '.rxnb' / 'rxnb.db'})", flush=True)
    helper = None
    if worker:
        command = [sys.executable, "-m", "rxnb", "worker", "--import", "chat_app"]
        helper = subprocess.Popen(command, cwd=folder, env=env)
    lab = [sys.executable, "-m", "jupyter", "lab", notebook.name, "--ServerApp.ip=127.0.0.1"]
    lab += [f"--ServerApp.port={port}", "--LabApp.extension_manager=readonly"]
    lab += [] if browser else ["--no-browser"]
    lab += ["--allow-root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []
    server = subprocess.Popen(lab, cwd=folder, env=env)
    return _serve(server, [helper] if helper is not None else [])


def _app(notebook: Path, port: int, browser: bool, modules: list[str]) -> int:
    """Serve `notebook` with Voila (cells run top to bottom for each visitor's page, code
    hidden), with an `rxnb worker` for `modules` beside it if asked."""
    if not notebook.is_file() or notebook.suffix != ".ipynb":
        print(f"rxnb app: {notebook} is not a notebook file; give a .ipynb path", file=sys.stderr)
        return 2
    if importlib.util.find_spec("voila") is None:
        print(
            "rxnb app needs Voila: pip install 'rxnb[app]' (or pip install voila)", file=sys.stderr
        )
        return 2
    folder = notebook.resolve().parent
    env = {**os.environ, "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    helpers = []
    if modules:
        command = [sys.executable, "-m", "rxnb", "worker"]
        command += [arg for module in modules for arg in ("--import", module)]
        helpers.append(subprocess.Popen(command, cwd=folder, env=env))
    voila = [sys.executable, "-m", "voila", notebook.name, f"--port={port}"]
    voila += ["--Voila.ip=127.0.0.1", "--show_tracebacks=True"]
    voila += [] if browser else ["--no-browser"]
    print(
        f"rxnb app: {notebook} at http://127.0.0.1:{port}/ (store: RXNB_URL or .rxnb/)", flush=True
    )
    server = subprocess.Popen(voila, cwd=folder, env=env)
    return _serve(server, helpers)


def _serve(server: subprocess.Popen[bytes], helpers: list[subprocess.Popen[bytes]]) -> int:
    """Wait for `server`; then (or on SIGTERM or Ctrl-C) stop and reap it and `helpers`."""
    signal.signal(signal.SIGTERM, _stop)
    children = [server, *helpers]
    try:
        return server.wait()
    except (KeyboardInterrupt, SystemExit):
        return 0
    finally:  # stop and reap every child, however this ends
        for child in children:
            if child.poll() is None:
                child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


def _stop(*_: object) -> None:
    raise SystemExit(0)


def _runs(url: str | None, limit: int) -> int:
    store = open_store(url)
    rows, owners = store.database.read(
        lambda db: (
            db.exec(select(Run).order_by(Run.created_at.desc()).limit(limit)).all(),  # type: ignore[attr-defined]
            db.exec(select(Owner)).all(),
        )
    )[0]
    held = store.database.read(lambda db: waits(db, rows, clock.now()))[0]
    registered = {name for o in owners for name in json.loads(o.functions)}
    print(f"{'id':16} {'status':10} {'att':>3}  {'function':40} {'created':8} note")
    for run in rows:
        note = run_note(run, registered, held)  # one line: a traceback is in `Run.traceback`
        created = datetime.datetime.fromtimestamp(run.created_at).strftime("%H:%M:%S")
        print(
            f"{run.id:16} {run.status:10} {run.attempt:>3}  {run.function[:40]:40} {created} {note}"
        )
    store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Worker subprocesses for the runs tests, and what the store says about executors."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path
from typing import Any

from sqlmodel import select

import rxnb as rx
from rxnb.execution import Owner

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent


class Processes:
    """Python subprocesses with tests/ and tests/execution importable; all ended at teardown.

    Output goes to files, not pipes, so a chatty process never blocks on a full pipe.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(TESTS), *sys.path]),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }

    def _start(self, argv: list[str]) -> subprocess.Popen[bytes]:
        log = self.folder / f"proc-{len(self.started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                argv, env=self.env, cwd=self.folder, stdout=out, stderr=subprocess.STDOUT
            )
        self.started.append((proc, log))
        return proc

    def worker(self, url: str, *modules: str, cli: str = "module") -> subprocess.Popen[bytes]:
        """`rxnb worker --url URL --import M…`, as `python -m rxnb` or the `rxnb` script."""
        command = (
            [str(Path(sys.executable).parent / "rxnb")]
            if cli == "script"
            else [sys.executable, "-m", "rxnb"]
        )
        imports = [arg for m in modules for arg in ("--import", m)]
        return self._start([*command, "worker", "--url", url, *imports])

    def python(self, code: str, *args: str) -> subprocess.Popen[bytes]:
        return self._start([sys.executable, "-c", textwrap.dedent(code), *args])

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        log = next(log for p, log in self.started if p is proc)
        return log.read_text(errors="replace")

    def close(self) -> None:
        for proc, _ in self.started:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


def enqueue(store: rx.Store, function: str, max_attempts: int = 1, **args: Any) -> str:
    """Queue a run by writing its row, as another language could; no executor here
    learns of `function`, so only processes that import it will claim the run."""
    now = time.time()
    run = rx.Run(
        id=uuid.uuid4().hex,
        function=function,
        args=json.dumps(args),
        max_attempts=max_attempts,
        due_at=now,
        created_at=now,
    )
    store.database.write(lambda db: db.add(run))
    return run.id


def owners_registering(store: rx.Store, function: str) -> list[Owner]:
    """The owner rows (executors that heartbeat) that registered `function`."""
    owners = store.database.read(lambda db: db.exec(select(Owner)).all())[0]
    return [o for o in owners if function in json.loads(o.functions)]

"""Processes for the workflow crash tests, and reading their store from outside.

The test process never opens the store with rxnb: an executor here would recover the
killed process's runs itself (and could claim them), and the point is that the new
process does. It reads `rx_runs` and `rx_journal` with plain SQL instead (SQLAlchemy
Core, no rxnb), on SQLite or PostgreSQL.

Starting Python and importing rxnb takes 1-3 s on these machines, so a process that
must open the store only after a kill is started early, imports what it needs, and
waits on its stdin for `go` (`Processes.resumer`, `Processes.go`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

HERE = Path(__file__).resolve().parent
TESTS = HERE.parent

RESUMER = """
    import sys, time
    import rxnb as rx
    url, order = sys.argv[1], sys.argv[2]
    if order == "import-then-open":
        import flow_jobs  # defines the workflows: this process will run them
    sys.stdin.readline()  # "go"
    print(f"opening {time.time():.6f}", flush=True)
    store = rx.open(url)  # its executor may resume runs before this returns
    print(f"opened {time.time():.6f}", flush=True)
    if order == "open-then-import":
        import flow_jobs
    sys.stdin.readline()  # end of input: the test is over
    store.close()
"""


class Processes:
    """Python subprocesses with tests/ and tests/workflows importable, ended at teardown.

    Output goes to files, not pipes, so a chatty process never blocks on a full pipe.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.told: set[int] = set()
        """The gated processes told to go: at teardown, end of input ends them."""
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(HERE), str(TESTS), *sys.path]),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }

    def python(self, code: str, *args: str, gated: bool = False) -> subprocess.Popen[bytes]:
        """`python -c code args…`; `gated`: its stdin is a pipe the test writes to."""
        log = self.folder / f"proc-{len(self.started)}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(
                [sys.executable, "-c", textwrap.dedent(code), *args],
                env=self.env,
                cwd=self.folder,
                stdin=subprocess.PIPE if gated else subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.started.append((proc, log))
        return proc

    def resumer(self, url: str, order: str = "import-then-open") -> subprocess.Popen[bytes]:
        """A process that defines the workflows and opens the store at `go`; it prints
        `opening TIME` and `opened TIME` around rx.open, and closes the store at teardown."""
        return self.python(RESUMER, url, order, gated=True)

    def go(self, proc: subprocess.Popen[bytes], line: str = "go") -> None:
        assert proc.stdin is not None and proc.poll() is None, self.output(proc)
        self.told.add(proc.pid)
        proc.stdin.write(f"{line}\n".encode())
        proc.stdin.flush()

    def output(self, proc: subprocess.Popen[bytes]) -> str:
        log = next(log for p, log in self.started if p is proc)
        return log.read_text(errors="replace")

    def printed(self, proc: subprocess.Popen[bytes], word: str) -> str | None:
        """What `proc` printed after `word` on the first line starting with it."""
        for line in self.output(proc).splitlines():
            if line.startswith(word + " "):
                return line[len(word) + 1 :]
        return None

    def opened_at(self, proc: subprocess.Popen[bytes], word: str = "opened") -> float | None:
        """When rx.open returned in a resumer (`opening`: when it was called), once it has."""
        value = self.printed(proc, word)
        return None if value is None else float(value)

    def close(self) -> None:
        for proc, _ in self.started:
            if proc.pid in self.told and proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()  # a resumer closes its store and exits
            elif proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc, _ in self.started:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
            if proc.stdin is not None:
                with contextlib.suppress(BrokenPipeError):
                    proc.stdin.close()


def kill_9(proc: subprocess.Popen[bytes]) -> float:
    """SIGKILL `proc` and reap it (an unreaped child is a zombie, whose pid still looks
    alive to `os.kill(pid, 0)`); when it was killed."""
    os.kill(proc.pid, signal.SIGKILL)
    killed_at = time.time()
    assert proc.wait(10) == -signal.SIGKILL
    return killed_at


@dataclass(frozen=True)
class RunRow:
    id: str
    function: str
    args: dict[str, Any]
    status: str
    attempt: int
    owner: str | None
    due_at: float
    result: Any
    error: str | None


@dataclass(frozen=True)
class Entry:
    seq: int
    kind: str
    name: str
    output: Any
    error: str | None
    started_at: float
    finished_at: float | None
    attempts: int


class StoreTables:
    """The store's tables as another program sees them (plain SQL, reads only)."""

    def __init__(self, url: str) -> None:
        parsed = sa.make_url(url)
        if parsed.get_backend_name() == "sqlite":
            self.path: str | None = parsed.database
        else:
            self.path = None
            parsed = parsed.set(drivername="postgresql+psycopg")
        self.engine = sa.create_engine(parsed, poolclass=sa.pool.NullPool)

    def _rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        if self.path is not None and not os.path.exists(self.path):
            return []
        names = {f"p{i}": value for i, value in enumerate(params)}
        for name in names:
            sql = sql.replace("?", f":{name}", 1)
        try:
            with self.engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(sql), names).fetchall()]
        except sa.exc.ProgrammingError as exc:  # PostgreSQL: the tables are not created yet
            if "does not exist" in str(exc):
                return []
            raise
        except sa.exc.OperationalError as exc:  # SQLite: the tables are not created yet
            if "no such table" in str(exc):
                return []
            raise

    def runs(self) -> list[RunRow]:
        rows = self._rows(
            "SELECT id, function, args, status, attempt, owner, due_at, result, error"
            " FROM rx_runs ORDER BY created_at"
        )
        return [
            RunRow(
                r[0],
                r[1],
                json.loads(r[2]),
                r[3],
                r[4],
                r[5],
                r[6],
                None if r[7] is None else json.loads(r[7]),
                r[8],
            )
            for r in rows
        ]

    def run(self, run_id: str) -> RunRow | None:
        return next((r for r in self.runs() if r.id == run_id), None)

    def started_at(self, run_id: str) -> float:
        """When the run was last claimed."""
        return float(self._rows("SELECT started_at FROM rx_runs WHERE id = ?", run_id)[0][0])

    def status(self, run_id: str) -> str | None:
        row = self.run(run_id)
        return None if row is None else row.status

    def journal(self, run_id: str) -> list[Entry]:
        rows = self._rows(
            "SELECT seq, kind, name, output, error, started_at, finished_at, attempts"
            " FROM rx_journal WHERE run_id = ? ORDER BY seq",
            run_id,
        )
        return [
            Entry(r[0], r[1], r[2], None if r[3] is None else json.loads(r[3]), *r[4:])
            for r in rows
        ]

    def events(self, run_id: str) -> list[tuple[str, Any, bool]]:
        rows = self._rows(
            "SELECT name, payload, consumed FROM rx_events WHERE run_id = ? ORDER BY id", run_id
        )
        return [(name, json.loads(payload), bool(consumed)) for name, payload, consumed in rows]

"""rxnb kernel lifecycle figures: `python bench/lifecycle.py [--quick] [--url URL]`.

K1  graceful kernel restart -> the replies streaming again in an `rxnb worker`  p50 <= 1 s
K2  kill -9 of the owning kernel -> the replies streaming again in the worker    p50 <= 2 s

The scenario of tests/execution/test_kernel_lifecycle.py, timed over many trials. The
chat app of `examples/chat_app.py` (offline model `rxnb/scripted`, `--delay` seconds
per token) runs in a real IPython kernel driven by jupyter_client, on a SQLite file in
a temporary folder (or, with `--url`, in a fresh schema on that PostgreSQL server,
dropped afterwards). One `rxnb worker --import chat_app` shares the store throughout.

A trial: the kernel sends `--replies` messages; once its executor owns every run (the
run's owner holds the kernel's pid) and every reply is streaming, the bench notes the
wall clock and stops the kernel: K1 `KernelManager.restart_kernel(now=False)` (a
shutdown request, then a new kernel: JupyterLab's Kernel > Restart), K2
`restart_kernel(now=True)` (the kernel is killed with SIGKILL, then a new one starts).
The figure of a trial is the time from that moment until every reply streams again in
the worker: the latest `rx_generations.started_at` of the replies' second attempts
minus the moment of the event (the earliest is shown too, and the steps before it:
the run queued again, `rx_runs.due_at`; the run claimed by the worker,
`rx_runs.started_at`). The new kernel starts meanwhile, as it does in JupyterLab,
and takes CPU from the worker; it opens the store only once the figure is taken, when
the bench runs the notebook's cell again in it (so it cannot take the runs back), and
cancels the trial's runs, so that a trial costs seconds rather than whole replies and
the next starts with an idle worker. The same KernelManager serves every trial.

Keeping each trial honest:
- The worker runs before the first trial and is warm: its first generation imports
  litellm (seconds of CPU), which a worker that has been running a while has long
  done. A warm-up reply, queued by a short-lived process with RXNB_EXECUTE=0 (so only
  the worker can claim it), streams through the worker to its end before the first
  trial, so the figures time the hand-over, not an import.
- With the worker running, whether the kernel or the worker claims a run the kernel
  has just queued is chance: without the pause below, the worker claimed part of
  about every other send here, sometimes five in a row. So the worker is paused
  (SIGSTOP) from just before the kernel sends until the kernel has claimed every run
  (at most 4 s, well within the 10 s lease), then resumed (SIGCONT); the event comes
  only once every reply is streaming in the kernel and the worker has renewed its
  heartbeat since it was resumed, i.e. it runs its loops again as before. A send of
  which the worker still claimed a run is cancelled and sent again ("sends redone"
  below), so every event stops a kernel that owns every reply.
- The notebook's cell imports litellm (`rx.llm.load_litellm()`), as the kernel's first
  generation would anyway (a kernel streaming replies has long imported it): left to
  the first generation, seconds of import in a fresh kernel slow its claims of the
  other replies while the worker is paused.
- The bench process reads the store with plain SQL only and never imports chat_app
  (that would register its action here, and this process would run replies too).

Exits 0 whether targets pass or fail (the table says which); a wait that passes its
deadline stops the bench with an error naming what it waited for.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(ROOT / "tests" / "kernel"))

import _report as report  # noqa: E402
from kernel_session import KernelSession  # noqa: E402

GENERATE = "chat_app.generate"
TERMINAL = ("succeeded", "failed", "cancelled")
WHY = {"restart": "the kernel restarted", "kill": "its process died"}
"""What each event should leave in `rx_runs.interrupted`."""
WAIT = 60.0
"""Seconds any single wait may take before the bench gives up."""
RESUME_WAIT = 30.0
"""Seconds the replies may take to stream again after the event."""
POLL = 0.02
MAX_REDO = 5
"""Sends in a row the worker may claim part of before the bench gives up."""
PAUSE = 4.0
"""Longest the worker is paused while the kernel sends: well within the 10 s lease
(RXNB_LEASE_SECONDS), after which the kernel would take the worker for dead."""


@dataclass(frozen=True)
class Config:
    trials: int
    replies: int
    delay: float


FULL = Config(trials=10, replies=3, delay=0.05)
QUICK = Config(trials=3, replies=3, delay=0.05)


Figure = report.Measured


@dataclass(frozen=True)
class Sample:
    """One trial, in seconds after the event."""

    last: float
    """Every reply streaming again (the latest second-attempt generation start)."""
    first: float
    requeued: float
    """The last run queued again."""
    claimed: float
    """The last run claimed by the worker."""
    call: float
    """How long `restart_kernel` blocked."""


class BenchError(RuntimeError):
    """A wait passed its deadline, or the store says something the bench did not expect."""


def notebook(url: str, delay: float) -> str:
    """The cell a user runs (again, in each new kernel): the chat app, the store,
    litellm imported (see the module's docstring)."""
    return f"""
import os, sys
os.environ["RXNB_CHAT_DELAY"] = {str(delay)!r}
sys.path.insert(0, {str(EXAMPLES)!r})
import rxnb as rx
from chat_app import messages, send
store = rx.open({url!r})
rx.llm.load_litellm()
"""


WARM_UP = """
import sys
import rxnb as rx
from chat_app import send
store = rx.open(sys.argv[1])
print(send(thread_id="warm-up", text="warm up"), flush=True)
store.close()
"""


class Postgres:
    """A fresh schema on the server at `url`, dropped at the end."""

    def __init__(self, url: str) -> None:
        self.url = sa.make_url(url).set(drivername="postgresql+psycopg")
        self.admin = sa.create_engine(
            self.url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool
        )
        self.schema = f"bench_lifecycle_{uuid.uuid4().hex[:8]}"

    def describe(self) -> str:
        with self.admin.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        return f"PostgreSQL {version} at {self.url.host}:{self.url.port or 5432}"

    @contextmanager
    def fresh_schema(self) -> Iterator[str]:
        """The store URL of a new schema, dropped (with everything in it) afterwards."""
        with self.admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE SCHEMA {self.schema}")
        try:
            query = {k: v for k, v in self.url.query.items() if k != "options"}
            url = self.url.set(query={**query, "options": f"-csearch_path={self.schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            with self.admin.connect() as conn:
                conn.exec_driver_sql("SET lock_timeout = '10s'")
                conn.exec_driver_sql(f"DROP SCHEMA {self.schema} CASCADE")
            self.admin.dispose()


class Lifecycle:
    """The store (read with plain SQL), the worker, the kernel, and the trials."""

    def __init__(self, url: str, tmp: Path, cfg: Config) -> None:
        self.url, self.tmp, self.cfg = url, tmp, cfg
        self.engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
        self.env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(EXAMPLES), *sys.path]),
            "RXNB_CHAT_DELAY": str(cfg.delay),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        self.env.pop("RXNB_URL", None)
        self.env.pop("RXNB_EXECUTE", None)
        self.worker: subprocess.Popen[bytes] | None = None
        self.worker_log = tmp / "worker.log"
        self.helpers: list[subprocess.Popen[bytes]] = []
        self.kernel: KernelSession | None = None
        self.kernel_pid = 0
        self.sends = 0
        self.redone = 0
        self.odd: list[str] = []
        """What the store said that the scenario does not expect (reported, not fatal)."""

    # -- reading the store ---------------------------------------------------------------

    def rows(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(sa.text(sql), params).all())

    def replies(self, ids: list[int]) -> list[Any]:
        return [
            r
            for r in self.rows(
                "SELECT id, status, content FROM chat_message WHERE role = 'assistant'"
            )
            if r.id in ids
        ]

    def runs(self, ids: list[int]) -> list[Any]:
        """The runs generating the replies `ids`, in their order."""
        by_reply = {
            json.loads(r.args).get("message_id"): r
            for r in self.rows(
                "SELECT id, args, status, owner, attempt, due_at, started_at, interrupted "
                "FROM rx_runs WHERE function = :f",
                f=GENERATE,
            )
        }
        return [by_reply[i] for i in ids if i in by_reply]

    def generations(self, run_ids: list[str]) -> list[Any]:
        return [
            g
            for g in self.rows(
                "SELECT run_id, attempt, status, error, started_at FROM rx_generations ORDER BY id"
            )
            if g.run_id in run_ids
        ]

    # -- processes -----------------------------------------------------------------------

    def worker_tail(self, lines: int = 15) -> str:
        text = self.worker_log.read_text(errors="replace") if self.worker_log.exists() else ""
        return "\n".join(text.splitlines()[-lines:]) or "(empty)"

    def wait(self, condition: Callable[[], Any], what: str, timeout: float = WAIT) -> Any:
        """The first truthy value of `condition()`; BenchError after `timeout` seconds
        or as soon as the worker has exited."""
        deadline = time.monotonic() + timeout
        while True:
            value = condition()
            if value:
                return value
            if self.worker is not None and self.worker.poll() is not None:
                raise BenchError(
                    f"the worker exited ({self.worker.returncode}) while waiting for {what}; "
                    f"its log ends:\n{self.worker_tail()}"
                )
            if time.monotonic() > deadline:
                raise BenchError(f"timed out after {timeout:.0f} s waiting for {what}")
            time.sleep(POLL)

    def start_worker(self) -> None:
        with open(self.worker_log, "wb") as out:
            self.worker = subprocess.Popen(
                [sys.executable, "-m", "rxnb", "worker", "--url", self.url, "--import", "chat_app"],
                env=self.env,
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    def worker_owners(self) -> list[Any]:
        """The worker's executor rows in `rx_owners`."""
        return [
            o
            for o in self.rows("SELECT id, heartbeat_at FROM rx_owners")
            if self.owned_by_worker(o.id)
        ]

    def resume_worker(self) -> None:
        if self.worker is not None and self.worker.poll() is None:
            self.worker.send_signal(signal.SIGCONT)

    @contextmanager
    def worker_paused(self) -> Iterator[None]:
        """The worker stopped (SIGSTOP) while the kernel sends and claims, for at most
        PAUSE seconds (a timer resumes it even if the kernel waits on a lock it holds)."""
        assert self.worker is not None
        timer = threading.Timer(PAUSE, self.resume_worker)
        timer.daemon = True
        self.worker.send_signal(signal.SIGSTOP)
        timer.start()
        try:
            yield
        finally:
            timer.cancel()
            self.resume_worker()

    def owned_by_worker(self, owner: str | None) -> bool:
        return bool(owner) and self.worker is not None and f":{self.worker.pid}:" in str(owner)

    def owned_by_kernel(self, owner: str | None) -> bool:
        return bool(owner) and f":{self.kernel_pid}:" in str(owner)

    def warm_up(self) -> None:
        """Start the worker and the kernel, and stream one reply through the worker
        (which imports litellm), before any trial."""
        started = time.perf_counter()
        self.start_worker()
        log = self.tmp / "warm-up.log"
        with open(log, "wb") as out:
            sender = subprocess.Popen(
                [sys.executable, "-c", WARM_UP, self.url],
                env={**self.env, "RXNB_EXECUTE": "0"},  # it queues the run; only the worker runs it
                cwd=self.tmp,
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        self.helpers.append(sender)
        self.kernel = KernelSession(self.tmp)  # starts meanwhile
        self.wait(
            lambda: "rxnb worker " in self.worker_log.read_text(errors="replace"),
            "the worker to register chat_app",
        )
        self.wait(lambda: sender.poll() is not None, "the warm-up message to be sent")
        if sender.returncode != 0:
            raise BenchError(f"the warm-up sender failed:\n{log.read_text(errors='replace')}")
        reply = int(log.read_text().split()[-1])
        self.wait(
            lambda: [r.status for r in self.replies([reply])] == ["done"],
            "the warm-up reply to stream to its end in the worker",
        )
        [run] = self.runs([reply])
        if not self.owned_by_worker(run.owner):
            raise BenchError(f"the warm-up reply ran in {run.owner}, not in the worker")
        self.kernel_cell()
        print(
            f"warm-up: worker pid {self.worker.pid if self.worker else '?'} streamed one reply "
            f"to its end (litellm imported), kernel pid {self.kernel_pid} has the chat app; "
            f"{time.perf_counter() - started:.1f} s",
            flush=True,
        )

    def kernel_ready(self) -> None:
        """Wait until the new kernel answers on shell and iopub. Not
        `client.wait_for_ready`: it reads iopub too, which KernelSession's reader
        thread does, and two readers of one socket break each other's messages."""
        assert self.kernel is not None
        kernel = self.kernel
        deadline = time.monotonic() + WAIT
        while time.monotonic() < deadline:
            msg_id = kernel.client.kernel_info()
            try:
                kernel.reply(msg_id, timeout=1.0)
            except AssertionError:
                continue  # not up yet; ask again
            answered = time.monotonic() + 1.0
            while time.monotonic() < answered:
                if kernel.idle(msg_id):
                    return
                time.sleep(POLL)
        raise BenchError(f"the new kernel did not answer within {WAIT:.0f} s")

    def kernel_cell(self) -> None:
        """Run the notebook's cell in the (new) kernel; note its pid."""
        assert self.kernel is not None
        self.kernel.run(notebook(self.url, self.cfg.delay), timeout=WAIT)
        self.kernel_pid = int(self.kernel.eval("os.getpid()"))

    def cancel(self, run_ids: list[str], ids: list[int]) -> None:
        """Cancel runs from the kernel (the store's own mutation), until all have ended."""
        assert self.kernel is not None
        self.kernel.run(f"for _run in {run_ids!r}:\n    rx.cancel(_run)", timeout=WAIT)
        self.wait(
            lambda: all(r.status in TERMINAL for r in self.runs(ids)),
            f"the runs {run_ids} to end after their cancel",
        )

    # -- one trial -----------------------------------------------------------------------

    def send(self) -> tuple[list[int], list[str]] | None:
        """Send the messages; once the kernel streams every reply, (reply ids, run ids).
        None (after cancelling them) when the worker claimed any of the runs first."""
        assert self.kernel is not None
        self.sends += 1
        thread = f"trial-{self.sends}"
        n = self.cfg.replies
        with self.worker_paused():
            text = self.kernel.eval(
                f"[send(thread_id={thread!r}, text=f'question {{i}}') for i in range({n})]"
            )
            try:
                ids = [int(i) for i in ast.literal_eval(text)]
            except (ValueError, SyntaxError) as exc:
                raise BenchError(f"the kernel could not send: {text}") from exc
            deadline = time.monotonic() + PAUSE
            while time.monotonic() < deadline:  # until the kernel has claimed them all
                runs = self.runs(ids)
                if len(runs) == len(ids) and all(r.owner for r in runs):
                    break
                time.sleep(POLL)
        resumed_at = time.time()

        def settled() -> str | None:
            runs, replies = self.runs(ids), self.replies(ids)
            if len(runs) < len(ids):
                return None
            if any(r.owner and not self.owned_by_kernel(r.owner) for r in runs):
                return "spoiled"
            streaming = len(replies) == len(ids) and all(
                r.status == "streaming" and len(r.content) > 20 for r in replies
            )
            mine = all(r.status == "running" and self.owned_by_kernel(r.owner) for r in runs)
            return "ok" if streaming and mine else None

        state = self.wait(settled, f"the kernel (pid {self.kernel_pid}) to stream {ids}")
        run_ids = [r.id for r in self.runs(ids)]
        if state == "spoiled":
            self.redone += 1
            self.cancel(run_ids, ids)
            return None
        self.wait(
            lambda: any(o.heartbeat_at > resumed_at for o in self.worker_owners()),
            "the worker to beat again after its pause",
        )
        return ids, run_ids

    def trial(self, event: str) -> Sample:
        assert self.kernel is not None
        for _ in range(MAX_REDO):
            sent = self.send()
            if sent is not None:
                break
        else:
            raise BenchError(f"the worker claimed part of {MAX_REDO} sends in a row")
        ids, run_ids = sent

        with open(self.tmp / "kernels.log", "ab") as log:  # the new kernel's output
            stopped_at = time.time()
            self.kernel.manager.restart_kernel(now=event == "kill", stdout=log, stderr=log)
            call = time.time() - stopped_at

        def resumed() -> list[Any] | None:
            again = {g.run_id: g for g in self.generations(run_ids) if g.attempt >= 2}
            if len(again) < len(run_ids):
                return None
            return [again[run_id] for run_id in run_ids]

        try:
            second = self.wait(resumed, f"the replies {ids} to stream again", RESUME_WAIT)
        except BenchError as exc:
            states = "\n".join(f"  {tuple(r)}" for r in self.runs(ids))
            gens = "\n".join(f"  {tuple(g)}" for g in self.generations(run_ids))
            raise BenchError(
                f"{exc} after the {event} (K{1 if event == 'restart' else 2}, send {self.sends})"
                f"\nruns:\n{states}\ngenerations:\n{gens}\nworker log ends:\n{self.worker_tail()}"
            ) from None
        runs = self.runs(ids)
        for run in runs:
            if not self.owned_by_worker(run.owner):
                raise BenchError(f"run {run.id} streams again in {run.owner}, not in the worker")
            if run.interrupted != WHY[event]:
                self.odd.append(f"{event}: run {run.id} interrupted {run.interrupted!r}")
        sample = Sample(
            last=max(g.started_at for g in second) - stopped_at,
            first=min(g.started_at for g in second) - stopped_at,
            requeued=max(r.due_at for r in runs) - stopped_at,
            claimed=max(r.started_at for r in runs) - stopped_at,
            call=call,
        )

        # Ready for the next trial: the new kernel has the chat app, the worker is idle.
        self.kernel_ready()
        self.kernel_cell()
        self.cancel(run_ids, ids)
        return sample


# -- the figures -------------------------------------------------------------------------


def s(seconds: float) -> str:
    return f"{seconds:.2f} s"


def measure(bench: Lifecycle, key: str, event: str, name: str, target: float) -> Figure:
    n = bench.cfg.trials
    call = "restart_kernel(now=True)" if event == "kill" else "restart_kernel(now=False)"
    print(f"{key}: {name}, {call}, {n} trials of {bench.cfg.replies} replies each", flush=True)
    samples = []
    for i in range(n):
        started = time.perf_counter()
        sample = bench.trial(event)
        samples.append(sample)
        print(
            f"  trial {i + 1}/{n}: all streaming again {s(sample.last)} after the event "
            f"(first {s(sample.first)}; queued again by {s(sample.requeued)}, claimed by "
            f"{s(sample.claimed)}); restart_kernel returned after {s(sample.call)}; "
            f"trial {time.perf_counter() - started:.1f} s",
            flush=True,
        )

    def p(values: list[float], q: float) -> str:
        return s(report.percentile(values, q))

    lasts = [x.last for x in samples]
    for label, values in (
        ("queued again ", [x.requeued for x in samples]),
        ("claimed      ", [x.claimed for x in samples]),
        ("first reply  ", [x.first for x in samples]),
        ("every reply  ", lasts),
    ):
        print(f"  event -> {label} p50 {p(values, 50)}  p90 {p(values, 90)}  max {s(max(values))}")
    p50 = report.percentile(lasts, 50)
    return Figure(
        key,
        name,
        f"p50 {p(lasts, 50)} / p90 {p(lasts, 90)} (n={n})",
        f"p50 <= {target:g} s",
        p50 <= target,
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="3 trials per figure")
    parser.add_argument(
        "--url",
        help="a PostgreSQL server (database) URL: the bench runs in a fresh schema there "
        "(default: a SQLite file in a temporary folder)",
    )
    parser.add_argument("--trials", type=int, help="trials per figure (default 10, quick 3)")
    parser.add_argument("--replies", type=int, help="replies streaming at each event (3)")
    parser.add_argument("--delay", type=float, help="seconds per token of the model (0.05)")
    args = parser.parse_args(argv)
    cfg = QUICK if args.quick else FULL
    cfg = Config(
        trials=args.trials or cfg.trials,
        replies=args.replies or cfg.replies,
        delay=args.delay or cfg.delay,
    )
    report.print_header(args.quick)
    started = time.perf_counter()
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-lifecycle-"))
    figures: list[Figure] = []
    redone = sends = 0
    odd: list[str] = []
    pg = Postgres(args.url) if args.url else None
    try:
        with pg.fresh_schema() if pg else sqlite_url(tmp) as url:
            where = (
                f"{pg.describe()}, schema {pg.schema}"
                if pg
                else "a SQLite file (WAL) in a temp folder"
            )
            print(
                f"store: {where}; model rxnb/scripted at {cfg.delay:g} s per token; "
                f"{cfg.replies} replies streaming in the kernel at each event; one `rxnb worker` "
                "on the same host",
                flush=True,
            )
            bench = Lifecycle(url, tmp, cfg)
            try:
                bench.warm_up()
                figures.append(
                    measure(bench, "K1", "restart", "graceful restart -> streaming in worker", 1.0)
                )
                report.announce(figures[-1])
                figures.append(
                    measure(bench, "K2", "kill", "kill -9 of kernel -> streaming in worker", 2.0)
                )
                report.announce(figures[-1])
            finally:
                redone, sends, odd = bench.redone, bench.sends, bench.odd
                teardown(bench)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"\nsends redone because the worker claimed part of them: {redone} of {sends}")
    for line in odd:
        print(f"  !! {line}")
    report.print_measured(figures)
    report.print_outcome(figures, args.quick, started)
    return 0


@contextmanager
def sqlite_url(tmp: Path) -> Iterator[str]:
    yield f"sqlite:///{tmp / 'lifecycle.db'}"


def teardown(bench: Lifecycle) -> None:
    """End the kernel, the worker and any helper; each step whatever the others did."""
    if bench.kernel is not None:
        try:
            bench.kernel.close()
        except Exception as exc:  # the manager may be mid-restart after an error
            print(f"(closing the kernel: {exc!r})", file=sys.stderr)
            with suppress(Exception):
                bench.kernel.manager.shutdown_kernel(now=True)
    bench.resume_worker()
    procs = [p for p in (bench.worker, *bench.helpers) if p is not None]
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for proc in procs:
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    bench.engine.dispose()


if __name__ == "__main__":
    sys.exit(main())

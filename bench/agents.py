"""rxnb agent figures: `python bench/agents.py [--quick]` (SQLite).

A1  rxnb's own cost per agent step: the store work of a turn (journal entries and
    message writes, timed at the store's write/read calls) per model call, offline
    model with no delay and a tool that returns at once                   p50 <= 2 ms
    (recording the run's end is run bookkeeping, left out like its claim: A1e)
A1c the CPU time of that store work (its waits for the GIL and locks left out)   info
A1e the store work of recording the turn's run's end, per turn                   info
A1b the same turns' whole time besides the model's stream and the tool, per model
    call (includes the executor's claim and litellm's stream wrapper)          info
A1l the CPU time of litellm's own threads (its logging after each stream, its cost
    lookups) per model call: A1's store work shares the one GIL with it, so A1 less
    A1c is mostly time spent waiting while these (and rxnb's scheduler and reactor,
    A1o) run                                                                   info
A2  a tool call whose arguments stream 100,000 characters (1,000 pieces from a
    loopback OpenAI-compatible server, litellm's real HTTP path), shown in
    `agent.chat`: bytes the widget sends / the arguments' length            <= 1.2x
                 store writes of the model call                                  <= 100
A2b the same at 25,000 and 100,000 characters: model call time ratio        ~4x (linear)

Widgets run ipywidgets' real code over a comm that records each message's JSON bytes.
Exits 0 whether targets pass or fail (the table says which).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import comm

import rxnb as rx
from rxnb.agents import _model_call
from rxnb.execution import Executor
from rxnb.llm import load_litellm

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent / "tests" / "llm"))
from _report import Measured, percentile, print_header, print_measured  # noqa: E402
from fake_openai import FakeOpenAI, ToolCalls  # noqa: E402
from widgets import Recorder  # noqa: E402


class StoreClock:
    """Seconds spent in the store's write, insert and read calls (all threads); those
    recording a run's end (`Executor._record_end`) apart, in `ends`."""

    def __init__(self, store: rx.Store) -> None:
        self.seconds = 0.0
        self.cpu = 0.0
        """CPU seconds of the turn's threads in those calls (waits for locks excluded)."""
        self.ends = 0.0
        self.by_thread: dict[str, float] = {}
        self.lock = threading.Lock()
        self.ending = threading.local()
        database = store.database
        for name in ("write", "insert_rows", "read"):
            setattr(database, name, self._timed(getattr(database, name)))
        real = Executor._record_end
        ending = self.ending

        def record_end(executor: Executor, *args: Any) -> None:
            ending.on = True
            try:
                real(executor, *args)
            finally:
                ending.on = False

        Executor._record_end = record_end  # type: ignore[method-assign]

    def _timed(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                spent, spent_cpu = time.perf_counter() - start, time.thread_time() - cpu
                name = threading.current_thread().name
                with self.lock:
                    self.by_thread[name] = self.by_thread.get(name, 0.0) + spent
                    if getattr(self.ending, "on", False):
                        self.ends += spent
                    elif name.startswith(("rxnb-run", "rxnb-step")):  # the turn's own threads
                        self.seconds += spent
                        self.cpu += spent_cpu

        return timed

    def take(self) -> float:
        with self.lock:
            value, self.seconds = self.seconds, 0.0
        return value

    def take_cpu(self) -> float:
        with self.lock:
            value, self.cpu = self.cpu, 0.0
        return value

    def take_ends(self) -> float:
        with self.lock:
            value, self.ends = self.ends, 0.0
        return value


def thread_cpu() -> dict[str, float]:
    """CPU seconds so far of each live thread, by name (Linux)."""
    found: dict[str, float] = {}
    for thread in threading.enumerate():
        try:
            clock = time.pthread_getcpuclockid(thread.ident or 0)
            found[f"{thread.name}#{thread.ident}"] = time.clock_gettime(clock)
        except (OSError, AttributeError):  # ended meanwhile, or not Linux
            continue
    return found


def cpu_spent(before: dict[str, float], after: dict[str, float], *prefixes: str) -> float:
    """CPU seconds the threads named with one of `prefixes` spent from `before` to `after`."""
    return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefixes))


class StreamClock:
    """Seconds spent inside the model's stream (litellm and the provider)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        real = _model_call.stream

        def timed(*args: Any, **kwargs: Any) -> Iterator[str]:
            it = real(*args, **kwargs)
            while True:
                start = time.perf_counter()
                try:
                    text = next(it)
                except StopIteration:
                    self.seconds += time.perf_counter() - start
                    return
                self.seconds += time.perf_counter() - start
                yield text

        _model_call.stream = timed  # type: ignore[assignment]

    def take(self) -> float:
        value, self.seconds = self.seconds, 0.0
        return value


def a1(store: rx.Store, turns: int) -> list[Measured]:
    print(f"A1: {turns} turns of 2 model calls and 1 tool call, offline model, no delay")

    @rx.tool
    def noop(n: int) -> int:
        """Returns n."""
        return n

    agent = rx.Agent(
        "bench-steps",
        model="rxnb/scripted",
        tools=[noop],
        delay=0.0,
        turns=[{"tool_calls": [{"name": "noop", "arguments": {"n": 1}}]}, {"script": "done"}],
    )
    agent.send("warm", "warm up").result(timeout=60)  # litellm's first call, the tables
    stores, streams = StoreClock(store), StreamClock()
    per_step, besides, cpu, ends, litellm, others = [], [], [], [], [], []
    for i in range(turns):
        stores.take(), streams.take(), stores.take_cpu(), stores.take_ends()
        before = thread_cpu()
        run = agent.send(f"a1-{i}", "go")
        run.result(timeout=60)
        after = thread_cpu()
        litellm.append(cpu_spent(before, after, "litellm") / 2)
        others.append(cpu_spent(before, after, "rxnb-reactor", "rxnb-scheduler", "rxnb-change") / 2)
        row = run.run()
        assert row.started_at is not None
        assert row.finished_at is not None
        store_seconds, stream_seconds = stores.take(), streams.take()
        per_step.append(store_seconds / 2)
        cpu.append(stores.take_cpu() / 2)
        ends.append(stores.take_ends())
        besides.append((row.finished_at - row.started_at - stream_seconds) / 2)
    spent = sorted(stores.by_thread.items(), key=lambda kv: -kv[1])[:6]
    print(
        "  store time by thread:",
        ", ".join(f"{n} {s * 1000 / turns:.1f} ms/turn" for n, s in spent),
    )
    p50, p90 = percentile(per_step, 50) * 1000, percentile(per_step, 90) * 1000
    b50 = percentile(besides, 50) * 1000
    c50 = percentile(cpu, 50) * 1000
    e50 = percentile(ends, 50) * 1000
    l50, o50 = percentile(litellm, 50) * 1000, percentile(others, 50) * 1000
    print(f"  store work per model call: p50 {p50:.2f} ms, p90 {p90:.2f} ms; whole {b50:.2f} ms")
    return [
        Measured(
            "A1",
            "store work per agent step",
            f"p50 {p50:.2f} ms (p90 {p90:.2f})",
            "p50 <= 2 ms",
            p50 <= 2.0,
        ),
        Measured("A1c", "CPU of that store work per step", f"p50 {c50:.2f} ms", "info", None),
        Measured("A1e", "recording the run's end, per turn", f"p50 {e50:.2f} ms", "info", None),
        Measured("A1b", "all besides model and tool, per step", f"p50 {b50:.2f} ms", "info", None),
        Measured("A1l", "CPU of litellm's threads, per step", f"p50 {l50:.2f} ms", "info", None),
        Measured("A1o", "CPU of rxnb's scheduler/reactor/feed", f"p50 {o50:.2f} ms", "info", None),
    ]


def a2(store: rx.Store, sizes: list[int]) -> list[Measured]:
    figures: list[Measured] = []
    durations: dict[int, float] = {}
    for size in sizes:
        body = ("lorem ipsum dolor sit amet " * (size // 27 + 1))[: size - 20]
        arguments = json.dumps({"to": "ana", "body": body})
        server = FakeOpenAI(plan=[ToolCalls([], [("save", arguments)], pieces=1000)])

        @rx.tool
        def save(to: str, body: str) -> str:
            """Saves."""
            return f"{len(body)} characters"

        agent = rx.Agent(
            f"bench-args-{size}",
            model="openai/fake",
            api_base=server.api_base,
            api_key="sk-bench",
            tools=[save],
            max_steps=1,
        )
        writes = [0]
        real = _model_call._ReplyWriter._write

        def counted(self: Any, db: Any, real: Any = real, writes: list[int] = writes) -> Any:
            writes[0] += 1
            return real(self, db)

        _model_call._ReplyWriter._write = counted  # type: ignore[method-assign]
        thread = f"a2-{size}"
        widget = agent.chat(thread)
        Recorder.take()
        start = time.perf_counter()
        run = agent.send(thread, "save it")
        try:
            run.wait(120)
        finally:
            _model_call._ReplyWriter._write = real  # type: ignore[method-assign]
            server.close()
        durations[size] = _model_step_seconds(store, run.id)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:  # the widget's last message
            calls = [m for m in rx.agents.messages(thread) if m.role == "tool"]
            shown = widget.data
            if (
                calls
                and calls[0].status not in ("streaming", "pending", "running")
                and _shows(shown, calls[0].arguments)
            ):
                break
            time.sleep(0.01)
        sent = sum(size for _, size, _ in Recorder.take())
        widget.close()
        elapsed = time.perf_counter() - start
        ratio = sent / len(arguments)
        print(
            f"A2: {len(arguments):,} characters of arguments: {writes[0]} writes, "
            f"{sent:,} bytes sent ({ratio:.2f}x), model call {durations[size]:.2f} s, "
            f"turn {elapsed:.2f} s"
        )
        if size == max(sizes):
            figures.append(
                Measured(
                    "A2", "bytes sent / arguments (100k)", f"{ratio:.2f}x", "<= 1.2x", ratio <= 1.2
                )
            )
            figures.append(
                Measured(
                    "A2w",
                    "store writes of that model call",
                    str(writes[0]),
                    "<= 100",
                    writes[0] <= 100,
                )
            )
    if len(sizes) > 1:
        small, large = min(sizes), max(sizes)
        growth = durations[large] / durations[small]
        figures.append(
            Measured(
                "A2b",
                f"model call time {large // 1000}k / {small // 1000}k",
                f"{growth:.1f}x",
                f"~{large / small:.0f}x",
                None,
            )
        )
    return figures


def _shows(data: Any, arguments: str) -> bool:
    try:
        columns = data["columns"]
        rows = [dict(zip(columns, row, strict=True)) for row in data["rows"]]
    except (KeyError, TypeError):
        return False
    return any(r.get("arguments") == arguments for r in rows)


def _model_step_seconds(store: rx.Store, run_id: str) -> float:
    from sqlmodel import select

    from rxnb.workflows import JournalEntry

    entries = store.database.read(
        lambda db: db.exec(
            select(JournalEntry).where(JournalEntry.run_id == run_id, JournalEntry.name == "model")
        ).all()
    )[0]
    return sum((e.finished_at or e.started_at) - e.started_at for e in entries)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer turns")
    quick = parser.parse_args(argv).quick
    print_header(quick)
    load_litellm()
    comm.create_comm = Recorder
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-agents-"))
    store = rx.open(f"sqlite:///{tmp / 'bench.db'}")
    try:
        figures = a1(store, 20 if quick else 100)
        figures += a2(store, [100_000] if quick else [25_000, 100_000])
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    print_measured(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())

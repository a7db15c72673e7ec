"""rxnb paged chat figures: `python bench/chat_paging.py [--quick]`.

C1  per-write cost, 10,000-message thread, its agent chat live: a stream write
    (mutation) -> the widget's message sent, p50                       <= 5 ms
C1c the process's CPU time over the same span (all threads), p50      info
C1b the same from the mutation's return (commit -> message sent)       info
C1d where C1 goes: the mutation, the page's query (its run inside the
    reactor), the rest of the reaction (JSON, widget, dispatch), p50   info
C2  the same on a 100-message thread (baseline): C1 / C2                info
C3  the same with the whole thread followed (the chat before paging)   info
C4  first paint: widget made and its state's size, paged vs whole      info

Each write appends 600 characters to the thread's last message (a streaming reply's
flush: big enough that the chat sends it at once rather than batching it), then waits
for the widget's message; writes are spaced so that each is its own update. Widgets
run ipywidgets' real code over a comm that records each message instead of writing
to a socket, so the figures are rxnb's own cost up to the kernel's iopub channel.
The two paged chats are live together and their writes alternate. litellm is
imported before measuring (a chat imports it in the background when first shown:
seconds of CPU that would otherwise weigh on the first writes). SQLite, one
process (`--url postgresql+psycopg://...` for another store). Exits 0 whether targets
pass or fail (the table says which).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, ClassVar

import comm
from comm.base_comm import BaseComm
from sqlmodel import col, select

import rxnb as rx
import rxnb.widgets._agent_chat as agent_chat_module
from rxnb.agents import AgentChatQuery, Message
from rxnb.agents._pages import AgentChatPages
from rxnb.llm import load_litellm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import Measured, percentile, print_header, print_measured, print_summary

CHUNK = "word " * 120  # 600 characters


class Recorder(BaseComm):  # type: ignore[misc]
    """A comm that keeps (monotonic time, bytes) of each custom message."""

    log: ClassVar[list[tuple[float, int]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def publish_msg(self, msg_type: str, data: Any = None, *args: Any, **keys: Any) -> None:
        if msg_type == "comm_msg" and data and data.get("method") == "custom":
            size = len(json.dumps(data, separators=(",", ":")).encode())
            with Recorder.lock:
                Recorder.log.append((time.monotonic(), size))


@rx.mutation
def fill(db: rx.Writer, thread_id: str, n: int) -> None:
    for i in range(n):
        db.add(Message(thread_id=thread_id, role=("user", "assistant")[i % 2], text=f"m{i}"))
    db.add(Message(thread_id=thread_id, role="assistant", status="streaming", text=""))


@rx.mutation
def grow(db: rx.Writer, message_id: int, text: str) -> None:
    last = db.get(Message, message_id)
    assert last is not None
    last.text += text


@rx.query
def last_id(db: rx.Reader, thread_id: str) -> int:
    newest = select(Message.id).where(Message.thread_id == thread_id)
    found = db.exec(newest.order_by(col(Message.id).desc()).limit(1)).first()
    assert found is not None
    return found


@contextmanager
def whole_thread() -> Iterator[None]:
    """The agent chat as it was before paging: one query of the whole thread."""
    paged = agent_chat_module.AgentChatPages
    agent_chat_module.AgentChatPages = AgentChatQuery  # type: ignore[misc,assignment]
    try:
        yield
    finally:
        agent_chat_module.AgentChatPages = paged  # type: ignore[misc]


class PageRuns:
    """The time spent in the agent chat's page query (`AgentChatPages.run`)."""

    total: ClassVar[float] = 0.0

    def __enter__(self) -> None:
        original = AgentChatPages.run

        def timed(pages: AgentChatPages, reader: rx.Reader, args: Any) -> Any:
            start = time.perf_counter()
            try:
                return original(pages, reader, args)
            finally:
                PageRuns.total += time.perf_counter() - start

        self.original = original
        AgentChatPages.run = timed  # type: ignore[method-assign]

    def __exit__(self, *exc_info: object) -> None:
        AgentChatPages.run = self.original  # type: ignore[method-assign]


def wait_sent(before: int, timeout: float = 30.0) -> float:
    deadline = time.monotonic() + timeout
    while True:
        with Recorder.lock:
            if len(Recorder.log) > before:
                return Recorder.log[before][0]
        if time.monotonic() > deadline:
            raise TimeoutError("bench: the chat sent nothing after a write")
        time.sleep(0.0005)


def per_write(
    agent: rx.Agent, threads: list[tuple[str, bool]], writes: int
) -> list[dict[str, float]]:
    """For each (thread, paged) chat: p50 write -> message sent (ms), the reaction alone
    (commit -> sent), first paint (ms) and the first state's size (kB). The chats are
    live together and their writes alternate, so that load and the database's state
    weigh on each alike."""
    widgets, states, paints, ids = [], [], [], []
    for thread, paged in threads:
        start = time.perf_counter()
        if paged:
            widget = agent.chat(thread)
        else:
            with whole_thread():
                widget = agent.chat(thread)
        state = json.dumps(widget.get_state("payload")["payload"], separators=(",", ":"))
        paints.append(time.perf_counter() - start)
        widgets.append(widget)
        states.append(len(state.encode()) / 1000)
        ids.append(last_id(thread_id=thread))
    time.sleep(0.2)
    costs: list[list[float]] = [[] for _ in threads]
    reactions: list[list[float]] = [[] for _ in threads]
    cpus: list[list[float]] = [[] for _ in threads]
    mutations: list[list[float]] = [[] for _ in threads]
    queries: list[list[float]] = [[] for _ in threads]
    for _ in range(writes):
        for i, message_id in enumerate(ids):
            with Recorder.lock:
                before = len(Recorder.log)
            queried = PageRuns.total
            cpu = time.process_time()
            began = time.monotonic()
            grow(message_id=message_id, text=CHUNK)
            committed = time.monotonic()
            sent = wait_sent(before)
            cpus[i].append(time.process_time() - cpu)
            costs[i].append(sent - began)
            reactions[i].append(max(0.0, sent - committed))
            mutations[i].append(committed - began)
            queries[i].append(PageRuns.total - queried)
            time.sleep(0.05)  # past the widget's frame: each write is its own update
    for widget in widgets:
        widget.close()
    out = []
    for i in range(len(threads)):
        cost, reaction = sorted(costs[i]), sorted(reactions[i])
        out.append(
            {
                "p50": cost[len(cost) // 2] * 1000,
                "p90": cost[int(len(cost) * 0.9)] * 1000,
                "cpu": percentile(cpus[i], 50) * 1000,
                "mutation": percentile(mutations[i], 50) * 1000,
                "query": percentile(queries[i], 50) * 1000,
                "reaction": reaction[len(reaction) // 2] * 1000,
                "paint": paints[i] * 1000,
                "state_kb": states[i],
            }
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer writes")
    parser.add_argument("--url", help="a store URL (default: a new SQLite file); its tables fill")
    options = parser.parse_args(argv)
    quick = options.quick
    print_header(quick)
    writes = 20 if quick else 60
    comm.create_comm = Recorder
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-chat-paging-"))
    store = rx.open(options.url or f"sqlite:///{tmp / 'bench.db'}")
    began = time.monotonic()
    try:
        load_litellm()
        agent = rx.Agent("bench-pager", model="rxnb/echo")
        fill(thread_id="long", n=9_999)
        fill(thread_id="short", n=99)
        fill(thread_id="long-whole", n=9_999)
        with PageRuns():
            long, short = per_write(agent, [("long", True), ("short", True)], writes)
        (whole,) = per_write(agent, [("long-whole", False)], max(5, writes // 4))
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    for name, f in (("10,000 paged", long), ("100 paged", short), ("10,000 whole", whole)):
        print(
            f"  {name:>13}: write -> sent p50 {f['p50']:.2f} ms, p90 {f['p90']:.2f} ms "
            f"(commit -> sent p50 {f['reaction']:.2f} ms); CPU p50 {f['cpu']:.2f} ms; "
            f"first paint {f['paint']:.0f} ms, first state {f['state_kb']:.0f} kB"
        )
    rest = max(0.0, long["reaction"] - long["query"])
    print(
        f"  10,000 paged, where a write's time goes (p50s): mutation {long['mutation']:.2f} ms, "
        f"page query {long['query']:.2f} ms, rest of the reaction {rest:.2f} ms"
    )
    figures = [
        Measured(
            "C1",
            "write -> sent, 10,000 messages, paged (p50)",
            f"{long['p50']:.2f} ms",
            "<= 5 ms",
            long["p50"] <= 5,
        ),
        Measured(
            "C1c",
            "CPU time of the process over C1 (p50)",
            f"{long['cpu']:.2f} ms",
            "info",
            None,
        ),
        Measured(
            "C1d",
            "C1: mutation + page query + rest (p50s)",
            f"{long['mutation']:.2f} + {long['query']:.2f} + {rest:.2f} ms",
            "info",
            None,
        ),
        Measured(
            "C1b",
            "commit -> sent, same (the reaction alone, p50)",
            f"{long['reaction']:.2f} ms",
            "info",
            None,
        ),
        Measured(
            "C2",
            "C1 / the same on 100 messages",
            f"{long['p50'] / short['p50']:.2f}x ({short['p50']:.2f} ms)",
            "info",
            None,
        ),
        Measured(
            "C3",
            "write -> sent, 10,000 messages, whole thread",
            f"{whole['p50']:.1f} ms ({whole['p50'] / long['p50']:.0f}x C1)",
            "info",
            None,
        ),
        Measured(
            "C4",
            "first paint / state, paged vs whole",
            f"{long['paint']:.0f} ms {long['state_kb']:.0f} kB vs "
            f"{whole['paint']:.0f} ms {whole['state_kb']:.0f} kB",
            "info",
            None,
        ),
    ]
    print_measured(figures)
    print_summary(sum(1 for f in figures if f.passed), 1, quick, time.monotonic() - began)
    return 0


if __name__ == "__main__":
    sys.exit(main())

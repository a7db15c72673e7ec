"""rxnb live widget figures: `python bench/widgets.py [--quick]`.

W1  commit -> widget message sent (kernel side), low write rate    p50 <= 5 ms
W2  at 1,000 writes/s: messages a widget sends per second          <= 60/s, last state kept
W3  appending 1,000 rows one at a time: bytes sent / final table    <= 1.5x

Widgets run ipywidgets' real code; the comm underneath records each message (its
JSON bytes and the time it was handed to the comm) instead of writing to a socket,
so the figures are rxnb's own cost up to the kernel's iopub channel. Exits 0 whether
targets pass or fail (the table says which); an exception exits nonzero.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, ClassVar

import comm
from comm.base_comm import BaseComm
from sqlmodel import Field, SQLModel, select

import rxnb as rx
from rxnb.widgets import LiveWidget

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import percentile


class Entry(SQLModel, table=True):
    __tablename__ = "bench_entry"
    id: int | None = Field(default=None, primary_key=True)
    feed: str = Field(index=True)
    author: str = "assistant"
    text: str = ""


@rx.query
def entries(db: rx.Reader, feed: str) -> list[Entry]:
    return db.exec(select(Entry).where(Entry.feed == feed).order_by(Entry.id)).all()


@rx.query
def entry_count(db: rx.Reader, feed: str) -> int:
    return len(db.exec(select(Entry.id).where(Entry.feed == feed)).all())


@rx.mutation
def add_entry(db: rx.Writer, feed: str, text: str) -> None:
    db.add(Entry(feed=feed, text=text))


class Recorder(BaseComm):  # type: ignore[misc]
    """A comm that keeps (monotonic time, bytes, content) of each custom message."""

    log: ClassVar[list[tuple[float, int, dict[str, Any]]]] = []
    lock: ClassVar[threading.Lock] = threading.Lock()

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        if msg_type == "comm_msg" and data and data.get("method") == "custom":
            size = len(json.dumps(data, separators=(",", ":")).encode())
            with Recorder.lock:
                Recorder.log.append((time.monotonic(), size, data["content"]))

    @classmethod
    def take(cls) -> list[tuple[float, int, dict[str, Any]]]:
        with cls.lock:
            out, cls.log = cls.log, []
        return out


def until(condition: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("bench: a widget did not reach its final state in time")
        time.sleep(0.001)


def w1(n: int) -> tuple[str, bool]:
    print(f"W1: commit -> message sent, {n} writes 100 ms apart")
    widget = LiveWidget(entry_count, {"feed": "w1"})
    Recorder.take()
    lags: list[float] = []
    for i in range(n):
        sent_before = len(Recorder.log)
        add_entry(feed="w1", text=f"entry {i}")
        committed = time.monotonic()
        until(lambda before=sent_before: len(Recorder.log) > before)
        lags.append(Recorder.log[-1][0] - committed)
        time.sleep(0.1)  # low rate: every write is its own update
    widget.close()
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    print(
        "  slowest:",
        ", ".join(
            f"#{i} {lag * 1000:.1f} ms"
            for lag, i in sorted(((lag, i) for i, lag in enumerate(lags)), reverse=True)[:5]
        ),
    )
    print(f"  p50 {p50 * 1000:.2f} ms  p99 {p99 * 1000:.2f} ms  max {max(lags) * 1000:.2f} ms")
    return f"p50 {p50 * 1000:.2f} ms, p99 {p99 * 1000:.2f} ms", p50 <= 0.005


def w2(seconds: float) -> tuple[str, bool]:
    print(f"W2: writes at 1,000/s for {seconds:.0f} s, one live count widget")
    widget = LiveWidget(entry_count, {"feed": "w2"})
    Recorder.take()
    total = int(1000 * seconds)
    start = time.monotonic()
    for i in range(total):
        add_entry(feed="w2", text="x")
        ahead = start + (i + 1) / 1000 - time.monotonic()
        if ahead > 0:
            time.sleep(ahead)
    elapsed = time.monotonic() - start
    until(lambda: widget.data["value"] == total)
    log = Recorder.take()
    widget.close()
    rate = total / elapsed
    window = [t for t, _, _ in log if t <= start + elapsed]
    per_second = len(window) / elapsed
    last = log[-1][2]
    final = last.get("payload", {}).get("value") if last["type"] == "full" else None
    print(f"  write rate {rate:.0f}/s, {len(log)} messages, {per_second:.1f}/s, last value {final}")
    ok = per_second <= 60 and final == total
    return f"{per_second:.1f} msg/s at {rate:.0f} writes/s; last {final}/{total}", ok


def w3(rows: int, pace: float | None) -> tuple[str, bool, float]:
    how = "as fast as they commit" if pace is None else f"{1 / pace:.0f}/s"
    print(f"W3: append {rows} rows one at a time ({how}), one live table")
    feed = f"w3-{pace}"
    widget = LiveWidget(entries, {"feed": feed})
    Recorder.take()
    for i in range(rows):
        add_entry(feed=feed, text=f"the assistant's reply number {i}, a short sentence")
        if pace is not None:
            time.sleep(pace)
    until(lambda: len(widget.data["rows"]) == rows)
    log = Recorder.take()
    final = widget.data
    widget.close()
    sent = sum(size for _, size, _ in log)
    table = len(
        json.dumps(
            {"method": "custom", "content": {"type": "full", "payload": final}},
            separators=(",", ":"),
        ).encode()
    )
    as_dicts = len(
        json.dumps(
            [dict(zip(final["columns"], r, strict=True)) for r in final["rows"]],
            separators=(",", ":"),
        ).encode()
    )
    ratio = sent / table
    print(
        f"  {len(log)} messages, {sent:,} bytes; final table {table:,} bytes as one message "
        f"({as_dicts:,} as JSON objects); ratio {ratio:.2f}"
    )
    return f"{ratio:.2f}x ({len(log)} msgs, {sent:,} B / {table:,} B)", ratio <= 1.5, ratio


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer iterations")
    quick = parser.parse_args(argv).quick
    comm.create_comm = Recorder
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-widgets-"))
    store = rx.open(f"sqlite:///{tmp / 'bench.db'}")
    try:
        results = [
            ("W1", "commit -> message sent, low rate", *w1(30 if quick else 100), "p50 <= 5 ms"),
            ("W2", "messages/s at 1,000 writes/s", *w2(1 if quick else 3), "<= 60/s, last kept"),
        ]
        fast = w3(300 if quick else 1000, None)
        results.append(("W3", "append rows: bytes / final table", fast[0], fast[1], "<= 1.5x"))
        paced = w3(100 if quick else 300, 0.05)
        results.append(("W3b", "same, 20 rows/s (a message per row)", paced[0], paced[1], "info"))
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print()
    width = max(len(r[2]) for r in results)
    for key, name, measured, passed, target in results:
        verdict = "info" if target == "info" else ("PASS" if passed else "FAIL")
        print(f"{key:4} {name:38} {measured:{width}}  {target:18} {verdict}")
    print(f"\npython {sys.version.split()[0]}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

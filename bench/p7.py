"""P7: 100 concurrent actions in one real kernel, each writing 50 updates over 5 s.

    python bench/p7.py [--quick]

Measures, from outside the kernel (jupyter_client reading iopub):
- live widget lag: each update stores the time it was written; the lag is the time the
  widget message carrying that update arrived, minus that time (p50, p99; target p99
  <= 100 ms). Updates coalesced into a later message count with that message's time.
- a `1+1` cell's round trip (execute request -> reply), every 100 ms meanwhile
  (p50, max; target <= 50 ms).
Exits 0 whether targets pass or fail (the table says which).
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests" / "widgets"))
from browser_model import BrowserModel  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from _report import percentile  # noqa: E402

SETUP = """
import time
import rxnb as rx
from sqlmodel import SQLModel, Field, select

class Tick(SQLModel, table=True):
    id: int = Field(primary_key=True)
    n: int = 0
    written: float = 0.0

@rx.query
def ticks(db: rx.Reader) -> list[Tick]:
    return db.exec(select(Tick).order_by(Tick.id)).all()

@rx.mutation
def tick(db: rx.Writer, tick_id: int, n: int) -> None:
    row = db.get(Tick, tick_id) or Tick(id=tick_id)
    row.n, row.written = n, time.time()
    db.add(row)

@rx.action
def ticker(ctx: rx.ActionContext, tick_id: int, updates: int, seconds: float) -> int:
    for n in range(1, updates + 1):
        ctx.mutation(tick, tick_id=tick_id, n=n)
        ctx.wait(seconds / updates)
    return updates

store = rx.open()
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 actions instead of 100")
    actions = 20 if parser.parse_args(argv).quick else 100
    updates, seconds = 50, 5.0
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-p7-"))
    env = {**os.environ, "RXNB_WORKERS": str(actions), "LITELLM_LOCAL_MODEL_COST_MAP": "True"}
    manager = KernelManager(kernel_name="python3")
    manager.kernel_spec.argv[0] = sys.executable
    manager.start_kernel(cwd=str(tmp), env=env)
    client = manager.client()
    client.start_channels()
    client.wait_for_ready(timeout=60)
    iopub: queue.Queue[tuple[float, dict[str, Any]]] = queue.Queue()
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            try:
                msg = client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            iopub.put((time.time(), msg))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()

    def run(code: str) -> float:
        """Execute `code`; seconds from request to reply (iopub is read by `read`)."""
        started = time.perf_counter()
        msg_id = client.execute(code)
        while True:
            reply = client.get_shell_msg(timeout=60)
            if reply["parent_header"].get("msg_id") == msg_id:
                break
        assert reply["content"]["status"] == "ok", reply["content"]
        return time.perf_counter() - started

    try:
        run(SETUP)
        run("ticks.live()")
        run(
            f"handles = [ticker.start(tick_id=i, updates={updates}, seconds={seconds}) "
            f"for i in range({actions})]"
        )
        started = time.time()
        cells: list[float] = []
        while time.time() - started < seconds + 1:
            cells.append(run("1+1"))
            time.sleep(0.1)
        run("for h in handles: h.wait(60)\nstore.wait_idle()\nrx.widgets.settle()")
    finally:
        stop.set()
        reader.join(5)
        client.stop_channels()
        manager.shutdown_kernel(now=True)

    messages = []
    while not iopub.empty():
        messages.append(iopub.get())
    opened = [
        m
        for _, m in messages
        if m["msg_type"] == "comm_open" and "payload" in m["content"]["data"]["state"]
    ]
    comm_id = opened[0]["content"]["comm_id"]
    browser = BrowserModel(opened[0]["content"]["data"]["state"]["payload"])
    seen: dict[int, int] = {}
    lags: list[float] = []
    count = 0
    for received, m in messages:
        if m["msg_type"] != "comm_msg" or m["content"]["comm_id"] != comm_id:
            continue
        data = m["content"]["data"]
        if data.get("method") != "custom":
            continue
        count += 1
        browser.apply(data["content"])
        columns = browser.payload["columns"]
        for row in browser.payload["rows"]:
            r = dict(zip(columns, row, strict=True))
            if r["n"] > seen.get(r["id"], 0):
                seen[r["id"]] = r["n"]
                lags.append(received - r["written"])
    complete = len(seen) == actions and all(n == updates for n in seen.values())
    p50, p99 = percentile(lags, 50), percentile(lags, 99)
    c50, cmax = percentile(cells, 50), max(cells)
    print(
        "  slowest cells (index: ms):",
        sorted(((round(c * 1000, 1), i) for i, c in enumerate(cells)), reverse=True)[:4],
    )
    print(f"P7: {actions} actions x {updates} updates over {seconds:.0f} s, one live table")
    print(f"  widget messages: {count}; final state complete: {complete}")
    print(
        f"  widget lag (write -> message received): p50 {p50 * 1000:.1f} ms, "
        f"p99 {p99 * 1000:.1f} ms, max {max(lags) * 1000:.1f} ms  "
        f"[{'PASS' if p99 <= 0.1 and complete else 'FAIL'} p99 <= 100 ms]"
    )
    print(
        f"  `1+1` round trip while running: p50 {c50 * 1000:.1f} ms, max {cmax * 1000:.1f} ms "
        f"over {len(cells)} cells  [{'PASS' if cmax <= 0.05 else 'FAIL'} <= 50 ms]"
    )
    print(
        json.dumps(
            {
                "lag_p50_ms": p50 * 1000,
                "lag_p99_ms": p99 * 1000,
                "cell_p50_ms": c50 * 1000,
                "cell_max_ms": cmax * 1000,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

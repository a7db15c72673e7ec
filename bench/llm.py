"""P5 (part): streaming a generation into the store. `python bench/llm.py`

W  store writes per 1,000 tokens with clause chunking      target <= 100
F  first provider chunk -> first store write (commit)      target <= 20 ms
B  bytes sent to the browser over a reply / its final text  target <= 1.2

Uses the embedded offline model through litellm's real streaming path, at 200 and
2,000 tokens/s (W, F) and 50, 100 and 200 tokens/s (B: an `rx.chat` widget with
ipywidgets' real code over a comm that counts each custom message's JSON bytes).
Exits 0 whether targets pass or fail (the table says which).
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "llm"))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "examples"))

import _report as report
from llm_jobs import Reply, new_reply

import rxnb as rx
from rxnb import llm
from rxnb.execution import ActionContext

SENTENCE = "The model writes a clause, then another one; and it ends here. "


def measure(tokens_per_second: float, tokens: int) -> tuple[int, float]:
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-llm-"))
    store = rx.open(f"sqlite:///{tmp / 'b.db'}")
    try:
        reply_id = new_reply()
        commits: list[float] = []

        def seen(writes: Any) -> None:
            if any(getattr(w, "table", None) == Reply.__tablename__ for w in writes):
                commits.append(time.perf_counter())

        store.add_write_listener(seen)
        words = (SENTENCE * (tokens // 12 + 1)).split(" ")[:tokens]
        script = " ".join(words)
        first_chunk: list[float] = []
        real_stream = llm._stream.stream

        def timed(*args: Any, **kwargs: Any) -> Any:
            for text in real_stream(*args, **kwargs):
                if not first_chunk:
                    first_chunk.append(time.perf_counter())
                yield text

        llm._stream.stream = timed  # type: ignore[assignment]
        try:
            commits.clear()
            llm.stream_into(
                ActionContext(store, None),
                Reply,
                reply_id,
                model="rxnb/scripted",
                messages=[{"role": "user", "content": "go"}],
                script=script,
                delay=1 / tokens_per_second,
                chunking="clause",
            )
        finally:
            llm._stream.stream = real_stream  # type: ignore[assignment]
        writes = len(commits) - 1  # the first commit sets status "streaming"
        first = next(t for t in commits if t >= first_chunk[0]) - first_chunk[0]
        return writes, first
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def browser_bytes(tokens_per_second: float, tokens: int) -> tuple[float, int, int]:
    """(bytes sent / final text bytes, messages, text bytes) for one streamed reply."""
    import chat_app
    import comm
    from widgets import Recorder, until

    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-chat-"))
    store = rx.open(f"sqlite:///{tmp / 'b.db'}")
    create, comm.create_comm = comm.create_comm, Recorder
    try:
        reply_id = chat_app.ask(thread_id="b", text="go")
        widget = rx.chat("b", send=chat_app.send, messages=chat_app.messages)
        Recorder.take()  # from here on, the messages of one reply
        words = (SENTENCE * (tokens // 12 + 1)).split(" ")[:tokens]
        text = llm.stream_into(
            ActionContext(store, None),
            chat_app.Message,
            reply_id,
            model="rxnb/scripted",
            messages=[{"role": "user", "content": "go"}],
            script=" ".join(words),
            delay=1 / tokens_per_second,
        )
        status = widget.data["columns"].index("status")
        until(lambda: widget.data["rows"][1][status] == "done")
        sent = Recorder.take()
        size = len(text.encode())
        # The widget protocol's messages, as JSON; ipywidgets' and Jupyter's own
        # framing around each message is not counted.
        sent_bytes = sum(len(json.dumps(c, separators=(",", ":")).encode()) for *_, c in sent)
        return sent_bytes / size, len(sent), size
    finally:
        comm.create_comm = create
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)


def main() -> int:
    rows = []
    for rate in (50, 100, 200):
        ratio, messages, size = browser_bytes(rate, 1000)
        rows.append(
            (
                f"B {rate}/s",
                f"bytes to browser / text ({messages} msgs, {size} B text)",
                f"{ratio:.2f}x",
                "<= 1.2x",
                "PASS" if ratio <= 1.2 else "FAIL",
            )
        )
    for rate in (200, 2000):
        writes, first = measure(rate, 1000)
        rows.append(
            (
                f"W {rate}/s",
                "writes per 1,000 tokens, clause chunking",
                str(writes),
                "<= 100",
                "PASS" if writes <= 100 else "FAIL",
            )
        )
        rows.append(
            (
                f"F {rate}/s",
                "first chunk -> first write",
                f"{first * 1000:.2f} ms",
                "<= 20 ms",
                "PASS" if first <= 0.02 else "FAIL",
            )
        )
    report.print_table(("", "figure", "measured", "target", "result"), rows)
    print(f"load average {report.load_average()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

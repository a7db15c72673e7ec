"""The LLM cache's figures: `python bench/cache.py [--quick]` (SQLite).

K1  a cache hit: `stream_into` of a 2,000-token answer (about 8,000 characters)
    from the call to the row's full text stored, `done`, its generation marked and
    the run's usage recorded, inside a run                          p50 <= 5 ms
K1b the same request with the cache off: the offline model streaming it with no
    delay through litellm (no network), as the baseline                       info
K1c a plain SQLModel write of the same text (one transaction), for scale      info

Exits 0 whether targets pass or fail (the table says which).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests" / "llm"))

from _report import Measured, percentile, print_header, print_measured, print_outcome
from llm_jobs import Reply, new_reply

import rxnb as rx
from rxnb import llm

SENTENCE = "The model writes a clause, then another one; and it ends here. "
WORDS = (SENTENCE * 200).split(" ")[:2000]
SCRIPT = " ".join(WORDS)


@rx.action
def answer(ctx: rx.ActionContext, reply_id: int, cache: bool) -> float:
    """Milliseconds `stream_into` took."""
    started = time.perf_counter()
    llm.stream_into(
        ctx,
        Reply,
        reply_id,
        model="rxnb/scripted",
        messages=[{"role": "user", "content": "write it"}],
        script=SCRIPT,
        delay=0,
        cache=cache,
    )
    return (time.perf_counter() - started) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    quick = parser.parse_args().quick
    reps = 10 if quick else 40
    print_header(quick)
    print("LLM cache, SQLite")
    tmp = Path(tempfile.mkdtemp(prefix="rxnb-bench-cache-"))
    store = rx.open(f"sqlite:///{tmp / 'b.db'}")
    began = time.perf_counter()
    try:
        answer.start(reply_id=new_reply(), cache=True).result(60)  # fills the cache
        hits = [answer.start(reply_id=new_reply(), cache=True).result(60) for _ in range(reps)]
        misses = [
            answer.start(reply_id=new_reply(), cache=False).result(60) for _ in range(reps // 2)
        ]
        plain = []
        for _ in range(reps):
            started = time.perf_counter()
            store.database.write(lambda db: db.add(Reply(content=SCRIPT, status="done")))
            plain.append((time.perf_counter() - started) * 1000)
        assert len(SCRIPT) > 7000
        hit50, miss50, plain50 = (percentile(v, 50) for v in (hits, misses, plain))
        figures = [
            Measured(
                "K1",
                "cache hit -> 2,000-token row stored",
                f"p50 {hit50:.2f} ms (p90 {percentile(hits, 90):.2f})",
                "p50 <= 5 ms",
                hit50 <= 5,
            ),
            Measured(
                "K1b",
                "the same, cache off (offline model)",
                f"p50 {miss50:.1f} ms ({miss50 / hit50:.0f}x the hit)",
                "info",
                None,
            ),
            Measured(
                "K1c", "plain SQLModel write of the text", f"p50 {plain50:.2f} ms", "info", None
            ),
        ]
    finally:
        store.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print_measured(figures)
    print_outcome(figures, quick, began)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""P2 writer: `python _writer.py URL THREAD_ID N INTERVAL WARMUP`.

Opens the store at URL and runs WARMUP then N `set_counter` mutations, INTERVAL
seconds apart, each stamping the row with the wall clock just before the call.
Warmup writes carry a negative sequence number; the parent ignores them.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import rxnb as rx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _models import set_counter


def main() -> None:
    url, thread_id, n, interval, warmup = sys.argv[1:6]
    store = rx.open(url)
    try:
        for i in range(-int(warmup), int(n)):
            set_counter(thread_id=thread_id, content=str(i), written_at=time.time())
            time.sleep(float(interval))  # pacing between writes, not waiting on a thread
    finally:
        store.close()


if __name__ == "__main__":
    main()

"""The collector's cost for files listed by `rx_messages.files` (a `FileRefList`):
`python bench/collect_lists.py [--files 1000] [--messages 10000] [--url PG_URL]`.

For each dialect, `--files` files older than the grace period, each listed by one of
`--messages` agent messages (the others list none), and as many unlisted ones; one
`rx.files.collect(grace_seconds=0)` deletes the unlisted. Baseline, in the same
process: the same files named one each by a `rx.FileRef` column of as many rows. It
prints the CPU and wall seconds of each and their ratio (the list's LIKE scan against
the FileRef's NOT IN).
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
import uuid
from pathlib import Path

from sqlmodel import Field, SQLModel

import rxnb as rx
from rxnb.agents import Message


class Named(SQLModel, table=True):
    __tablename__ = "bench_collect_named"
    id: int | None = Field(default=None, primary_key=True)
    file_id: str | None = Field(default=None, sa_type=rx.FileRef)


def fill(store: rx.Store, files: int, rows: int, listed: bool) -> None:
    table = rx.File.__table__  # type: ignore[attr-defined]
    tag = "l" if listed else "n"
    ids = [f"{tag}{i:06d}-{uuid.uuid4().hex[:8]}" for i in range(2 * files)]
    meta = {"name": "x", "size": 0, "sha256": "", "chunks_count": 0, "created_at": 1.0}
    store.database.write(lambda db: db.execute(table.insert(), [{"id": i, **meta} for i in ids]))
    kept = ids[:files]
    if listed:
        target = Message.__table__  # type: ignore[attr-defined]
        values = [
            {
                "thread_id": "b",
                "role": "user",
                "status": "done",
                "text": "x",
                "step": 0,
                "arguments": "",
                "created_at": 1.0,
                "files": json.dumps([kept[i]]) if i < files else None,
            }
            for i in range(rows)
        ]
    else:
        target = Named.__table__  # type: ignore[attr-defined]
        values = [{"file_id": kept[i] if i < files else None} for i in range(rows)]
    store.database.write(lambda db: db.execute(target.insert(), values))


def timed(store: rx.Store, files: int) -> tuple[float, float]:
    cpu, wall = time.process_time(), time.perf_counter()
    assert rx.files.collect(grace_seconds=0, store=store) == files
    return time.process_time() - cpu, time.perf_counter() - wall


def run(url: str, files: int, messages: int) -> None:
    store = rx.open(url)
    try:
        fill(store, files, messages, listed=False)
        named = timed(store, files)
        fill(store, files, messages, listed=True)
        listed = timed(store, files)
    finally:
        store.close()
    print(
        f"{url.split(':', maxsplit=1)[0]:>22}: FileRef {named[0]:.3f} s CPU ({named[1]:.3f} wall); "
        f"FileRefList {listed[0]:.3f} s CPU ({listed[1]:.3f} wall); "
        f"ratio {listed[1] / max(named[1], 1e-9):.1f}x wall"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10000)
    parser.add_argument("--url", default=None)
    args = parser.parse_args()
    print(f"{args.files} listed + {args.files} unlisted files, {args.messages} rows")
    with tempfile.TemporaryDirectory() as tmp:
        run(f"sqlite:///{Path(tmp) / 'b.db'}", args.files, args.messages)
    if args.url:
        run(args.url, args.files, args.messages)


if __name__ == "__main__":
    main()

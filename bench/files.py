"""rx.files throughput and memory: `python bench/files.py [--mb 200] [--url PG_URL]`.

For each dialect (a SQLite file; PostgreSQL in a schema of its own, dropped after),
a fresh Python process puts a file of --mb megabytes streamed from a generator, then
reads it back chunk by chunk, checking its SHA-256. It prints put and get MB/s, the
peak RSS growth over the round trip (VmHWM, which counts C buffers too), and, as the
baseline, the same bytes written to and read from a plain file in the same process.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

import sqlalchemy as sa

CHILD = r"""
import hashlib, io, os, sys, time
import rxnb as rx

def hwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

class Stream(io.RawIOBase):
    def __init__(self, total):
        self.left, self.block = total, os.urandom(1 << 20)
    def readable(self):
        return True
    def readinto(self, buffer):
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n

url, total, scratch = sys.argv[1], int(sys.argv[2]), sys.argv[3]
store = rx.open(url)
rx.files.get(rx.files.put(os.urandom(1 << 16))).read()
before = hwm()
t0 = time.perf_counter()
file_id = rx.files.put(io.BufferedReader(Stream(total), 1 << 20), name="big.bin")
t1 = time.perf_counter()
digest = hashlib.sha256()
for chunk in rx.files.get(file_id).chunks():
    digest.update(chunk)
t2 = time.perf_counter()
growth = hwm() - before
assert digest.hexdigest() == rx.files.get(file_id).sha256
store.close()
# The baseline: the same bytes through a plain file.
source = Stream(total)
t3 = time.perf_counter()
with open(scratch, "wb") as out:
    while chunk := source.read(1 << 20):
        out.write(chunk)
    out.flush()
    os.fsync(out.fileno())
t4 = time.perf_counter()
with open(scratch, "rb") as src:
    while src.read(1 << 20):
        pass
t5 = time.perf_counter()
os.unlink(scratch)
print(t1 - t0, t2 - t1, growth, t4 - t3, t5 - t4)
"""


def run(url: str, total: int) -> list[float]:
    scratch = Path(tempfile.gettempdir()) / f"rxnb-files-{uuid.uuid4().hex}.bin"
    out = subprocess.run(
        [sys.executable, "-c", CHILD, url, str(total), str(scratch)],
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    return [float(x) for x in out.split()]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mb", type=int, default=200)
    parser.add_argument(
        "--url",
        default=os.environ.get(
            "RXNB_BENCH_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
    )
    args = parser.parse_args()
    total = args.mb * 1000 * 1000
    mb = total / 1e6
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        figures = run(f"sqlite:///{folder}/bench.db", total)
        rows.append(("sqlite", figures))
    admin = sa.create_engine(args.url, isolation_level="AUTOCOMMIT")
    schema = f"bench_files_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        pg_url = sa.make_url(args.url).update_query_dict({"options": f"-csearch_path={schema}"})
        rows.append(("postgres", run(pg_url.render_as_string(hide_password=False), total)))
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()
    print(f"\nrx.files round trip of {mb:.0f} MB (baseline: the same bytes through a plain file)")
    header = ("dialect", "put MB/s", "get MB/s", "peak RSS growth", "file write", "file read")
    print(" | ".join(header))
    for name, (put, get, growth, fwrite, fread) in rows:
        print(
            f"{name} | {mb / put:.0f} ({put / fwrite:.1f}x the file's time) | {mb / get:.0f} | "
            f"{growth / 2**20:.1f} MiB (target < 50) | "
            f"{mb / fwrite:.0f} MB/s | {mb / fread:.0f} MB/s"
        )


if __name__ == "__main__":
    main()

"""rx.files on SQLite and PostgreSQL: round trips, memory, references, limits, crashes."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from polling import until
from procs import finish, python
from sqlmodel import Field, SQLModel, select

import rxnb as rx


class Attachment(SQLModel, table=True):
    """A user table naming files through a FileRef column."""

    __tablename__ = "test_files_attachment"

    id: int | None = Field(default=None, primary_key=True)
    file_id: str | None = Field(default=None, sa_type=rx.FileRef)


def counts(store: rx.Store) -> tuple[int, int]:
    """(rx_files rows, rx_file_chunks rows)."""
    with store.database.engines()[0].connect() as conn:
        files = conn.execute(sa.text("SELECT count(*) FROM rx_files")).scalar_one()
        chunks = conn.execute(sa.text("SELECT count(*) FROM rx_file_chunks")).scalar_one()
    return files, chunks


def test_round_trip_of_bytes_path_and_stream(store: rx.Store, tmp_path: Path) -> None:
    data = os.urandom(2_500_000)  # three chunks, the last one short
    source = tmp_path / "photo.png"
    source.write_bytes(data)
    ids = [
        rx.files.put(data, name="../../etc/x\x00.bin"),
        rx.files.put(source),
        rx.files.put(io.BytesIO(data), content_type="Application/PDF"),
    ]
    files = [rx.files.get(i) for i in ids]
    assert [f.name for f in files] == ["x.bin", "photo.png", ""]
    assert [f.content_type for f in files] == [
        "application/octet-stream",
        "image/png",
        "application/pdf",
    ]
    for f in files:
        assert (f.size, f.sha256) == (len(data), hashlib.sha256(data).hexdigest())
        assert f.read() == data
        assert b"".join(f.chunks()) == data
        with f.open() as reader:
            assert reader.read(10) == data[:10]
            assert reader.read() == data[10:]
    saved = files[1].save(tmp_path / "out")
    assert saved.read_bytes() == data
    assert rx.files.get(rx.files.put(b"")).read() == b""
    assert rx.files.delete(ids[0]) and not rx.files.delete(ids[0])
    with pytest.raises(rx.ArgumentError, match="no file has this id"):
        rx.files.get(ids[0])
    with pytest.raises(rx.ArgumentError, match="no file at this path"):
        rx.files.put(str(tmp_path / "missing.txt"))
    with pytest.raises(rx.ArgumentError, match="not a media type"):
        rx.files.put(b"x", content_type="text/html; <script>")


def test_a_query_listing_files_is_live(store: rx.Store) -> None:
    @rx.query
    def file_names(db: rx.Reader) -> list[str]:
        return [f.name for f in db.exec(select(rx.File).order_by(rx.File.name)).all()]

    seen: list[list[str]] = []
    changed = threading.Event()

    def got(names: list[str]) -> None:
        seen.append(names)
        changed.set()

    store.subscribe(file_names, {}, got)
    until(lambda: seen == [[]])
    rx.files.put(b"abc", name="a.txt")
    until(lambda: seen[-1] == ["a.txt"])


def test_unreferenced_files_are_collected_after_the_grace_period(store: rx.Store) -> None:
    kept = rx.files.put(b"kept" * 1000, name="kept.txt")
    dropped = rx.files.put(os.urandom(1_500_000), name="dropped.bin")

    @rx.mutation
    def attach(db: rx.Writer, file_id: str) -> None:
        db.add(Attachment(file_id=file_id))

    attach(file_id=kept)
    assert rx.files.collect() == 0  # both younger than the default grace period (1 h)
    assert rx.files.configure(grace_seconds=0).grace_seconds == 0
    assert ("test_files_attachment", "file_id") in rx.files.configure().refs
    assert rx.files.collect() == 1
    assert rx.files.get(kept).read() == b"kept" * 1000
    with pytest.raises(rx.ArgumentError):
        rx.files.get(dropped)
    assert counts(store) == (1, 1)


def test_the_maintenance_pass_collects_files(store: rx.Store) -> None:
    rx.files.configure(grace_seconds=0)
    rx.files.put(b"nobody names me")
    pruned = rx.prune(days=1)
    assert pruned.deleted["rx_files"] == 1
    assert counts(store) == (0, 0)


def test_an_oversize_file_is_refused_and_nothing_is_written(
    store: rx.Store, tmp_path: Path
) -> None:
    rx.files.configure(max_bytes=2 * 1024 * 1024)
    big = tmp_path / "big.bin"
    big.write_bytes(b"x" * (3 * 1024 * 1024))
    with pytest.raises(
        rx.ArgumentError,
        match=r"'big.bin' is 3145728 bytes, over the store's limit of 2097152 bytes \(2 MiB\)",
    ) as refused:
        rx.files.put(big)
    assert "nothing was stored. Raise it with rx.files.configure(max_bytes=...)" in str(
        refused.value
    )

    class Unsized(io.RawIOBase):
        """Endless bytes of unknown size: refused as it passes the limit."""

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            buffer[:] = b"y" * len(buffer)
            return len(buffer)

    with pytest.raises(rx.ArgumentError, match="the stream passed the store's limit"):
        rx.files.put(io.BufferedReader(Unsized()))
    assert counts(store) == (0, 0)
    with pytest.raises(rx.ArgumentError, match="max_bytes must be a whole number"):
        rx.files.configure(max_bytes=-1)


def test_a_put_whose_source_fails_leaves_nothing(store: rx.Store) -> None:
    class Failing(io.RawIOBase):
        """Six chunks, then a read error."""

        sent = 0

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
            if self.sent >= 6 << 20:
                raise OSError("the disk went away")
            buffer[:] = b"z" * len(buffer)
            self.sent += len(buffer)
            return len(buffer)

    with pytest.raises(OSError, match="the disk went away"):
        rx.files.put(io.BufferedReader(Failing(), 1 << 20))
    assert counts(store) == (0, 0)


ROUND_TRIP = """
import hashlib, io, os, sys
import rxnb as rx

def hwm() -> int:
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError

class Stream(io.RawIOBase):
    '''200 MB made up as it is read, never all in memory.'''
    def __init__(self, total):
        self.left, self.block = total, os.urandom(1 << 20)
    def readable(self):
        return True
    def readinto(self, buffer):
        n = min(len(buffer), self.left, len(self.block))
        buffer[:n] = self.block[:n]
        self.left -= n
        return n

store = rx.open(sys.argv[1])
rx.files.get(rx.files.put(os.urandom(1 << 16))).read()  # warm up: pools, caches
total = 200 * 1000 * 1000
source = Stream(total)
before = hwm()
file_id = rx.files.put(io.BufferedReader(source, 1 << 20), name="big.bin")
f = rx.files.get(file_id)
digest = hashlib.sha256()
for chunk in f.chunks():
    digest.update(chunk)
expected = hashlib.sha256()
block, left = source.block, total
while left:
    expected.update(block[: min(left, len(block))])
    left -= min(left, len(block))
assert f.size == total and digest.hexdigest() == expected.hexdigest() == f.sha256
print(hwm() - before)
store.close()
"""


def test_a_200_mb_file_round_trips_in_little_memory(url: str) -> None:
    growth = int(finish(python(ROUND_TRIP, url), timeout=240).split()[-1])
    assert growth < 50 * 1024 * 1024, f"peak RSS grew by {growth / 2**20:.1f} MiB"


CRASHING_PUT = """
import io, sys, threading
import rxnb as rx

class Stalling(io.RawIOBase):
    '''Six chunks' worth, then it tells the test and waits to be killed.'''
    def __init__(self):
        self.sent = 0
    def readable(self):
        return True
    def readinto(self, buffer):
        if self.sent >= 6 << 20:
            print("stalled", flush=True)
            threading.Event().wait()  # until the test kills this process
        n = min(len(buffer), 1 << 20)
        buffer[:n] = b"z" * n
        self.sent += n
        return n

rx.open(sys.argv[1])
rx.files.put(io.BufferedReader(Stalling(), 1 << 20), name="never.bin")
"""


def test_a_put_killed_midway_leaves_no_file(store: rx.Store, url: str) -> None:
    proc = python(CRASHING_PUT, url)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "stalled"
    until(lambda: counts(store)[1] >= 4)  # a batch of chunks was committed
    os.kill(proc.pid, signal.SIGKILL)
    proc.communicate(timeout=30)
    files, chunks = counts(store)
    assert files == 0 and chunks >= 4
    assert store.database.read(lambda db: db.exec(select(rx.File)).all())[0] == []
    assert rx.files.collect(grace_seconds=3600) == 0 and counts(store)[1] == chunks
    rx.files.collect(grace_seconds=0)
    assert counts(store) == (0, 0)

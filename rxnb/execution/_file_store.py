"""Files in the store: the `rx_files` and `rx_file_chunks` tables and chunked I/O.

A file is written as chunks of `CHUNK` bytes, a few per transaction, under the id it
will have; its `rx_files` row is inserted by the last transaction, which checks that
every chunk is there. So a file exists only once whole: a put that fails is undone,
and one whose process died leaves only chunks with no `rx_files` row, which the
collector deletes once they are older than the grace period.

Chunks are written and read through SQLAlchemy Core, so the change log records one
table-level entry per transaction rather than row images of the data.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any, Final

import sqlalchemy as sa
from sqlmodel import Field, SQLModel

from rxnb.errors import ArgumentError
from rxnb.store import Database, Reader, Writer, own_table

CHUNK: Final = 1024 * 1024
"""Bytes per chunk row."""
BATCH_BYTES: Final = 4 * CHUNK
"""Bytes of chunks written per transaction."""
LIST_PAGE: Final = 500
"""Candidate files read per query when some are filtered against `FileRefList`s."""
DELETE_BATCH: Final = 64
"""Chunk rows deleted per statement (a 1 GiB file is 1024 rows)."""


class FileRef(sa.types.TypeDecorator[str]):
    """A column holding a file id (`Field(sa_type=rx.FileRef)`): a file named by a row
    through such a column is kept by `rx.files.collect()`; one no row names is deleted
    after the grace period."""

    impl = sa.String
    cache_ok = True


class FileRefList(sa.types.TypeDecorator[str]):
    """A column holding JSON text of a list of file ids (`'["id1", "id2"]'`), as
    `rx_messages.files` does: every file such a column lists is kept by the collector,
    like one a `FileRef` column names."""

    impl = sa.Text
    cache_ok = True


class File(SQLModel, table=True):
    """A file stored in the store (`rx_files`): its metadata; the bytes are in chunks.

    Queries may select it like any table (`select(rx.File)`), so a list of files is
    live. `open()`, `chunks()`, `read()` and `save()` read its bytes from the current
    store (or `store=`), one chunk at a time.
    """

    __tablename__ = "rx_files"
    __table_args__ = own_table()

    id: str = Field(primary_key=True)
    """A url-safe random string (`rx.files.put` returns it)."""
    name: str = ""
    """The file's name, without folders (`name=`, or the path's last part)."""
    content_type: str = "application/octet-stream"
    size: int = 0
    """Bytes."""
    sha256: str = ""
    """The hex SHA-256 of the bytes."""
    chunks_count: int = 0
    created_at: float = Field(index=True)
    """Epoch seconds; the grace period of the collector counts from it."""

    def chunks(self, store: Any = None) -> Iterator[bytes]:
        """The file's bytes, chunk by chunk (about 1 MiB each)."""
        from rxnb.execution.files import read_chunks  # a module of this layer, imported late

        return read_chunks(self, store)

    def open(self, store: Any = None) -> Any:
        """A binary file object reading the file chunk by chunk (`with f.open() as r:`)."""
        from rxnb.execution.files import open_file

        return open_file(self, store)

    def read(self, store: Any = None) -> bytes:
        """All the bytes at once, for small files (ArgumentError above 64 MiB: use
        `open()`, `chunks()` or `save()`)."""
        from rxnb.execution.files import read_all

        return read_all(self, store)

    def save(self, path: Any, store: Any = None) -> Any:
        """Write the file to `path` (a folder: under its own name); the path written."""
        from rxnb.execution.files import save_file

        return save_file(self, path, store)


class FileChunk(SQLModel, table=True):
    """One chunk of a file (`rx_file_chunks`), or of a put not finished yet."""

    __tablename__ = "rx_file_chunks"
    __table_args__ = own_table()

    file_id: str = Field(primary_key=True)
    seq: int = Field(primary_key=True)
    data: bytes = b""
    written_at: float
    """Epoch seconds: chunks of an unfinished put stay until they are this old."""


FILES: Final[sa.Table] = File.__table__  # type: ignore[attr-defined]
CHUNKS: Final[sa.Table] = FileChunk.__table__  # type: ignore[attr-defined]


def write_chunks(database: Database, rows: list[dict[str, Any]]) -> None:
    """Insert chunk rows (`file_id`, `seq`, `data`, `written_at`) in one transaction."""
    if rows:
        database.write(lambda db: db.execute(CHUNKS.insert(), rows))


def finish(
    database: Database, row: dict[str, Any], rest: list[dict[str, Any]], max_bytes: int
) -> None:
    """Write the last chunks and the `rx_files` row, in one transaction that checks
    that every chunk is stored (a collector may have taken those of a very slow put)."""

    def go(db: Writer) -> None:
        if rest:
            db.execute(CHUNKS.insert(), rest)
        count, size = db.execute(
            sa.select(
                sa.func.count(), sa.func.coalesce(sa.func.sum(sa.func.length(CHUNKS.c.data)), 0)
            ).where(CHUNKS.c.file_id == row["id"])
        ).one()
        if count != row["chunks_count"] or size != row["size"]:
            raise ArgumentError(
                f"rx.files.put: {row['chunks_count'] - count} chunk(s) of file {row['id']!r} "
                "vanished while it was written (it took longer than the collector's grace "
                "period); put it again, or raise rx.files.configure(grace_seconds=...)"
            )
        if size > max_bytes:  # the limit was lowered by another process meanwhile
            raise ArgumentError(f"rx.files.put: {size} bytes is over the limit of {max_bytes}")
        db.execute(FILES.insert(), [row])

    database.write(go)


def delete_chunks(database: Database, file_id: str) -> None:
    """Delete the chunks of a put that did not finish (no `rx_files` row)."""

    def go(db: Writer) -> int:
        seqs = sa.select(CHUNKS.c.seq).where(CHUNKS.c.file_id == file_id).limit(DELETE_BATCH)
        result = db.execute(
            sa.delete(CHUNKS).where(CHUNKS.c.file_id == file_id, CHUNKS.c.seq.in_(seqs))
        )
        count: int = result.rowcount  # type: ignore[attr-defined]
        return max(count, 0)

    while database.write(go):
        pass


def delete_file(db: Writer, file_id: str) -> bool:
    """Delete a file and its chunks in the caller's transaction; whether it existed."""
    result = db.execute(sa.delete(FILES).where(FILES.c.id == file_id))
    db.execute(sa.delete(CHUNKS).where(CHUNKS.c.file_id == file_id))
    return bool(result.rowcount)  # type: ignore[attr-defined]


def read_chunk(database: Database, file_id: str, seq: int) -> bytes | None:
    """One chunk's bytes, or None if it is gone."""

    def go(db: Reader) -> bytes | None:
        data = db.execute(
            sa.select(CHUNKS.c.data).where(CHUNKS.c.file_id == file_id, CHUNKS.c.seq == seq)
        ).scalar_one_or_none()
        return None if data is None else bytes(data)

    return database.read(go)[0]


def unreferenced(
    conn: Reader,
    refs: list[tuple[str, str]],
    cutoff: float,
    limit: int,
    lists: Sequence[tuple[str, str]] = (),
) -> list[str]:
    """Ids of files created before `cutoff` that no `refs` column (table, column)
    names and no `lists` column (a `FileRefList`) lists.

    The lists are read whole, once, and the candidates (in id order, a page at a time)
    filtered against them here: a LIKE of each candidate against every list would scan
    the lists' table once per file still listed (10 s of CPU for 1,000 files listed
    among 10,000 messages, bench/collect_lists.py)."""
    query = sa.select(FILES.c.id).where(FILES.c.created_at < cutoff)
    for table, column in refs:
        col = sa.column(column, sa.String)
        named = sa.select(col).select_from(sa.table(table, col)).where(col.is_not(None))
        query = query.where(FILES.c.id.not_in(named))
    if not lists:
        return list(conn.execute(query.limit(limit)).scalars())
    listed, unreadable = _listed(conn, lists)
    found: list[str] = []
    after: str | None = None
    page = max(limit, LIST_PAGE)
    while len(found) < limit:
        step = query if after is None else query.where(FILES.c.id > after)
        ids = list(conn.execute(step.order_by(FILES.c.id).limit(page)).scalars())
        found.extend(
            i for i in ids if i not in listed and not any(f'"{i}"' in t for t in unreadable)
        )
        if len(ids) < page:
            break
        after = ids[-1]
    return found[:limit]


def _listed(conn: Reader, lists: Sequence[tuple[str, str]]) -> tuple[set[str], list[str]]:
    """Every id the `lists` columns list; and the values that are not JSON lists (a
    row written by another program), in which any quoted id counts as listed."""
    listed: set[str] = set()
    unreadable: list[str] = []
    for table, column in lists:
        col = sa.column(column, sa.Text)
        values = sa.select(col).select_from(sa.table(table, col)).where(col.is_not(None))
        for text in conn.execute(values).scalars():
            try:
                ids = json.loads(text)
            except ValueError:
                ids = None
            if isinstance(ids, list):
                listed.update(i for i in ids if isinstance(i, str))
            else:
                unreadable.append(str(text))
    return listed, unreadable


def abandoned(conn: Reader, cutoff: float, limit: int) -> list[str]:
    """Ids of puts that left chunks but no `rx_files` row, not written to since `cutoff`."""
    query = (
        sa.select(CHUNKS.c.file_id)
        .where(CHUNKS.c.file_id.not_in(sa.select(FILES.c.id)))
        .group_by(CHUNKS.c.file_id)
        .having(sa.func.max(CHUNKS.c.written_at) < cutoff)
        .limit(limit)
    )
    return list(conn.execute(query).scalars())


def collect_batch(
    db: Writer,
    refs: list[tuple[str, str]],
    cutoff: float,
    limit: int,
    lists: Sequence[tuple[str, str]] = (),
) -> tuple[int, int]:
    """Delete up to `limit` unreferenced files created before `cutoff`, and the chunks
    of abandoned puts last written before it, in one transaction: (files, abandoned puts).

    Looking and deleting in one serializable transaction: a row naming a file,
    committed meanwhile, makes it conflict and run again, so a named file is kept."""
    ids = unreferenced(db, refs, cutoff, limit, lists)
    if ids:
        db.execute(sa.delete(CHUNKS).where(CHUNKS.c.file_id.in_(ids)))
        db.execute(sa.delete(FILES).where(FILES.c.id.in_(ids)))
    gone = abandoned(db, cutoff, limit)
    if gone:
        db.execute(sa.delete(CHUNKS).where(CHUNKS.c.file_id.in_(gone)))
    return len(ids), len(gone)

"""`rx.files`: files kept in the store, in chunks, on SQLite and PostgreSQL alike.

    file_id = rx.files.put("photo.png")            # a path, bytes, or a binary file object
    f = rx.files.get(file_id)                      # rx.File: name, content_type, size, sha256
    f.save("copy.png"); f.read(); f.open(); f.chunks()
    rx.files.delete(file_id)

A put streams its source in chunks of 1 MiB, a few per transaction, and never holds
the whole file in memory; the file exists only once its last chunk is stored (a put
that fails leaves nothing). Rows name files through a `rx.FileRef` column
(`attachment: str | None = Field(default=None, sa_type=rx.FileRef)`), or a list of
them through a `FileRefList` column (an agent message's `files`); a file no such
column names, older than the grace period (an hour by default: time to store the row
that names it), is deleted by `rx.files.collect()` and by the store's hourly
maintenance pass. `rx.files.configure(max_bytes=..., grace_seconds=...)` sets the
limits of the store, for every process sharing it.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import mimetypes
import os
import re
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Final

import sqlalchemy as sa
from sqlmodel import SQLModel

from rxnb.errors import ArgumentError
from rxnb.execution._file_store import (
    BATCH_BYTES,
    CHUNK,
    File,
    FileRef,
    FileRefList,
    collect_batch,
    delete_chunks,
    delete_file,
    finish,
    read_chunk,
    write_chunks,
)
from rxnb.execution._retention import PASS_TASKS, Maintenance
from rxnb.reactive import Store, current_store
from rxnb.store import Writer

__all__ = [
    "File",
    "FileRef",
    "FileRefList",
    "FileSettings",
    "collect",
    "configure",
    "delete",
    "get",
    "put",
]

MAX_BYTES: Final = 1024**3
"""The default limit of one file: 1 GiB."""
GRACE_SECONDS: Final = 3600.0
"""The default age before an unreferenced file may be collected."""
READ_LIMIT: Final = 64 * 1024 * 1024
"""`File.read()` refuses larger files (use `open`, `chunks` or `save`)."""
SETTINGS: Final = "files"
"""The `rx_maintenance` row of the files' settings."""
COLLECT_BATCH: Final = 20

_CONTENT_TYPE = re.compile(r"[a-z0-9][a-z0-9!#$&^_.+-]{0,63}/[a-z0-9][a-z0-9!#$&^_.+-]{0,63}")
_UNSET: Any = object()


@dataclass(frozen=True)
class FileSettings:
    """A store's file limits: the largest file, and how old an unreferenced file must
    be before it is collected; and the `FileRef` (`refs`) and `FileRefList` (`lists`)
    columns any process has declared."""

    max_bytes: int = MAX_BYTES
    grace_seconds: float = GRACE_SECONDS
    refs: tuple[tuple[str, str], ...] = ()
    lists: tuple[tuple[str, str], ...] = ()


def configure(
    *, max_bytes: int = _UNSET, grace_seconds: float = _UNSET, store: Store | None = None
) -> FileSettings:
    """The store's file settings; with arguments, set them for every process using it."""
    target = store or current_store()
    if max_bytes is not _UNSET and (
        type(max_bytes) is not int or max_bytes < 1  # a bool is an int, but no size
    ):
        raise ArgumentError(
            f"rx.files.configure(max_bytes={max_bytes!r}): max_bytes must be a whole number "
            "of bytes >= 1 (e.g. max_bytes=2 * 1024**3 for 2 GiB)"
        )
    if grace_seconds is not _UNSET and not _is_seconds(grace_seconds):
        raise ArgumentError(
            f"rx.files.configure(grace_seconds={grace_seconds!r}): grace_seconds must be a "
            "finite number of seconds >= 0 (e.g. grace_seconds=3600)"
        )
    if max_bytes is _UNSET and grace_seconds is _UNSET:
        return read_settings(target)
    changes: dict[str, Any] = {}
    if max_bytes is not _UNSET:
        changes["max_bytes"] = max_bytes
    if grace_seconds is not _UNSET:
        changes["grace_seconds"] = float(grace_seconds)
    return target.database.write(lambda db: _update_settings(db, changes))


def _is_seconds(value: Any) -> bool:
    """Whether `value` is a finite number of seconds >= 0 (a bool is not)."""
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )


def read_settings(store: Store) -> FileSettings:
    row = store.database.read(lambda db: db.get(Maintenance, SETTINGS))[0]
    return _settings(row)


def _settings(row: Maintenance | None) -> FileSettings:
    values = json.loads(row.settings) if row is not None else {}
    return FileSettings(
        int(values.get("max_bytes", MAX_BYTES)),
        float(values.get("grace_seconds", GRACE_SECONDS)),
        tuple((str(t), str(c)) for t, c in values.get("refs", [])),
        tuple((str(t), str(c)) for t, c in values.get("list_refs", [])),
    )


def _update_settings(db: Writer, changes: dict[str, Any]) -> FileSettings:
    row = db.get(Maintenance, SETTINGS) or Maintenance(name=SETTINGS)
    values = json.loads(row.settings)
    values.update(changes)
    row.settings = json.dumps(values)
    db.add(row)
    return _settings(row)


def declared_refs(kind: type[sa.types.TypeDecorator[str]] = FileRef) -> list[tuple[str, str]]:
    """(table, column) of every `kind` column (`FileRef`, or `FileRefList`) of the
    table classes defined here."""
    found = []
    for table in SQLModel.metadata.tables.values():
        for column in table.columns:
            if isinstance(column.type, kind):
                found.append((table.name, column.name))
    return sorted(found)


def _remember_refs(store: Store, settings: FileSettings) -> FileSettings:
    """Store this process's `FileRef` and `FileRefList` columns with the settings, so
    that a collector in a process that lacks some table class still keeps the files
    they name."""
    changes: dict[str, Any] = {}
    for key, kind, known in (
        ("refs", FileRef, settings.refs),
        ("list_refs", FileRefList, settings.lists),
    ):
        new = set(declared_refs(kind)) - set(known)
        if new:
            changes[key] = sorted(set(known) | new)
    if not changes:
        return settings
    return store.database.write(lambda db: _update_settings(db, changes))


# -- put ---------------------------------------------------------------------------


def put(
    data: bytes | bytearray | memoryview | str | os.PathLike[str] | IO[bytes],
    *,
    content_type: str | None = None,
    name: str | None = None,
    store: Store | None = None,
) -> str:
    """Store a file; return its id. `data` is bytes, a path, or a binary file object.

    The bytes are streamed in chunks; `content_type` is guessed from the name when not
    given. A file over the store's limit (`rx.files.configure(max_bytes=...)`, 1 GiB by
    default) is refused with ArgumentError, and nothing of it is kept.
    """
    target = store or current_store()
    settings = _remember_refs(target, read_settings(target))
    source = _Source.of(data, name)
    try:
        return _put(target, source, content_type, settings.max_bytes)
    finally:
        source.close()


def _put(target: Store, source: _Source, content_type: str | None, limit: int) -> str:
    ctype = _content_type(content_type, source.name)
    if source.size is not None and source.size > limit:
        raise _too_large(source.describe, source.size, limit)
    file_id = secrets.token_urlsafe(16)
    database = target.database
    digest, size, seq = hashlib.sha256(), 0, 0
    batch: list[dict[str, Any]] = []
    pending = 0
    try:
        for chunk in source.chunks():
            size += len(chunk)
            if size > limit:
                raise _too_large(source.describe, None, limit)
            digest.update(chunk)
            batch.append({"file_id": file_id, "seq": seq, "data": chunk, "written_at": time.time()})
            seq, pending = seq + 1, pending + len(chunk)
            if pending >= BATCH_BYTES:
                write_chunks(database, batch)
                batch, pending = [], 0
        row = {
            "id": file_id,
            "name": source.name,
            "content_type": ctype,
            "size": size,
            "sha256": digest.hexdigest(),
            "chunks_count": seq,
            "created_at": time.time(),
        }
        finish(database, row, batch, limit)
    except BaseException:
        batch = []
        if seq and not database.closed:
            # If this fails too, the collector takes them after the grace period.
            with contextlib.suppress(Exception):
                delete_chunks(database, file_id)
        raise
    return file_id


def _too_large(what: str, size: int | None, limit: int) -> ArgumentError:
    seen = f"is {size} bytes, over" if size is not None else "passed"
    return ArgumentError(
        f"rx.files.put: {what} {seen} the store's limit of {limit} bytes "
        f"({_human(limit)}); nothing was stored. Raise it with "
        "rx.files.configure(max_bytes=...)"
    )


def _human(n: int) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:g} {unit}" if unit == "bytes" else f"{n:.4g} {unit}"
        n /= 1024  # type: ignore[assignment]
    raise AssertionError


def _content_type(given: Any, name: str) -> str:
    if given is None:
        return mimetypes.guess_type(name)[0] or "application/octet-stream"
    if not isinstance(given, str) or not _CONTENT_TYPE.fullmatch(given.strip().lower()):
        raise ArgumentError(
            f"rx.files.put(content_type={given!r}): not a media type; use e.g. "
            "'image/png' or 'application/pdf', or leave it out to guess it from the name"
        )
    return given.strip().lower()


def clean_name(name: str) -> str:
    """A file name without folders or control characters, at most 255 characters."""
    base = re.split(r"[\\/]", name)[-1]
    base = "".join(ch for ch in base if ch.isprintable()).strip()
    return base[:255] if base not in (".", "..") else ""


class _Source:
    """Where a put reads from: its name, size if known, chunks, and how to close it."""

    def __init__(
        self,
        name: str,
        size: int | None,
        read: Callable[[int], bytes],
        close: Callable[[], None],
        describe: str,
    ) -> None:
        self.name, self.size, self._read, self.close, self.describe = (
            name,
            size,
            read,
            close,
            describe,
        )

    def chunks(self) -> Iterator[bytes]:
        while True:
            data = self._read(CHUNK)
            if not data:
                return
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise ArgumentError(
                    f"rx.files.put: the file object returned {type(data).__name__}, not "
                    "bytes; open it in binary mode ('rb')"
                )
            yield bytes(data)

    @classmethod
    def of(cls, data: Any, name: str | None) -> _Source:
        if name is not None and not isinstance(name, str):
            raise ArgumentError(f"rx.files.put(name={name!r}): name must be a string")
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data).cast("B")
            pos = [0]

            def read(n: int) -> bytes:
                chunk = bytes(view[pos[0] : pos[0] + n])
                pos[0] += len(chunk)
                return chunk

            return cls(clean_name(name or ""), len(view), read, lambda: None, "the data")
        if isinstance(data, (str, os.PathLike)):
            path = Path(data)
            if not path.is_file():
                raise ArgumentError(
                    f"rx.files.put({str(data)!r}): no file at this path; a str is a path "
                    "(pass bytes to store contents, e.g. text.encode())"
                )
            handle = path.open("rb")
            return cls(
                clean_name(name if name is not None else path.name),
                os.fstat(handle.fileno()).st_size,
                handle.read,
                handle.close,
                f"{path.name!r}",
            )
        reader = getattr(data, "read", None)
        if callable(reader):
            found = getattr(data, "name", None)
            guessed = found if isinstance(found, str) else ""
            return cls(
                clean_name(name if name is not None else guessed),
                None,
                reader,
                lambda: None,
                "the stream",
            )
        raise ArgumentError(
            f"rx.files.put takes bytes, a path or a binary file object, not {type(data).__name__}"
        )


# -- get, read, delete -----------------------------------------------------------


def get(file_id: str, *, store: Store | None = None) -> File:
    """The file with this id (ArgumentError if there is none)."""
    target = store or current_store()
    if not isinstance(file_id, str):
        raise ArgumentError(f"rx.files.get({file_id!r}): a file id is a string")
    found = target.database.read(lambda db: db.get(File, file_id))[0]
    if found is None:
        raise ArgumentError(
            f"rx.files.get({file_id!r}): no file has this id in the store at {target.url} "
            "(deleted, collected, or never finished)"
        )
    return found


def delete(file_id: str, *, store: Store | None = None) -> bool:
    """Delete a file and its bytes, referenced or not; whether it existed."""
    target = store or current_store()
    return target.database.write(lambda db: delete_file(db, file_id))


def read_chunks(file: File, store: Store | None = None) -> Iterator[bytes]:
    """The file's chunks in order, its size and SHA-256 checked at the end."""
    database = (store or current_store()).database
    digest, size = hashlib.sha256(), 0
    for seq in range(file.chunks_count):
        data = read_chunk(database, file.id, seq)
        if data is None:
            raise ArgumentError(
                f"File {file.id!r} ({file.name!r}) was deleted while it was being read"
            )
        digest.update(data)
        size += len(data)
        yield data
    if size != file.size or digest.hexdigest() != file.sha256:
        raise ArgumentError(
            f"File {file.id!r} ({file.name!r}) does not match its size or SHA-256 as "
            "stored; its chunks were changed outside rxnb"
        )


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buffer = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, target: Any) -> int:
        while not self._buffer:
            data = next(self._chunks, None)
            if data is None:
                return 0
            self._buffer = memoryview(data)
        n = min(len(target), len(self._buffer))
        target[:n] = self._buffer[:n]
        self._buffer = self._buffer[n:]
        return n


def open_file(file: File, store: Store | None = None) -> io.BufferedReader:
    return io.BufferedReader(_ChunkReader(read_chunks(file, store)), buffer_size=CHUNK)


def read_all(file: File, store: Store | None = None) -> bytes:
    if file.size > READ_LIMIT:
        raise ArgumentError(
            f"File.read(): {file.name!r} is {_human(file.size)}, over the {_human(READ_LIMIT)} "
            "that read() returns at once; use file.save(path), file.open() or file.chunks()"
        )
    return b"".join(read_chunks(file, store))


def save_file(file: File, path: str | os.PathLike[str], store: Store | None = None) -> Path:
    target = Path(path)
    if target.is_dir():
        target = target / (file.name or file.id)
    partial = target.with_name(target.name + ".part")
    try:
        with partial.open("wb") as out:
            for chunk in read_chunks(file, store):
                out.write(chunk)
        partial.replace(target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target


# -- collection --------------------------------------------------------------------


def collect(*, grace_seconds: float | None = None, store: Store | None = None) -> int:
    """Delete files no `rx.FileRef` column names, older than the grace period (the
    store's, or `grace_seconds` for this call), and the chunks of puts abandoned that
    long ago; how many files were deleted."""
    target = store or current_store()
    if grace_seconds is not None and not _is_seconds(grace_seconds):
        raise ArgumentError(
            f"rx.files.collect(grace_seconds={grace_seconds!r}): a number of seconds >= 0"
        )
    settings = _remember_refs(target, read_settings(target))
    grace = settings.grace_seconds if grace_seconds is None else float(grace_seconds)
    refs = _existing(target, settings.refs)
    lists = _existing(target, settings.lists)
    cutoff = time.time() - grace
    database = target.database
    deleted = 0
    while True:
        files, abandoned = database.write(
            lambda db: collect_batch(db, refs, cutoff, COLLECT_BATCH, lists)
        )
        deleted += files
        if files < COLLECT_BATCH and abandoned < COLLECT_BATCH:
            return deleted


def _existing(store: Store, refs: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The `refs` whose table and column exist in the database."""
    read_engine = store.database.engines()[0]
    with read_engine.connect() as conn:
        inspector = sa.inspect(conn)
        tables = set(inspector.get_table_names())
        columns = {t: {c["name"] for c in inspector.get_columns(t)} for t, _ in refs if t in tables}
    return [(t, c) for t, c in refs if c in columns.get(t, ())]


def _collect_pass(store: Store) -> dict[str, int]:
    return {File.__tablename__: collect(store=store)}


PASS_TASKS.append(_collect_pass)

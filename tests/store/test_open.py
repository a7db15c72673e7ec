"""rx.open(): creating a store, finding it again, closing it, refusing what cannot be a store."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Field, SQLModel

import rxnb as rx
from rxnb.reactive import open_stores

THREAD_NAMES = {"rxnb-reactor", "rxnb-change-feed"}
NOBODY = 65534


# -- fixtures and helpers ------------------------------------------------------------


def url_of(path: Path) -> str:
    return f"sqlite:///{path}"


def table_names(db: Path) -> set[str]:
    conn = sqlite3.connect(db)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    finally:
        conn.close()


def journal_mode(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA journal_mode").fetchone()[0])
    finally:
        conn.close()


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() >= deadline:
            return condition()
        time.sleep(0.01)
    return True


# -- creating ------------------------------------------------------------------------


def test_open_creates_folder_and_file_in_wal_mode_with_all_tables(
    tmp_path: Path, forget_table: Callable[[sa.Table], None]
) -> None:
    class OpenCreatedNote(SQLModel, table=True):
        __tablename__ = "open_created_note"
        id: int | None = Field(default=None, primary_key=True)
        text: str

    forget_table(OpenCreatedNote.__table__)
    db = tmp_path / "deeper" / "still deeper" / "store.db"
    assert not db.parent.exists()

    store = rx.open(url_of(db))
    try:
        assert db.parent.is_dir()
        assert db.is_file()
        assert journal_mode(db) == "wal"
        assert {"rx_changes", "rx_tables", "open_created_note"} <= table_names(db)
    finally:
        store.close()
    assert journal_mode(db) == "wal"  # WAL is a property of the file: it stays


def test_open_an_existing_empty_file_works_and_uses_wal(tmp_path: Path) -> None:
    db = tmp_path / "empty.db"
    db.touch()
    store = rx.open(url_of(db))
    store.close()
    assert journal_mode(db) == "wal"
    assert {"rx_changes", "rx_tables"} <= table_names(db)


def test_close_checkpoints_and_releases_the_file(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = rx.open(url_of(db))
    store.close()
    # The last connection to a WAL database checkpoints and deletes the -wal file;
    # one left behind means a connection of the closed store is still open.
    assert not Path(f"{db}-wal").exists()


# -- one store per file --------------------------------------------------------------


def test_open_twice_returns_the_same_store(tmp_path: Path) -> None:
    url = url_of(tmp_path / "store.db")
    store = rx.open(url)
    try:
        assert rx.open(url) is store
        assert rx.current_store() is store
    finally:
        store.close()


def test_differently_spelled_urls_of_one_file_give_the_same_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sub").mkdir()
    monkeypatch.chdir(tmp_path)
    store = rx.open(url_of(tmp_path / "store.db"))
    try:
        assert rx.open("sqlite:///store.db") is store
        assert rx.open("sqlite:///./store.db") is store
        assert rx.open("sqlite:///sub/../store.db") is store
        assert rx.open(url_of(tmp_path / "sub" / ".." / "store.db")) is store
        monkeypatch.setenv("RXNB_URL", "sqlite:///store.db")
        assert rx.open() is store
    finally:
        store.close()


def test_after_close_open_returns_a_new_store(tmp_path: Path) -> None:
    url = url_of(tmp_path / "store.db")
    first = rx.open(url)
    first.close()
    assert first.closed
    second = rx.open(url)
    try:
        assert second is not first
        assert not second.closed
        assert rx.open(url) is second
        assert rx.current_store() is second
    finally:
        second.close()
    assert first.closed


def test_reopen_after_close_with_table_classes(
    tmp_path: Path, forget_table: Callable[[sa.Table], None]
) -> None:
    class OpenReopened(SQLModel, table=True):
        __tablename__ = "open_reopened"
        id: int | None = Field(default=None, primary_key=True)
        text: str
        maybe: str | None = None
        count: int = 0

    forget_table(OpenReopened.__table__)
    url = url_of(tmp_path / "store.db")
    rx.open(url).close()
    store = rx.open(url)  # the same classes, the same tables: no difference
    store.close()


def test_close_stops_the_store_threads(tmp_path: Path) -> None:
    before = set(threading.enumerate())
    store = rx.open(url_of(tmp_path / "store.db"))
    started = [t for t in threading.enumerate() if t not in before and t.name in THREAD_NAMES]
    assert {t.name for t in started} == THREAD_NAMES

    store.close()

    def stopped() -> bool:
        return not any(t.is_alive() for t in started)

    assert wait_until(stopped), f"still running after close: {[t for t in started if t.is_alive()]}"
    assert not any(t.name in THREAD_NAMES for t in set(threading.enumerate()) - before)


def test_close_twice_is_harmless(tmp_path: Path) -> None:
    store = rx.open(url_of(tmp_path / "store.db"))
    store.close()
    store.close()
    assert store.closed


# -- the default URL -----------------------------------------------------------------


def test_default_url_is_rxnb_folder_under_cwd(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    store = rx.open()
    try:
        db = tmp_path / ".rxnb" / "rxnb.db"
        assert db.is_file()
        assert journal_mode(db) == "wal"
        assert rx.open(url_of(db)) is store
    finally:
        store.close()


def test_default_url_comes_from_rxnb_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    db = tmp_path / "elsewhere" / "env.db"
    monkeypatch.setenv("RXNB_URL", url_of(db))
    store = rx.open()
    try:
        assert db.is_file()
        assert not (tmp_path / ".rxnb").exists()
        assert rx.open(url_of(db)) is store
    finally:
        store.close()


# -- what cannot be a store ----------------------------------------------------------


@pytest.mark.parametrize(
    "content",
    [
        b"These are my notes, not a database.\n" * 20,
        b"hi\n",
        b"SQLite format 3\x00" + b"\x07garbage after a valid header " * 200,
    ],
    ids=["text", "short-text", "sqlite-header-then-garbage"],
)
def test_open_a_file_that_is_not_sqlite(tmp_path: Path, content: bytes) -> None:
    db = tmp_path / "notes.db"
    db.write_bytes(content)
    with pytest.raises(rx.StoreOpenError) as info:
        rx.open(url_of(db))
    assert str(db) in str(info.value)
    assert db.read_bytes() == content
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]
    assert not open_stores() or all(s.url != url_of(db) for s in open_stores())


def test_open_a_folder_is_refused(tmp_path: Path) -> None:
    folder = tmp_path / "a-folder.db"
    folder.mkdir()
    with pytest.raises(rx.StoreOpenError) as info:
        rx.open(url_of(folder))
    assert str(folder) in str(info.value)


@pytest.mark.parametrize("url", ["not a url", "", "::::", "sqlite//missing-colon.db"])
def test_open_a_string_that_is_not_a_database_url(url: str, tmp_path: Path) -> None:
    with pytest.raises(rx.StoreOpenError):
        rx.open(url)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:"])
def test_open_in_memory_sqlite_is_refused(url: str) -> None:
    with pytest.raises(rx.StoreOpenError) as info:
        rx.open(url)
    assert "memory" in str(info.value)


_UNWRITABLE = textwrap.dedent(
    """
    import json, os, sys
    import rxnb as rx

    warm, target, drop = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
    # Load everything rxnb needs while still root: the interpreter's own files may not
    # be readable by `nobody` (they live under /root).
    rx.open("sqlite:///" + warm).close()
    try:
        raise rx.StoreOpenError("warm up")
    except rx.StoreOpenError:
        pass
    if drop:
        os.setgroups([])
        os.setgid(NOBODY)
        os.setuid(NOBODY)
    assert not os.access(os.path.dirname(target), os.W_OK)
    try:
        store = rx.open("sqlite:///" + target)
    except rx.StoreOpenError as exc:
        print("RESULT " + json.dumps({"error": type(exc).__name__, "message": str(exc)}))
    except BaseException as exc:
        print("RESULT " + json.dumps({"error": type(exc).__name__, "message": repr(exc)}))
    else:
        store.close()
        print("RESULT " + json.dumps({"error": None, "message": ""}))
    """
).replace("NOBODY", str(NOBODY))


def test_open_in_a_folder_without_write_permission() -> None:
    # Root ignores permission bits, so as root the opening process drops to `nobody`
    # after importing rxnb. The folders live in a fresh /tmp folder that `nobody` can
    # traverse (pytest's tmp_path is under a root-only folder).
    as_root = os.geteuid() == 0
    base = Path(tempfile.mkdtemp(prefix="rxnb-perm-", dir="/tmp"))
    try:
        base.chmod(0o755)
        warm = base / "warm"
        warm.mkdir()
        locked = base / "locked"
        locked.mkdir()
        locked.chmod(0o555)
        target = locked / "store.db"
        proc = subprocess.run(
            [sys.executable, "-c", _UNWRITABLE, str(warm / "w.db"), str(target), str(int(as_root))],
            capture_output=True,
            text=True,
            timeout=90,
            cwd=base,
            env={k: v for k, v in os.environ.items() if k != "RXNB_URL"},
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        results = [ln[7:] for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
        assert len(results) == 1, proc.stdout + proc.stderr
        result = json.loads(results[0])
        assert result["error"] == "StoreOpenError", result
        assert str(target) in result["message"], result["message"]
        assert list(locked.iterdir()) == []
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _can_make_immutable() -> bool:
    if os.geteuid() != 0 or shutil.which("chattr") is None:
        return False
    probe = Path(tempfile.mkdtemp(prefix="rxnb-chattr-"))
    try:
        made = subprocess.run(["chattr", "+i", str(probe)], capture_output=True, check=False)
        subprocess.run(["chattr", "-i", str(probe)], capture_output=True, check=False)
        return made.returncode == 0
    finally:
        shutil.rmtree(probe, ignore_errors=True)


@pytest.mark.skipif(
    not _can_make_immutable(),
    reason="needs root and `chattr +i` support on the temporary folder's file system",
)
def test_open_in_an_immutable_folder(tmp_path: Path) -> None:
    # Even root cannot create files in a folder marked immutable.
    locked = tmp_path / "locked"
    locked.mkdir()
    subprocess.run(["chattr", "+i", str(locked)], check=True)
    try:
        target = locked / "store.db"
        with pytest.raises(rx.StoreOpenError) as info:
            rx.open(url_of(target))
        assert str(target) in str(info.value)
        assert list(locked.iterdir()) == []
    finally:
        subprocess.run(["chattr", "-i", str(locked)], check=True)

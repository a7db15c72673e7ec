"""Retention (issue 15, item 6): `rx.retention`, `rx.prune`, `store.vacuum`.

Rows are made old by writing their `finished_at` in the past, as the runs of a week
ago would have it. Each test taking `url` or `store` runs on SQLite and PostgreSQL.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from polling import until
from procs import finish, python
from sqlmodel import SQLModel

import rxnb as rx
from rxnb.agents._model import Message
from rxnb.execution import _retention
from rxnb.llm import Generation
from rxnb.store import Write
from rxnb.workflows import ChildLink, Event, JournalEntry

DAY = 86400.0
OLD = time.time() - 3 * DAY
"""When the old runs finished: three days ago (the tests keep one day)."""
RECENT = time.time() - 3600.0
UNFINISHED = ["queued", "running", "sleeping", "waiting", "paused"]


def table(model: Any) -> sa.Table:
    return model.__table__  # type: ignore[no-any-return]


def add_runs(
    store: rx.Store,
    count: int,
    *,
    status: str = "succeeded",
    finished_at: float | None = OLD,
    journal: int = 0,
    generations: int = 0,
    events: int = 0,
    args: str = "{}",
) -> list[str]:
    """`count` runs written directly, each with `journal` journal entries,
    `generations` generations and `events` events; their ids."""
    ids = [uuid.uuid4().hex for _ in range(count)]
    when = finished_at or OLD
    runs = [
        {
            "id": i,
            "function": "tests.flow.nothing",
            "args": args,
            "status": status,
            "due_at": time.time() + 30 * DAY,  # never due: no executor takes them
            "created_at": when - 10,
            "finished_at": finished_at,
        }
        for i in ids
    ]
    entries = [
        {"run_id": i, "seq": s, "name": "step", "kind": "step", "started_at": when - 5}
        for i in ids
        for s in range(journal)
    ]
    streamed = [
        {
            "run_id": i,
            "target": "notes",
            "row_key": "1",
            "field": "text",
            "model": "m",
            "status": "done",
            "started_at": when - 5,
        }
        for i in ids
        for _ in range(generations)
    ]
    sent = [
        {"run_id": i, "name": "go", "payload": "null", "sent_at": when - 5}
        for i in ids
        for _ in range(events)
    ]

    def write(db: rx.Writer) -> None:
        for model, rows in (
            (rx.Run, runs),
            (JournalEntry, entries),
            (Generation, streamed),
            (Event, sent),
        ):
            if rows:
                db.execute(sa.insert(table(model)), rows)

    store.database.write(write)
    return ids


def link(store: rx.Store, child: str, parent: str) -> None:
    store.database.write(lambda db: db.add(ChildLink(child_id=child, parent_id=parent, seq=0)))


def count(store: rx.Store, model: Any, *where: Any) -> int:
    t = table(model)
    query = sa.select(sa.func.count()).select_from(t).where(*where)
    return int(store.database.read(lambda db: db.execute(query).scalar_one())[0])


def present(store: rx.Store, ids: Sequence[str]) -> set[str]:
    t = table(rx.Run)
    query = sa.select(t.c.id).where(t.c.id.in_(list(ids)))
    return set(store.database.read(lambda db: list(db.execute(query).scalars()))[0])


def last_pass(store: rx.Store) -> float | None:
    row = store.database.read(lambda db: db.get(_retention.Maintenance, "retention"))[0]
    return row.last_pass_at if row is not None else None


def test_prune_deletes_old_finished_runs_with_their_rows_and_keeps_the_rest(
    store: rx.Store,
) -> None:
    old = {
        status: add_runs(store, 2, status=status, journal=3, generations=1, events=1)
        for status in ("succeeded", "failed", "cancelled")
    }
    # Unfinished runs are kept however old, even with a `finished_at` of an earlier
    # attempt (a run retried after it failed keeps it).
    unfinished = [
        run_id
        for status in UNFINISHED
        for run_id in add_runs(store, 1, status=status, journal=2, generations=1, events=1)
    ]
    recent = add_runs(store, 2, finished_at=RECENT, journal=2, generations=1)
    # A finished child of an unfinished parent stays (its parent will read it)...
    (running_parent,) = add_runs(store, 1, status="waiting", journal=1)
    (kept_child,) = add_runs(store, 1, journal=2)
    link(store, kept_child, running_parent)
    # ...and one of a finished parent goes with it, in the batch after its parent's.
    (done_parent,) = add_runs(store, 1, journal=1)
    (done_child,) = add_runs(store, 1, journal=2)
    link(store, done_child, done_parent)
    # An agent's messages are the user's: kept, though their turn's run is gone.
    store.database.write(
        lambda db: db.add(Message(thread_id="t1", role="user", text="hi", run_id=old["failed"][0]))
    )

    pruned = rx.prune(days=1, store=store)

    assert pruned.skipped is None
    assert pruned.deleted == {
        "rx_runs": 6 + 2,
        "rx_journal": 6 * 3 + 1 + 2,
        "rx_events": 6,
        "rx_children": 1,
        "rx_generations": 6,
    }
    assert pruned.batches == 2  # the child only once its parent was gone (rule 2)
    assert present(store, [i for ids in old.values() for i in ids] + [done_parent]) == set()
    kept = [*unfinished, *recent, running_parent, kept_child]
    assert present(store, kept) == set(kept)
    assert count(store, JournalEntry) == len(UNFINISHED) * 2 + 2 * 2 + 1 + 2
    assert count(store, Generation) == len(UNFINISHED) + 2
    assert count(store, Event) == len(UNFINISHED)
    assert count(store, ChildLink) == 1
    assert count(store, Message) == 1
    # A second pass finds nothing more to do.
    assert rx.prune(days=1, store=store).runs == 0


def test_prune_goes_in_batches_one_transaction_each(store: rx.Store) -> None:
    add_runs(store, 25, journal=2, generations=1)
    add_runs(store, 3, finished_at=RECENT)
    commits: list[Sequence[Write]] = []
    store.database.add_commit_listener(
        lambda writes: commits.append(writes) if any(w.table == "rx_runs" for w in writes) else None
    )

    pruned = rx.prune(days=1, batch=10, store=store)

    assert (pruned.runs, pruned.batches) == (25, 3)
    assert pruned.deleted["rx_journal"] == 50
    assert pruned.deleted["rx_generations"] == 25
    assert len(commits) == 3  # one commit per batch wrote to rx_runs
    assert count(store, rx.Run) == 3


def test_nothing_is_pruned_without_a_retention(store: rx.Store) -> None:
    add_runs(store, 3)

    assert rx.retention(store=store).days is None
    pruned = rx.prune(store=store)

    assert pruned.runs == 0
    assert pruned.skipped is not None
    assert "rx.retention(days=" in pruned.skipped
    assert count(store, rx.Run) == 3


@dataclass(frozen=True)
class BadSetting:
    call: str
    value: Any
    expected: str


BAD_SETTINGS = [
    BadSetting("retention", -1, "positive"),
    BadSetting("retention", 0, "positive"),
    BadSetting("retention", math.nan, "finite"),
    BadSetting("retention", math.inf, "finite"),
    BadSetting("retention", "x", "not str"),
    BadSetting("retention", True, "not bool"),
    BadSetting("prune", -2.5, "positive"),
    BadSetting("prune", "7", "not str"),
]


@pytest.mark.parametrize("case", BAD_SETTINGS, ids=lambda c: f"{c.call}-{c.value!r}")
def test_a_bad_setting_names_the_problem_and_the_fix(case: BadSetting) -> None:
    function = rx.retention if case.call == "retention" else rx.prune

    with pytest.raises(rx.ArgumentError) as caught:  # checked before any store is used
        function(days=case.value)

    message = str(caught.value)
    assert "\n" not in message
    assert f"rx.{case.call}(days={case.value!r})" in message
    assert case.expected in message
    assert "e.g. days=7" in message


def test_a_bad_batch_size_is_refused() -> None:
    with pytest.raises(rx.ArgumentError, match=r"batch=0\): batch must be a whole number"):
        rx.prune(days=1, batch=0)


def test_the_store_prunes_by_itself_once_a_retention_is_set(
    store: rx.Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_retention, "FIRST_DELAY", 0.05)
    old = add_runs(store, 4, journal=1)
    recent = add_runs(store, 1, finished_at=RECENT)

    assert rx.retention(days=1, store=store) == _retention.Retention(1.0)

    until(lambda: not present(store, old), timeout=10)
    assert present(store, recent) == set(recent)
    assert count(store, JournalEntry) == 0
    until(lambda: last_pass(store) is not None)  # the pass has given its lease back
    assert rx.retention(days=None, store=store).days is None
    assert rx.retention(store=store).days is None


HOLDER = """
import json, os, sys, time
from pathlib import Path

import rxnb as rx
from rxnb.execution import _retention

url, folder, lease = sys.argv[1], Path(sys.argv[2]), float(sys.argv[3])
_retention.LEASE_SECONDS = lease
store = rx.open(url)
paused = []


def after_commit(writes):
    # After the first batch has committed (between transactions, holding the lease
    # only): say so, and wait for the test to let the pass go on.
    if not paused and any(w.table == "rx_runs" for w in writes):
        paused.append(True)
        (folder / "pruning").write_text(str(os.getpid()))
        deadline = time.monotonic() + 30
        while not (folder / "go").exists() and time.monotonic() < deadline:
            time.sleep(0.01)


store.database.add_commit_listener(after_commit)
result = rx.prune(batch=5)  # the store's setting, written by the test's process
print(json.dumps({"deleted": result.deleted, "batches": result.batches,
                  "skipped": result.skipped, "days": rx.retention().days}))
store.close()
"""


def test_a_second_process_skips_the_pass_another_is_doing(url: str, tmp_path: Path) -> None:
    store = rx.open(url)
    try:
        add_runs(store, 20, journal=1)
        rx.retention(days=1, store=store)
        holder = python(HOLDER, url, str(tmp_path), "300")
        until(lambda: (tmp_path / "pruning").exists() or holder.poll() is not None, timeout=30)
        assert holder.poll() is None, holder.communicate()

        mine = rx.prune(store=store)

        assert mine.runs == 0
        assert mine.skipped is not None
        assert f"pid {holder.pid} " in mine.skipped
        assert count(store, rx.Run) == 15  # the other's first batch only
        (tmp_path / "go").write_text("")
        theirs = json.loads(finish(holder))
        assert theirs["skipped"] is None
        assert theirs["days"] == 1.0  # the setting, read from the store
        assert (theirs["deleted"]["rx_runs"], theirs["batches"]) == (20, 4)
        assert theirs["deleted"]["rx_journal"] == 20
        assert count(store, rx.Run) == 0
        assert rx.prune(store=store).skipped is None  # the lease was given back
    finally:
        store.close()


def test_the_lease_of_a_killed_process_expires(url: str, tmp_path: Path) -> None:
    store = rx.open(url)
    try:
        add_runs(store, 20, journal=1)
        rx.retention(days=1, store=store)
        holder = python(HOLDER, url, str(tmp_path), "3")
        until(lambda: (tmp_path / "pruning").exists() or holder.poll() is not None, timeout=30)
        assert rx.prune(store=store).skipped is not None
        holder.kill()  # SIGKILL, in the middle of its pass
        holder.communicate(timeout=10)

        mine = until(
            lambda: (p := rx.prune(store=store)).skipped is None and p, timeout=10, interval=0.1
        )

        assert mine.runs == 15
        assert count(store, rx.Run) == 0
        assert count(store, JournalEntry) == 0
    finally:
        store.close()


@pytest.mark.sqlite_only
def test_vacuum_gives_the_space_of_a_prune_back_to_the_file(store: rx.Store) -> None:
    add_runs(store, 2000, args=json.dumps({"text": "x" * 2000}), journal=1)
    path = Path(store.database.url.removeprefix("sqlite:///"))
    store.vacuum()  # the WAL checkpointed into the file: its size is the data's
    before = path.stat().st_size
    assert before > 4_000_000

    assert rx.prune(days=1, store=store).runs == 2000
    freed = store.vacuum()

    after = path.stat().st_size
    assert after < before / 4
    assert freed >= before - after
    assert count(store, rx.Run) == 0


@pytest.mark.postgres_only
def test_vacuum_on_postgres_analyzes_the_store_tables(store: rx.Store) -> None:
    add_runs(store, 200, journal=1)
    assert rx.prune(days=1, store=store).runs == 200

    freed = store.vacuum()

    assert freed >= 0
    query = sa.text(
        "SELECT count(*) FROM pg_stat_user_tables WHERE schemaname = current_schema() "
        "AND relname IN ('rx_runs', 'rx_journal') AND last_vacuum IS NOT NULL "
        "AND last_analyze IS NOT NULL"
    )
    until(lambda: store.database.read(lambda db: db.execute(query).scalar_one())[0] == 2)


def test_every_table_keyed_by_run_id_is_pruned_with_its_run() -> None:
    """A new table of rxnb's with a `run_id` column must be registered with
    `delete_with_runs`, or be kept on purpose here."""
    # The user's conversations and the results they compare (see _retention rule 6).
    kept_on_purpose = {"rx_messages", "rx_comparison_columns", "rx_eval_results"}
    registered = {(c.table.name, c.name) for c in _retention.RUN_KEYED}
    for name, t in SQLModel.metadata.tables.items():
        if name.startswith("rx_") and "run_id" in t.c and name not in kept_on_purpose:
            assert (name, "run_id") in registered, f"{name}.run_id is not pruned with its run"
    assert ("rx_children", "child_id") in registered
    assert ("rx_children", "parent_id") in registered

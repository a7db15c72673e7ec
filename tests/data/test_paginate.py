"""`db.paginate` / `rx.Page`: keyset pages that stay gap-free and narrow while live."""

from __future__ import annotations

import datetime
import random
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import pytest
import sqlalchemy as sa
from sqlmodel import Field, SQLModel, select

import rxnb as rx

T = TypeVar("T")


class PageRow(SQLModel, table=True):
    __tablename__ = "t_page_row"
    id: int | None = Field(default=None, primary_key=True)
    rank: int = Field(index=True)
    label: str = ""


class Mixed(SQLModel, table=True):
    __tablename__ = "t_page_mixed"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime.datetime
    score: float
    word: str
    flag: bool
    note: str | None = None
    amount: int | None = None


def mixed_statement(spec: str) -> Any:
    """`spec` as "note+,word-": columns of Mixed, each ascending (+) or descending (-)."""
    clauses = []
    for part in spec.split(","):
        column = getattr(Mixed, part[:-1])
        clauses.append(column.desc() if part.endswith("-") else column)
    return select(Mixed).order_by(*clauses)


@rx.query
def mixed_page(db: rx.Reader, spec: str, cursor: str | None = None) -> rx.Page[Mixed]:
    return db.paginate(mixed_statement(spec), cursor, size=4)


@rx.query
def mixed_rows(db: rx.Reader) -> list[Mixed]:
    return list(db.exec(select(Mixed)).all())


@rx.mutation
def mixed_churn(db: rx.Writer, seed: int, inserts: int, deletes: list[int]) -> None:
    rng = random.Random(seed)
    base = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)
    for _ in range(inserts):
        db.add(
            Mixed(
                at=base + datetime.timedelta(microseconds=rng.randrange(5) * 1001),
                score=rng.choice([-1.5, 0.1, 1 / 3, 2.0, 1e-9]),
                word=rng.choice(["alpha", "beta", "gamma"]),
                flag=rng.random() < 0.5,
                note=rng.choice([None, "x", "y"]),
                amount=rng.choice([None, -3, 0, 7]),
            )
        )
    for row_id in deletes:
        row = db.get(Mixed, row_id)
        if row is not None:
            db.delete(row)


def ordered() -> Any:
    return select(PageRow).order_by(PageRow.rank.desc())


@rx.query
def rows_page(db: rx.Reader, cursor: str | None = None, size: int = 200) -> rx.Page[PageRow]:
    return db.paginate(ordered(), cursor, size)


@rx.query
def rows_up(db: rx.Reader, cursor: str | None = None, size: int = 5) -> rx.Page[PageRow]:
    return db.paginate(select(PageRow).order_by(PageRow.id), cursor, size)


@rx.query
def all_keys(db: rx.Reader) -> list[tuple[int, int]]:
    order = (PageRow.rank.desc(), PageRow.id.desc())
    return [
        (rank, i or 0) for rank, i in db.exec(select(PageRow.rank, PageRow.id).order_by(*order))
    ]


@rx.mutation
def fill(db: rx.Writer, ranks: list[int]) -> None:
    sa.orm.Session.execute(db, sa.insert(PageRow), [{"rank": r} for r in ranks])


@rx.mutation
def churn(db: rx.Writer, inserts: list[int], deletes: list[int]) -> None:
    for rank in inserts:
        db.add(PageRow(rank=rank, label="new"))
    for row_id in deletes:
        row = db.get(PageRow, row_id)
        if row is not None:
            db.delete(row)


@rx.mutation
def relabel(db: rx.Writer, row_id: int, label: str) -> None:
    row = db.get(PageRow, row_id)
    assert row is not None
    row.label = label
    db.add(row)


def _read(store: rx.Store, call: Callable[[rx.Reader], T]) -> T:
    return store.database.read(call)[0]


def keys(page: rx.Page[PageRow]) -> list[tuple[int, int]]:
    return [(r.rank, r.id or 0) for r in page.items]


def live_chain(store: rx.Store, start: str | None, pages: int, size: int) -> list[rx.Subscription]:
    subs = []
    cursor = start
    for _ in range(pages):
        sub = store.subscribe(rows_page, {"cursor": cursor, "size": size})
        assert sub.error is None, sub.error
        subs.append(sub)
        cursor = sub.result.cursor
    return subs


def test_pagination_fuzz_live_pages_stay_gap_free(store: rx.Store) -> None:
    """10,000 rows, 5 live pages; after each phase of random inserts and deletes (at
    the page boundaries, inside, around, at both ends of the result), the pages
    concatenated are exactly the full query's rows between the first page's start and
    the last page's end."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    fill(ranks=[rng.randrange(3000) for _ in range(10_000)])
    start = rows_page(cursor=None, size=3000)
    start_key = keys(start)[-1]
    subs = live_chain(store, start.cursor, pages=5, size=200)
    cursors = [start.cursor] + [s.result.cursor for s in subs]
    end_key = keys(subs[-1].result)[-1]
    boundary_ranks = [start_key[0]] + [keys(s.result)[-1][0] for s in subs]
    for phase in range(10):
        current = all_keys()
        in_pages = [k for k in current if start_key > k >= end_key]
        inserts = [rng.choice(boundary_ranks) for _ in range(8)]  # ties with boundaries
        inserts += [rng.randrange(end_key[0], start_key[0] + 1) for _ in range(12)]
        inserts += [rng.randrange(3000) for _ in range(6)] + [-1 - phase, 3000 + phase]
        boundary_rows = [k[1] for k in current if k in (start_key, end_key)]
        boundary_rows += [keys(s.result)[-1][1] for s in subs if s.result.items]
        deletes = rng.sample(boundary_rows, k=min(3, len(boundary_rows)))
        deletes += [k[1] for k in rng.sample(in_pages, k=min(15, len(in_pages)))]
        deletes += [k[1] for k in rng.sample(current, k=6)] + [current[0][1], current[-1][1]]
        churn(inserts=inserts, deletes=deletes)
        assert store.wait_idle(30)
        expected = [k for k in all_keys() if start_key > k >= end_key]
        seen = [k for s in subs for k in keys(s.result)]
        assert seen == expected, f"seed {seed}, phase {phase}: pages differ from the query"
        assert [s.result.cursor for s in subs] == cursors[1:], f"seed {seed}: a cursor moved"
        assert not any(s.result.done for s in subs), f"seed {seed}"


def test_write_reruns_only_the_page_it_touches(store: rx.Store) -> None:
    fill(ranks=list(range(10_000)))
    subs = live_chain(store, None, pages=5, size=200)
    assert [s.runs for s in subs] == [1] * 5
    middle = subs[2].result.items[100]
    relabel(row_id=middle.id, label="edited")
    assert store.wait_idle(10)
    assert [s.runs for s in subs] == [1, 1, 2, 1, 1]
    assert subs[2].result.items[100].label == "edited"
    churn(inserts=[5], deletes=[])  # far past page 5 (ranks run down from 9,999)
    assert store.wait_idle(10)
    assert [s.runs for s in subs] == [1, 1, 2, 1, 1]


def test_pages_keep_their_end_and_the_last_page_grows(store: rx.Store) -> None:
    fill(ranks=[0] * 12)  # ids 1..12, ordered by id ascending
    subs = [store.subscribe(rows_up, {"cursor": None})]
    for _ in range(2):
        subs.append(store.subscribe(rows_up, {"cursor": subs[-1].result.cursor}))
    first, second, last = (s.result for s in subs)
    assert [len(p.items) for p in (first, second, last)] == [5, 5, 2]
    assert (first.done, second.done, last.done) == (False, False, True)
    assert last.cursor is None
    assert subs[2].payload["done"] is True and len(subs[2].payload["items"]) == 2

    churn(inserts=[0, 0, 0], deletes=[5])  # append 13..15; drop page 1's end row
    assert store.wait_idle(10)
    first, second, last = (s.result for s in subs)
    assert [r.id for r in first.items] == [1, 2, 3, 4]
    assert first.cursor == subs[0].result.cursor and not first.done
    assert [r.id for r in second.items] == [6, 7, 8, 9, 10]  # starts after the gone row 5
    assert [r.id for r in last.items] == [11, 12, 13, 14, 15]
    assert last.done and last.cursor is None
    # A one-off read is a fresh first run: 5 rows, its own end.
    fresh = rows_up(cursor=None)
    assert [r.id for r in fresh.items] == [1, 2, 3, 4, 6] and not fresh.done


def _expected(rows: Sequence[Mixed], spec: Sequence[tuple[str, bool]]) -> list[int]:
    """Python's view of the order: NULL smallest, the id (last direction) as tie-breaker."""
    ordered = sorted(rows, key=lambda r: r.id or 0, reverse=spec[-1][1])
    for name, descending in reversed(spec):

        def key(r: Mixed, name: str = name) -> tuple[bool, Any]:
            value = getattr(r, name)
            return (value is not None, value if value is not None else 0)

        ordered = sorted(ordered, key=key, reverse=descending)
    return [r.id or 0 for r in ordered]


SPECS: list[list[tuple[str, bool]]] = [
    [("at", False)],
    [("score", True)],
    [("word", False), ("flag", True)],
    [("note", False)],
    [("note", True)],
    [("amount", True), ("word", False)],
    [("flag", False), ("at", True)],
]


@pytest.mark.parametrize(
    "spec", SPECS, ids=lambda s: ",".join(f"{n}{'-' if d else '+'}" for n, d in s)
)
def test_cursors_round_trip_every_kind_of_value(
    store: rx.Store, spec: list[tuple[str, bool]]
) -> None:
    rng = random.Random(7)
    base = datetime.datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=datetime.UTC)

    def insert(db: rx.Writer) -> list[Mixed]:
        rows = [
            Mixed(
                at=base + datetime.timedelta(microseconds=rng.randrange(5) * 1001),
                score=rng.choice([-1.5, 0.1, 1 / 3, 2.0, 1e-9]),
                word=rng.choice(["alpha", "beta", "gamma"]),
                flag=rng.random() < 0.5,
                note=rng.choice([None, "x", "y"]),
                amount=rng.choice([None, -3, 0, 7]),
            )
            for _ in range(23)
        ]
        db.add_all(rows)
        db.flush()
        return rows

    rows = store.database.write(insert)
    columns = [getattr(Mixed, name) for name, _ in spec]
    statement = select(Mixed).order_by(
        *(c.desc() if d else c for c, (_, d) in zip(columns, spec, strict=True))
    )
    seen: list[int] = []
    cursor: str | None = None
    while True:
        page = _read(store, lambda db, after=cursor: db.paginate(statement, after, size=4))
        seen += [r.id or 0 for r in page.items]
        assert (page.cursor is None) == page.done
        if page.done:
            break
        assert page.cursor is not None and page.cursor.replace("-", "").replace("_", "").isalnum()
        cursor = page.cursor
    assert seen == _expected(rows, spec)


def test_bad_input_says_what_to_do(store: rx.Store) -> None:
    fill(ranks=[1, 2, 3])
    good = rows_page(cursor=None, size=1).cursor
    bad: list[tuple[Callable[[rx.Reader], object], str]] = [
        (lambda db: db.paginate(ordered(), None, 0), "size=0"),
        (lambda db: db.paginate(ordered(), None, True), "size=True"),  # type: ignore[arg-type]
        (lambda db: db.paginate(ordered(), "nonsense!", 5), "not a page cursor"),
        (lambda db: db.paginate(ordered(), "W10", 5), "not a page cursor"),
        (lambda db: db.paginate(select(PageRow).order_by(PageRow.id), good, 5), "differently"),
        (lambda db: db.paginate(select(PageRow), None, 5), "add .order_by"),
        (lambda db: db.paginate(ordered().limit(3), None, 5), "drop them"),
        (lambda db: db.paginate(ordered().join(Mixed, sa.true()), None, 5), "one table"),
        (lambda db: db.paginate(select(PageRow).order_by(PageRow.rank + 1), None, 5), "plain"),
        (lambda db: db.paginate(select(PageRow).order_by(sa.text("rank")), None, 5), "plain"),
    ]
    for call, words in bad:
        with pytest.raises(rx.ArgumentError, match=words) as caught:
            _read(store, call)
        assert "\n" not in str(caught.value)


@pytest.mark.parametrize("spec", ["note+", "amount-,word+", "flag+,at-", "score-"])
def test_live_pages_over_nulls_and_ties_cover_the_result(store: rx.Store, spec: str) -> None:
    """Pages chained from the start to the last (done) page, over nullable columns
    with ties: after writes at and between their boundaries, together they are the
    whole ordered result, NULLs first ascending and last descending."""
    seed = random.randrange(1 << 30)
    rng = random.Random(seed)
    mixed_churn(seed=seed, inserts=30, deletes=[])
    subs = [store.subscribe(mixed_page, {"spec": spec, "cursor": None})]
    while not subs[-1].result.done:
        subs.append(store.subscribe(mixed_page, {"spec": spec, "cursor": subs[-1].result.cursor}))
    cursors = [s.result.cursor for s in subs]
    pairs = [(name[:-1], name.endswith("-")) for name in spec.split(",")]
    for phase in range(4):
        ends = [s.result.items[-1].id for s in subs if s.result.items]
        ids = [r.id for r in mixed_rows()]
        deletes = rng.sample(ends, k=min(2, len(ends))) + rng.sample(ids, k=min(4, len(ids)))
        mixed_churn(seed=seed + phase + 1, inserts=8, deletes=deletes)
        assert store.wait_idle(10)
        seen = [r.id for s in subs for r in s.result.items]
        assert seen == _expected(mixed_rows(), pairs), f"seed {seed}, phase {phase}"
        assert [s.result.cursor for s in subs] == cursors, f"seed {seed}"


def test_column_selects_give_tuples_or_values(store: rx.Store) -> None:
    fill(ranks=[3, 1, 2, 2])
    by_rank = select(PageRow.id, PageRow.rank).order_by(PageRow.rank)
    page = _read(store, lambda db: db.paginate(by_rank, None, size=3))
    assert page.items == [(2, 1), (3, 2), (4, 2)] and not page.done
    rest = _read(store, lambda db: db.paginate(by_rank, page.cursor, size=3))
    assert rest.items == [(1, 3)] and rest.done and rest.cursor is None
    ids = _read(
        store, lambda db: db.paginate(select(PageRow.id).order_by(PageRow.id.desc()), None, 9)
    )
    assert ids.items == [4, 3, 2, 1] and ids.done

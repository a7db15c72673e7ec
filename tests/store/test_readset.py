"""Read-set analysis: which statements narrow to keys or ranges, which fall back."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa
from models import Item, Message
from sqlmodel import col, select

from rxnb.store import Equals, Range, TableRead
from rxnb.store._readset import analyze_statement

MSG, ITEM = "t_message", "t_item"


@dataclass(frozen=True)
class Case:
    name: str
    statement: Any
    expected: list[TableRead] | None  # None: reads everything


CASES = [
    Case(
        "eq",
        select(Message).where(Message.thread_id == "a"),
        [TableRead(MSG, (Equals("thread_id", frozenset({"a"})),))],
    ),
    Case(
        "flipped eq",
        select(Message).where(col(Message.id) == 3),
        [TableRead(MSG, (Equals("id", frozenset({3})),))],
    ),
    Case(
        "in, NULL dropped",
        select(Item).where(col(Item.grp).in_(["a", "b", None])),
        [TableRead(ITEM, (Equals("grp", frozenset({"a", "b"})),))],
    ),
    Case(
        "range",
        select(Item).where(Item.n > 5, Item.n <= 9),
        [TableRead(ITEM, (Range("n", low=5, low_inclusive=False), Range("n", high=9)))],
    ),
    Case(
        "literal on the left",
        select(Item).where(5 < col(Item.n)),  # noqa: SIM300 (the flip is the case)
        [TableRead(ITEM, (Range("n", low=5, low_inclusive=False),))],
    ),
    Case(
        "between",
        select(Item).where(col(Item.n).between(1, 4)),
        [TableRead(ITEM, (Range("n", low=1, high=4),))],
    ),
    Case(
        "conjunction keeps what it can",
        select(Item).where(Item.grp == "g", col(Item.label).like("x%")),
        [TableRead(ITEM, (Equals("grp", frozenset({"g"})),))],
    ),
    Case(
        "or falls back to table",
        select(Item).where(sa.or_(Item.grp == "a", Item.n == 1)),
        [TableRead(ITEM)],
    ),
    Case(
        "kind mismatch falls back", select(Message).where(Message.thread_id == 5), [TableRead(MSG)]
    ),
    Case(
        "join falls back to both tables",
        select(Message, Item)
        .join(Item, col(Item.id) == col(Message.id))
        .where(Message.thread_id == "a"),
        [TableRead(MSG), TableRead(ITEM)],
    ),
    Case(
        "subquery falls back",
        select(Item).where(col(Item.id).in_(select(Message.id).where(Message.thread_id == "a"))),
        [TableRead(MSG), TableRead(ITEM)],
    ),
    Case("alias falls back", select(sa.orm.aliased(Item)).where(sa.true()), [TableRead(ITEM)]),
    Case("text reads everything", sa.text("SELECT * FROM t_item"), None),
    Case("text inside a select reads everything", select(Item).where(sa.text("n > 1")), None),
    Case("no table reads nothing", select(sa.literal(1)), []),
    Case(
        "eq NULL reads no row",
        select(Item).where(col(Item.grp) == sa.bindparam("g", None)),
        [TableRead(ITEM, (Equals("grp", frozenset()),))],
    ),
]


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_analyze(case: Case) -> None:
    got = analyze_statement(case.statement, {}, string_ranges=True)
    if case.expected is None:
        assert got is None
    else:
        assert got is not None
        assert sorted(got, key=repr) == sorted(case.expected, key=repr)


def test_string_ranges_only_where_the_dialect_orders_like_python() -> None:
    stmt = select(Item).where(Item.grp >= "g5")
    assert analyze_statement(stmt, {}, string_ranges=True) == [
        TableRead(ITEM, (Range("grp", low="g5"),))
    ]
    assert analyze_statement(stmt, {}, string_ranges=False) == [TableRead(ITEM)]


def test_bound_parameters_come_from_execution() -> None:
    stmt = select(Item).where(col(Item.id) == sa.bindparam("pk"))
    assert analyze_statement(stmt, {"pk": 7}, string_ranges=True) == [
        TableRead(ITEM, (Equals("id", frozenset({7})),))
    ]
    assert analyze_statement(stmt, {}, string_ranges=True) == [TableRead(ITEM)]


@pytest.mark.parametrize(
    ("image", "admitted"),
    [
        ({"grp": "g", "n": 6}, True),
        ({"grp": "h", "n": 6}, False),
        ({"grp": "g", "n": 5}, False),
        ({"grp": None, "n": 6}, False),  # NULL satisfies no comparison
        ({"n": 6}, True),  # grp unknown (e.g. too long to log): cannot rule it out
        (None, False),
    ],
)
def test_images_against_a_read(image: dict[str, object] | None, admitted: bool) -> None:
    read = TableRead(
        ITEM, (Equals("grp", frozenset({"g"})), Range("n", low=5, low_inclusive=False))
    )
    assert read.admits(image) is admitted

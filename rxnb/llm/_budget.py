"""Budgets: `rx.budget(usd=2.00, per="day")`, for the whole store, shared by every
process using it.

1. Spending is summed from the cost recorded on runs (`Run.cost`, which every priced
   generation adds to, `stream_into`, `stream` and agents alike): per day (UTC), the
   runs unfinished or finished since midnight; in total (`per=None`), every run the
   store still holds. Generations outside a run, and unpriced models, cost nothing.
2. The budget is checked when a generation starts, never during one: the generation
   that crosses it finishes, and generations started before it was reached may take
   spending past it. Once spending reaches the budget, new generations wait (their
   row `waiting`, with the reason) until the budget is raised (`rx.budget` from any
   process) or, per day, the day turns. No run fails because of a budget.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field, SQLModel, col, select

from rxnb.errors import ArgumentError
from rxnb.execution import Run
from rxnb.llm._limits import Wait
from rxnb.store import Reader, Writer, own_table

DAY = 86400.0
PERIODS = ("day", None)
STORE_SCOPE = "store"


class LlmBudget(SQLModel, table=True):
    """The store's budget: dollars per period."""

    __tablename__ = "rx_budgets"
    __table_args__ = own_table()

    scope: str = Field(primary_key=True)
    """What it covers; `store` (the whole store) for now."""
    usd: float
    per: str | None = None
    """`day` (UTC) or None (in total)."""


@dataclass(frozen=True)
class BudgetTerms:
    """A budget as the gate reads it."""

    usd: float
    per: str | None


def budget(usd: float | None, *, per: str | None = "day", store: Any = None) -> None:
    """Cap what the store's generations spend: `usd` dollars per UTC day (`per="day"`)
    or in total (`per=None`); `usd=None` removes the budget.

    Once spent, new generations wait (status `waiting`, reason "budget reached")
    until the budget is raised or the day turns; a generation under way finishes.
    """
    _check(usd, per)
    from rxnb.reactive import current_store

    target = store if store is not None else current_store()

    def body(db: Writer) -> None:
        row = db.get(LlmBudget, STORE_SCOPE)
        if usd is None:
            if row is not None:
                db.delete(row)
            return
        if row is None:
            row = LlmBudget(scope=STORE_SCOPE, usd=float(usd))
        row.usd, row.per = float(usd), per
        db.add(row)

    target.database.write(body)


def _check(usd: Any, per: Any) -> None:
    if usd is not None and (
        isinstance(usd, bool)
        or not isinstance(usd, int | float)
        or not math.isfinite(usd)
        or usd < 0
    ):
        raise ArgumentError(
            f"rx.budget: usd={usd!r}; pass dollars as a number >= 0, e.g. "
            "rx.budget(usd=2.00, per='day'), or usd=None to remove the budget"
        )
    if per not in PERIODS:
        raise ArgumentError(
            f"rx.budget: per={per!r}; pass per='day' (a UTC day) or per=None (in total)"
        )


def read_terms(db: Reader) -> BudgetTerms | None:
    """The store's budget, if it has one."""
    row = db.get(LlmBudget, STORE_SCOPE)
    return None if row is None else BudgetTerms(row.usd, row.per)


def over_budget(db: Reader, terms: BudgetTerms, now: float) -> Wait | None:
    """Rule 2: why a new generation waits, and until when, if spending reached the
    budget; else None."""
    start = period_start(terms.per, now)
    spent = spent_since(db, start)
    if spent < terms.usd:
        return None
    when = "today" if terms.per == "day" else "in total"
    return Wait(
        f"budget reached ({money(spent)} of {money(terms.usd)} {when})",
        start + DAY if terms.per == "day" else math.inf,
        frozenset({LlmBudget.__tablename__}),
    )


def period_start(per: str | None, now: float) -> float:
    """Epoch seconds of the current period's start (UTC midnight; 0 for in total)."""
    return now - now % DAY if per == "day" else 0.0


def spent_since(db: Reader, start: float) -> float:
    """Rule 1: the cost of the runs unfinished or finished since `start`."""
    query = select(sa.func.coalesce(sa.func.sum(Run.cost), 0.0)).where(col(Run.cost).is_not(None))
    if start > 0:
        query = query.where(sa.or_(col(Run.finished_at).is_(None), col(Run.finished_at) >= start))
    return float(db.exec(query).one() or 0.0)


def money(usd: float) -> str:
    """`$0.012` (two significant digits below a dollar), `$2.00` (cents above)."""
    return f"${usd:.2f}" if usd >= 1 or usd == 0 else f"${float(f'{usd:.2g}')}"

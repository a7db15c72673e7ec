"""Budgets: `rx.budget(usd=2.00, per="day")` for the whole store, or for one agent's
turns (`agent=`) or one thread (`thread=`), shared by every process using the store.

1. Spending is summed from the cost recorded on runs (`Run.cost`, which every priced
   generation adds to, `stream_into`, `stream` and agents alike): per day (UTC), the
   runs unfinished or finished since midnight; in total (`per=None`), every run the
   store still holds. Generations outside a run, and unpriced models, cost nothing.
   A later layer names the other budgets a run counts against, and how their spending
   is summed (`SCOPES`: the agents layer, an agent's turns and a thread's replies).
2. The budget is checked when a generation starts, never during one: the generation
   that crosses it finishes, and generations started before it was reached may take
   spending past it. Once spending reaches the budget, new generations wait (their
   row `waiting`, with the reason) until the budget is raised (`rx.budget` from any
   process) or, per day, the day turns. No run fails because of a budget.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
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
    """What it covers: `store` (the whole store), `agent:<name>` or `thread:<id>`."""
    usd: float
    per: str | None = None
    """`day` (UTC) or None (in total)."""


@dataclass(frozen=True)
class BudgetTerms:
    """A budget as the gate reads it."""

    usd: float
    per: str | None


SpentSince = Callable[[Reader, float], float]
"""The dollars a scope spent since a time (epoch seconds; 0: in total)."""


@dataclass(frozen=True)
class Scope:
    """A budget a generation counts against: its key, how a reason names it, and how
    its spending is summed."""

    key: str
    label: str
    spent: SpentSince


SCOPES: list[Callable[[Reader, Run], Sequence[Scope]]] = []
"""Hooks of later layers: the budgets besides the store's that a run's generations
count against (the agents layer: the turn's agent and thread)."""


def budget(
    usd: float | None,
    *,
    per: str | None = "day",
    agent: Any = None,
    thread: str | None = None,
    store: Any = None,
) -> None:
    """Cap what generations spend: `usd` dollars per UTC day (`per="day"`) or in total
    (`per=None`), for the whole store, or for one agent's turns (`agent=` an
    `rx.Agent` or its name) or one thread's replies (`thread=`); `usd=None` removes
    the budget.

    Once spent, new generations wait (status `waiting`, reason "budget reached")
    until the budget is raised or the day turns; a generation under way finishes.
    """
    _check(usd, per)
    scope = scope_key(agent, thread)
    from rxnb.reactive import current_store

    target = store if store is not None else current_store()

    def body(db: Writer) -> None:
        row = db.get(LlmBudget, scope)
        if usd is None:
            if row is not None:
                db.delete(row)
            return
        if row is None:
            row = LlmBudget(scope=scope, usd=float(usd))
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


def scope_key(agent: Any, thread: Any) -> str:
    """The budget's key: the store's, an agent's or a thread's."""
    if agent is not None and thread is not None:
        raise ArgumentError(
            "rx.budget: pass agent= or thread=, not both (a budget has one scope); "
            "set two budgets to cap both"
        )
    if agent is not None:
        name = getattr(agent, "name", agent)
        if not isinstance(name, str) or not name:
            raise ArgumentError(f"rx.budget: agent={agent!r}; pass an rx.Agent or its name")
        return f"agent:{name}"
    if thread is not None:
        if not isinstance(thread, str) or not thread:
            raise ArgumentError(f"rx.budget: thread={thread!r}; pass a thread id (a str)")
        return f"thread:{thread}"
    return STORE_SCOPE


def read_terms(db: Reader) -> dict[str, BudgetTerms]:
    """The budgets, by scope key."""
    return {row.scope: BudgetTerms(row.usd, row.per) for row in db.exec(select(LlmBudget))}


def scopes_of(db: Reader, run_id: str | None) -> list[Scope]:
    """The budgets the generations of run `run_id` count against: the store's, and
    those later layers name (`SCOPES`)."""
    scopes = [Scope(STORE_SCOPE, "", spent_since)]
    run = db.get(Run, run_id) if run_id is not None else None
    if run is not None:
        for hook in SCOPES:
            scopes.extend(hook(db, run))
    return scopes


def over_budget(db: Reader, terms: BudgetTerms, now: float, scope: Scope) -> Wait | None:
    """Rule 2: why a new generation waits, and until when, if spending reached the
    budget of `scope`; else None."""
    start = period_start(terms.per, now)
    spent = scope.spent(db, start)
    if spent < terms.usd:
        return None
    when = "today" if terms.per == "day" else "in total"
    whose = f"budget of {scope.label}" if scope.label else "budget"
    return Wait(
        f"{whose} reached ({money(spent)} of {money(terms.usd)} {when})",
        start + DAY if terms.per == "day" else math.inf,
        frozenset({LlmBudget.__tablename__}),
    )


def period_start(per: str | None, now: float) -> float:
    """Epoch seconds of the current period's start (UTC midnight; 0 for in total)."""
    return now - now % DAY if per == "day" else 0.0


def spent_since(db: Reader, start: float, function: str | None = None) -> float:
    """Rule 1: the cost of the runs (of `function`, if given) unfinished or finished
    since `start`."""
    query = select(sa.func.coalesce(sa.func.sum(Run.cost), 0.0)).where(col(Run.cost).is_not(None))
    if function is not None:
        query = query.where(Run.function == function)
    if start > 0:
        query = query.where(sa.or_(col(Run.finished_at).is_(None), col(Run.finished_at) >= start))
    return float(db.exec(query).one() or 0.0)


def money(usd: float) -> str:
    """`$0.012` (two significant digits below a dollar), `$2.00` (cents above)."""
    return f"${usd:.2f}" if usd >= 1 or usd == 0 else f"${float(f'{usd:.2g}')}"

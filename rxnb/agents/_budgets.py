"""The budgets an agent's turn counts against besides the store's: its agent's
(`rx.budget(agent=...)`, the cost of that agent's turns) and its thread's
(`rx.budget(thread=...)`, the cost of the thread's replies, whichever agent wrote
them). The llm layer's gate asks for them through `rxnb.llm.SCOPES`."""

from __future__ import annotations

import re

import sqlalchemy as sa
from sqlmodel import col, select

from rxnb.agents._model import Message
from rxnb.execution import Run
from rxnb.llm import SCOPES, Scope, spent_since
from rxnb.store import Reader

TURN = re.compile(r"rxnb\.agents\.turn\[(?P<agent>.+)\]")
"""The function name of an agent's turns (`Agent.workflow`)."""


def turn_scopes(db: Reader, run: Run) -> list[Scope]:
    """The agent and the thread of `run`, if it is an agent's turn."""
    turn = TURN.fullmatch(run.function)
    if turn is None:
        return []
    function = run.function
    scopes = [
        Scope(
            f"agent:{turn['agent']}",
            f"agent {turn['agent']}",
            lambda db, start: spent_since(db, start, function),
        )
    ]
    try:
        thread_id = run.arguments().get("thread_id")
    except ValueError:
        thread_id = None
    if isinstance(thread_id, str):
        scopes.append(
            Scope(
                f"thread:{thread_id}",
                f"thread {thread_id}",
                lambda db, start: thread_spent(db, thread_id, start),
            )
        )
    return scopes


def thread_spent(db: Reader, thread_id: str, start: float) -> float:
    """The cost of the thread's replies written since `start` (0: in total)."""
    query = select(sa.func.coalesce(sa.func.sum(Message.cost), 0.0)).where(
        Message.thread_id == thread_id, col(Message.cost).is_not(None)
    )
    if start > 0:
        query = query.where(Message.created_at >= start)
    return float(db.exec(query).one() or 0.0)


SCOPES.append(turn_scopes)

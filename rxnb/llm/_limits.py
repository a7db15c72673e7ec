"""Model limits: `rx.llm.limit("openai/*", rpm=500, tpm=200_000)`, shared by every
process of a store.

A generation reserves capacity in the store before it calls the provider, so that it
waits for capacity instead of meeting a 429:

1. A limit applies to every model whose litellm name matches its pattern (fnmatch,
   case-sensitive); a model matching several limits reserves under each.
2. Requests are spaced evenly, `60 / rpm` seconds apart (bursts of a tenth of a
   second's worth at most): providers enforce a per-minute limit over shorter periods
   too, so a minute's requests sent in its first second would meet 429s. Each
   reservation takes the next free slot on the limit's row (`next_at`), possibly in
   the future: the generation then sleeps until its slot, and waiters never race for
   the same one.
3. Tokens are counted in a sliding 60 s window of reservations: the estimate (prompt
   and `max_tokens`) when the generation starts, the real usage once it ends
   (`settle`). A generation over the window waits until enough ages out of it, or a
   settlement frees some; one estimate larger than the whole limit is cut down to it,
   so that it can go once the window is empty.
4. Each reservation updates the limit's row, in a serializable transaction: on
   PostgreSQL, concurrent reservers of one limit conflict and are retried one after
   the other, so two processes never take the same slot.
"""

from __future__ import annotations

import fnmatch
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm.attributes import flag_modified
from sqlmodel import Field, SQLModel, col, delete, select

from rxnb.errors import ArgumentError
from rxnb.store import Writer, own_table

WINDOW = 60.0
"""Seconds of the sliding token window (per-minute limits)."""
BURST_SECONDS = 0.1
"""The requests of this long may go at once (rule 2)."""
DEFAULT_MAX_TOKENS = 1024
"""The completion tokens a generation is assumed to take without a `max_tokens=`."""


class LlmLimit(SQLModel, table=True):
    """One limit: the models it covers, its rates, and its next free request slot."""

    __tablename__ = "rx_llm_limits"
    __table_args__ = own_table()

    pattern: str = Field(primary_key=True)
    """fnmatch pattern over litellm model names (`openai/*`)."""
    rpm: int | None = None
    tpm: int | None = None
    next_at: float = Field(default=0.0, sa_column_kwargs={"server_default": "0"})
    """Epoch seconds of the next request slot (rule 2); written by every reservation."""


class LlmReservation(SQLModel, table=True):
    """Tokens one generation reserved under one limit with a token rate (rule 3)."""

    __tablename__ = "rx_llm_reservations"
    __table_args__ = own_table()

    id: int | None = Field(default=None, primary_key=True)
    pattern: str = Field(index=True)
    at: float = Field(index=True)
    """When the request goes (its slot); it leaves the window `WINDOW` s later."""
    tokens: int
    """The estimate, then the real usage once settled."""
    settled: bool = Field(default=False, sa_column_kwargs={"server_default": sa.false()})


@dataclass(frozen=True)
class Wait:
    """Why a generation cannot go yet, and until when (epoch seconds; `math.inf`:
    until one of `tables` is written)."""

    reason: str
    until: float
    tables: frozenset[str]


@dataclass(frozen=True)
class Reservation:
    """A generation's place under its limits: when it may call (`at`), and the token
    reservations to settle once it ends (`ids`); why it waits until then."""

    at: float
    ids: tuple[int, ...]
    reason: str | None = None


NO_RESERVATION = Reservation(0.0, ())


def limit(
    pattern: str, *, rpm: int | None = None, tpm: int | None = None, store: Any = None
) -> None:
    """Limit the models matching `pattern` (fnmatch over litellm model names) to `rpm`
    requests and `tpm` tokens a minute, across every process sharing the store.

    Generations over a limit wait for capacity (their row's status `waiting`, with the
    reason) instead of meeting the provider's 429. Calling it again replaces the
    pattern's limits; with neither `rpm` nor `tpm` it removes them.
    """
    _check_pattern(pattern)
    rpm, tpm = _check_rate("rpm", rpm, "requests"), _check_rate("tpm", tpm, "tokens")
    from rxnb.reactive import current_store

    target = store if store is not None else current_store()

    def body(db: Writer) -> None:
        row = db.get(LlmLimit, pattern)
        if rpm is None and tpm is None:
            if row is not None:
                db.delete(row)
            return
        if row is None:
            row = LlmLimit(pattern=pattern)
        row.rpm, row.tpm = rpm, tpm
        db.add(row)

    target.database.write(body)


def _check_pattern(pattern: Any) -> None:
    if not isinstance(pattern, str) or not pattern:
        raise ArgumentError(
            f"rx.llm.limit: pattern={pattern!r}; pass a litellm model name or an fnmatch "
            "pattern over them, e.g. rx.llm.limit('openai/*', rpm=500)"
        )


def _check_rate(name: str, value: Any, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ArgumentError(
            f"rx.llm.limit: {name}={value!r}; pass a whole number of {what} per minute "
            f"> 0, or leave {name} out for no {what} limit"
        )
    return value


def matching(limits: Sequence[LlmLimit], model: str) -> list[LlmLimit]:
    """Rule 1: the limits covering `model`."""
    return [row for row in limits if fnmatch.fnmatchcase(model, row.pattern)]


def estimate_tokens(messages: list[dict[str, Any]], kwargs: dict[str, Any]) -> int:
    """A generation's tokens before it runs: ~4 characters a prompt token, plus its
    `max_tokens` (or `max_completion_tokens`), else `DEFAULT_MAX_TOKENS`."""
    prompt = len(json.dumps(messages, default=str)) // 4
    most = kwargs.get("max_tokens") or kwargs.get("max_completion_tokens")
    completion = most if isinstance(most, int) and most > 0 else DEFAULT_MAX_TOKENS
    return prompt + completion


def reserve(db: Writer, model: str, tokens: int, now: float) -> Reservation | Wait:
    """Reserve one request and `tokens` under every limit covering `model`, in `db`'s
    transaction (rule 4); or why not now (rule 3: only tokens make a generation wait
    without a slot)."""
    limits = matching(db.exec(select(LlmLimit)).all(), model)
    if not limits:
        return NO_RESERVATION
    for row in limits:
        wait = _token_wait(db, row, tokens, now)
        if wait is not None:
            return wait
    at, reason = now, None
    for row in limits:  # rule 2: the latest of the limits' next slots
        if row.rpm is not None:
            spacing = WINDOW / row.rpm
            slot = max(now, row.next_at - spacing * max(0, _burst(row.rpm) - 1))
            if slot > at:
                at, reason = slot, f"rate limit {row.pattern}: {row.rpm} requests/min"
    ids = []
    for row in limits:
        if row.rpm is not None:
            row.next_at = max(row.next_at, at) + WINDOW / row.rpm
        else:
            flag_modified(row, "next_at")  # rule 4: every reservation writes the row
        db.add(row)
        if row.tpm is not None:
            reservation = LlmReservation(pattern=row.pattern, at=at, tokens=min(tokens, row.tpm))
            db.add(reservation)
            db.flush()
            assert reservation.id is not None
            ids.append(reservation.id)
    _forget_old(db, [row.pattern for row in limits if row.tpm is not None], now)
    return Reservation(at, tuple(ids), reason)


def _burst(rpm: int) -> int:
    return max(1, math.floor(rpm / WINDOW * BURST_SECONDS))


def _token_wait(db: Writer, row: LlmLimit, tokens: int, now: float) -> Wait | None:
    """Rule 3: None if `tokens` fit in `row`'s window now, else until when they wait."""
    if row.tpm is None:
        return None
    held = db.exec(
        select(LlmReservation.at, LlmReservation.tokens)
        .where(LlmReservation.pattern == row.pattern, LlmReservation.at > now - WINDOW)
        .order_by(col(LlmReservation.at))
    ).all()
    over = sum(t for _, t in held) + min(tokens, row.tpm) - row.tpm
    if over <= 0:
        return None
    until = now + WINDOW
    for at, held_tokens in held:  # the oldest leave the window first
        over -= held_tokens
        if over <= 0:
            until = at + WINDOW
            break
    return Wait(
        f"rate limit {row.pattern}: {row.tpm} tokens/min",
        until,
        frozenset({LlmLimit.__tablename__, LlmReservation.__tablename__}),
    )


def _forget_old(db: Writer, patterns: list[str], now: float) -> None:
    """Delete reservations that left the window (keeps the table a minute long)."""
    if patterns:
        db.exec(
            delete(LlmReservation).where(
                col(LlmReservation.pattern).in_(patterns), col(LlmReservation.at) <= now - WINDOW
            )
        )


def settle(db: Writer, ids: Sequence[int], tokens: int) -> None:
    """Replace reserved estimates by the `tokens` the generation really used."""
    for row in db.exec(select(LlmReservation).where(col(LlmReservation.id).in_(ids))).all():
        row.tokens, row.settled = tokens, True

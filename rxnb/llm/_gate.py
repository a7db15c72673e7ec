"""The gate a generation passes before each provider call: the store's budget (first
call only), then its model's limits (`_budget`, `_limits`).

1. A store with neither limits nor a budget costs a generation no store access: their
   definitions are read once, and again only after a write to their tables (from any
   process: the change feed brings other processes' writes).
2. Waiting is not polling the store: a generation sleeps until its deadline (its
   request slot, tokens leaving the window, midnight for a daily budget), woken early
   by a write to a table its wait depends on (a budget raised, a limit changed,
   tokens settled), then checks again. A cancel or a hand-over ends the wait at once
   for a slot, within `CANCEL_TICK` otherwise; the generation then opens no stream.
3. A wait of `REPORT_AFTER` seconds or more is reported (`report(reason)`: the row's
   status becomes `waiting`), and its end too (`report(None)`), once the provider
   call has gone: nothing is written between a slot and its request, so a write
   held up (another writer, a checkpoint) cannot bunch requests that were spaced.
   Shorter waits, the evenly spaced slots of a busy limit, are not worth two writes.
4. The tokens reserved are settled with the real usage when the generation ends, and
   with none when the provider refused the call (a 429) or it never went.
5. A generation that reaches its slot more than `LATE_SECONDS` late (its process
   stalled: a long garbage collection, a laptop asleep) gives the slot up and takes
   the next free one, so that the generations a stall held up do not all call the
   provider at once when it ends; after `LATE_TRIES` slots it goes anyway.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from rxnb.execution import ActionContext
from rxnb.llm._budget import BudgetTerms, LlmBudget, over_budget, read_terms, scopes_of
from rxnb.llm._limits import (
    NO_RESERVATION,
    LlmLimit,
    LlmReservation,
    Reservation,
    Wait,
    estimate_tokens,
    matching,
    reserve,
    settle,
)
from rxnb.llm._usage import Usage
from rxnb.store import EVERYTHING, Reader, Write

CANCEL_TICK = 0.1
LATE_SECONDS = 0.5
"""A generation that reaches its slot later than this takes a new one (rule 5)."""
LATE_TRIES = 5
"""Slots a generation takes at most before it goes, however late (rule 5)."""
REPORT_AFTER = 0.5
DEFINITIONS = frozenset({LlmLimit.__tablename__, LlmBudget.__tablename__})
WATCHED = DEFINITIONS | {LlmReservation.__tablename__}

Report = Callable[[str | None], None]
T = TypeVar("T")


class Gate:
    """One store's gate. Responsibilities: keep the limits and the budget as last read
    (rule 1), and wake the generations waiting on a table when it is written (rule 2)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self._lock = threading.Lock()
        self._version = 0
        self._cached: tuple[int, Sequence[LlmLimit], dict[str, BudgetTerms]] | None = None
        self._waiting: dict[threading.Event, frozenset[str]] = {}
        store.add_write_listener(self._on_writes)

    def definitions(self) -> tuple[Sequence[LlmLimit], dict[str, BudgetTerms]]:
        """The limits and the budget (rule 1)."""
        with self._lock:
            version, cached = self._version, self._cached
        if cached is not None and cached[0] == version:
            return cached[1], cached[2]
        limits, terms = self.store.database.read(_read_definitions)[0]
        with self._lock:  # kept only if no write came meanwhile
            self._cached = (version, limits, terms)
        return limits, terms

    def watch(self, tables: frozenset[str]) -> threading.Event:
        """An event set at the next write to one of `tables`."""
        event = threading.Event()
        with self._lock:
            self._waiting[event] = tables
        return event

    def narrow(self, event: threading.Event, tables: frozenset[str]) -> None:
        with self._lock:
            if event in self._waiting:
                self._waiting[event] = tables

    def forget(self, event: threading.Event) -> None:
        with self._lock:
            self._waiting.pop(event, None)

    def _on_writes(self, writes: Sequence[Write]) -> None:
        tables = {w.table for w in writes}
        everything = EVERYTHING in tables
        if not everything and not tables & WATCHED:
            return
        with self._lock:
            if everything or tables & DEFINITIONS:
                self._version += 1
            for event, wanted in self._waiting.items():
                if everything or tables & wanted:
                    event.set()


def _read_definitions(db: Reader) -> tuple[list[LlmLimit], dict[str, BudgetTerms]]:
    from sqlmodel import select

    return list(db.exec(select(LlmLimit)).all()), read_terms(db)


_gates: weakref.WeakKeyDictionary[Any, Gate] = weakref.WeakKeyDictionary()
_gates_lock = threading.Lock()


def gate_of(store: Any) -> Gate:
    """The store's gate, made on first use."""
    with _gates_lock:
        found = _gates.get(store)
        if found is None:
            found = _gates[store] = Gate(store)
        return found


class Admission:
    """One generation's passage through the gate: `admit` before each provider call,
    `refused` after a 429, `settle` at the end (rule 4)."""

    def __init__(
        self,
        ctx: ActionContext,
        model: str,
        messages: list[dict[str, Any]],
        kwargs: dict[str, Any],
        report: Report,
    ) -> None:
        self.ctx, self.model, self.report = ctx, model, report
        self.messages, self.kwargs = messages, kwargs
        self.tokens: int | None = None
        """The estimate, made when first needed (rule 1: not without limits)."""
        self.held: Reservation = NO_RESERVATION
        self._shown: str | None = None

    def admit(self, *, first: bool) -> bool:
        """Wait until the budget (`first` call only) and the limits let the call go;
        False if the run was cancelled (or handed over) meanwhile. A context without
        a store (a bare test double) has nothing to wait for."""
        if self.ctx.store is None:
            return True
        gate = gate_of(self.ctx.store)
        limits, terms = gate.definitions()
        try:
            if first and terms and self._wait_out(gate, self._budget) is None:
                return self.went(False)
            if not matching(limits, self.model):
                return True
            for _ in range(LATE_TRIES):
                held = self._wait_out(gate, self._reserve)
                if held is None:
                    return self.went(False)
                self.held = held
                if held.at > time.time():  # its slot (rule 2 of `_limits`)
                    self._waiting(held.reason or "rate limit", held.at)
                    if self.ctx.wait_for_stop(held.at - time.time()):
                        self.refused()
                        return self.went(False)
                if time.time() - held.at <= LATE_SECONDS:
                    break
                self.refused()  # rule 5: this process stalled past its slot
            return True  # the caller says `went()` once the call went (rule 3)
        except BaseException:
            self.went(False)
            raise

    def refused(self) -> None:
        """The provider refused the call, or it never went: nothing was used."""
        self.settle(0)

    def settle(self, tokens: int) -> None:
        """Rule 4: the reserved tokens become `tokens`."""
        ids, self.held = self.held.ids, NO_RESERVATION
        if ids:
            self.ctx.store.database.write(lambda db: settle(db, ids, tokens))

    def settle_usage(self, usage: Usage) -> None:
        self.settle(int(usage.as_json()["total_tokens"]))

    def _budget(self) -> Wait | bool:
        """A Wait while the budget is spent, else True."""

        run_id = self.ctx.run_id

        def check(db: Reader) -> Wait | bool:
            terms = read_terms(db)  # as they are now: one may have been raised
            if not terms:
                return True
            now = time.time()
            for scope in scopes_of(db, run_id):
                held = scope.key in terms and over_budget(db, terms[scope.key], now, scope)
                if held:
                    return held
            return True

        result: Wait | bool = self.ctx.store.database.read(check)[0]
        return result

    def _reserve(self) -> Reservation | Wait:
        if self.tokens is None:
            self.tokens = estimate_tokens(self.messages, self.kwargs)
        model, tokens = self.model, self.tokens
        result: Reservation | Wait = self.ctx.store.database.write(
            lambda db: reserve(db, model, tokens, time.time())
        )
        return result

    def _wait_out(self, gate: Gate, check: Callable[[], T | Wait]) -> T | None:
        """`check()`'s first answer that is not a Wait, sleeping between (rule 2);
        None if cancelled. The event is armed before each check: a write between the
        check and the sleep still wakes it."""
        while True:
            event = gate.watch(WATCHED)
            try:
                outcome = check()
                if not isinstance(outcome, Wait):
                    return outcome
                gate.narrow(event, outcome.tables)
                self._waiting(outcome.reason, outcome.until)
                if _sleep(self.ctx, event, outcome.until):
                    return None
            finally:
                gate.forget(event)

    def _waiting(self, reason: str, until: float) -> None:
        """Rule 3."""
        if reason != self._shown and until - time.time() >= REPORT_AFTER:
            self.report(reason)
            self._shown = reason

    def went(self, admitted: bool = True) -> bool:
        """Rule 3: the end of a reported wait, once the call went (or will not go), so
        that its write comes after the request and never delays it past its slot;
        `admitted` back."""
        if self._shown is not None:
            self._shown = None
            self.report(None)
        return admitted


def _sleep(ctx: ActionContext, event: threading.Event, until: float) -> bool:
    """Sleep until `until` (epoch seconds) or `event`; True if cancelled (rule 2)."""
    while not event.is_set():
        left = until - time.time()
        if left <= 0:
            return False
        if ctx.wait_for_stop(min(left, CANCEL_TICK)):
            return True
    return False

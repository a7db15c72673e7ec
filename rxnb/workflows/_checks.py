"""Checks of what a workflow passes to its context, before anything is journaled.

A wrong argument (a sleep of NaN seconds, `ctx.step(fetch())` instead of
`ctx.step(fetch)`, an event name that is not a str) is a mistake in the code, not a
step that failed: it raises `rx.ArgumentError` naming the value and the fix, and
journals nothing, so the run can go on once the code is corrected.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

from rxnb.errors import ArgumentError


def seconds(value: Any, call: str, *, forever: str) -> float:
    """`value` (a timedelta or a real number of seconds) as finite seconds; `forever`
    says what to do instead of an infinite one."""
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ArgumentError(
            f"{call}: give a datetime.timedelta or a number of seconds, not "
            f"{type(value).__name__} ({value!r:.60})"
        )
    if math.isnan(value):
        raise ArgumentError(f"{call}: the duration is NaN; give a number of seconds")
    if math.isinf(value):
        raise ArgumentError(f"{call}: the duration is infinite; {forever}")
    return float(value)


def instant(when: Any, call: str) -> float:
    """`when` (a datetime; a naive one is local time, as for rx.run_at) as epoch seconds."""
    if not isinstance(when, datetime.datetime):
        raise ArgumentError(
            f"{call}: give a datetime.datetime, not {type(when).__name__} ({when!r:.60}); "
            "for a duration use ctx.sleep(timedelta)"
        )
    return when.timestamp()


def function(fn: Any, call: str, example: str = "ctx.step(fetch, url)") -> None:
    """`fn` must be something to call, not the result of calling it."""
    if not callable(fn):
        raise ArgumentError(
            f"{call} takes a function and its arguments, e.g. {example}, and calls it "
            f"itself; it was given {type(fn).__name__} ({fn!r:.60}). Was the function "
            "called already, as in fetch(url)?"
        )


def declared(fn: Any, kinds: tuple[type, ...], call: str, decorator: str) -> None:
    """`fn` must be a function declared with one of `kinds` (e.g. @rx.query)."""
    if not isinstance(fn, kinds):
        raise ArgumentError(
            f"{call} takes a function declared with {decorator}, not {type(fn).__name__} "
            f"({fn!r:.60}); for a plain function use ctx.step(fn, ...)"
        )


def name(value: Any, call: str) -> str:
    if not isinstance(value, str) or not value:
        raise ArgumentError(f"{call}: the name must be a non-empty str, not {value!r:.60}")
    return value


def retry_policy(retries: Any, backoff: Any, call: str) -> None:
    if isinstance(retries, bool) or not isinstance(retries, int) or retries < 0:
        raise ArgumentError(f"{call}: retries must be a whole number >= 0, not {retries!r}")
    if (
        isinstance(backoff, bool)
        or not isinstance(backoff, int | float)
        or not math.isfinite(backoff)
        or backoff < 0
    ):
        raise ArgumentError(
            f"{call}: backoff must be a finite number of seconds >= 0, not {backoff!r}"
        )

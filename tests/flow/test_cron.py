"""Crons: the schedule parser (next ticks in UTC and in a timezone across DST, bad
strings), and in one process the store side: defining, redefining, missed ticks,
skipped ticks, removal."""

from __future__ import annotations

import datetime as dt
import itertools
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.execution import Cron, Run, _cron
from rxnb.execution._cron_parse import CronSchedule, IntervalSchedule, parse_schedule

UTC = dt.timezone.utc


def at(iso: str) -> float:
    """Epoch seconds of an ISO time with its offset ("2026-03-10T10:02:30+00:00")."""
    return dt.datetime.fromisoformat(iso).timestamp()


def iso(t: float, tz: str = "UTC") -> str:
    return dt.datetime.fromtimestamp(t, CronSchedule("* * * * *", tz).zone).isoformat()


@dataclass(frozen=True)
class Next:
    schedule: str
    after: str
    expected: str
    tz: str = "UTC"


NEXT = [
    Next("*/5 * * * *", "2026-03-10T10:02:30+00:00", "2026-03-10T10:05:00+00:00"),
    Next("*/5 * * * *", "2026-03-10T10:05:00+00:00", "2026-03-10T10:10:00+00:00"),  # strictly after
    Next("5/15 * * * *", "2026-03-10T10:50:00+00:00", "2026-03-10T11:05:00+00:00"),
    Next("0-10/5 3 * * *", "2026-03-10T03:05:00+00:00", "2026-03-10T03:10:00+00:00"),
    Next("0-10/5 3 * * *", "2026-03-10T03:10:00+00:00", "2026-03-11T03:00:00+00:00"),
    Next("1,2,40-41 * * * *", "2026-03-10T03:02:00+00:00", "2026-03-10T03:40:00+00:00"),
    # Friday 13 March 2026 → Monday
    Next("0 9 * * mon-fri", "2026-03-13T09:00:00+00:00", "2026-03-16T09:00:00+00:00"),
    Next("0 9 * * MON-FRI", "2026-03-13T09:00:00+00:00", "2026-03-16T09:00:00+00:00"),
    Next("0 0 * * 7", "2026-03-10T00:00:00+00:00", "2026-03-15T00:00:00+00:00"),  # Sunday
    Next("0 0 * * 0", "2026-03-10T00:00:00+00:00", "2026-03-15T00:00:00+00:00"),
    # both day fields restricted: either matches (Monday 2 March before the 15th)
    Next("0 0 1,15 * mon", "2026-03-01T00:00:00+00:00", "2026-03-02T00:00:00+00:00"),
    Next("0 0 1,15 * mon", "2026-03-30T00:00:00+00:00", "2026-04-01T00:00:00+00:00"),
    # day of month starts with `*`: both must match (an odd day that is a Monday)
    Next("0 0 */2 * mon", "2026-03-01T00:00:00+00:00", "2026-03-09T00:00:00+00:00"),
    Next("0 12 * jul,dec *", "2026-03-01T00:00:00+00:00", "2026-07-01T12:00:00+00:00"),
    Next("30 2 29 feb *", "2026-01-01T00:00:00+00:00", "2028-02-29T02:30:00+00:00"),
    Next("0 0 31 * *", "2026-04-01T00:00:00+00:00", "2026-05-31T00:00:00+00:00"),
    Next("@hourly", "2026-03-10T10:02:00+00:00", "2026-03-10T11:00:00+00:00"),
    Next("@daily", "2026-03-10T10:02:00+00:00", "2026-03-11T00:00:00+00:00"),
    Next("@weekly", "2026-03-10T10:02:00+00:00", "2026-03-15T00:00:00+00:00"),
    Next("@monthly", "2026-03-10T10:02:00+00:00", "2026-04-01T00:00:00+00:00"),
    Next("@yearly", "2026-03-10T10:02:00+00:00", "2027-01-01T00:00:00+00:00"),
    Next("59 23 31 12 *", "2026-12-31T23:59:00+00:00", "2027-12-31T23:59:00+00:00"),
    # a timezone: 9:00 in Paris is 7:00 UTC in summer, 8:00 in winter
    Next("0 9 * * *", "2026-07-01T00:00:00+00:00", "2026-07-01T09:00:00+02:00", "Europe/Paris"),
    Next("0 9 * * *", "2026-01-15T00:00:00+00:00", "2026-01-15T09:00:00+01:00", "Europe/Paris"),
    Next("0 9 * * *", "2026-03-07T15:00:00+00:00", "2026-03-08T09:00:00-04:00", "America/New_York"),
    # Paris springs forward on 29 March 2026 at 02:00: 02:30 does not exist, it fires as
    # the clock jumps (03:30), and the next day as usual
    Next("30 2 * * *", "2026-03-28T12:00:00+00:00", "2026-03-29T03:30:00+02:00", "Europe/Paris"),
    Next("30 2 * * *", "2026-03-29T01:30:00+00:00", "2026-03-30T02:30:00+02:00", "Europe/Paris"),
    # Paris falls back on 25 October 2026 at 03:00: 02:30 happens twice, fires once
    Next("30 2 * * *", "2026-10-24T12:00:00+00:00", "2026-10-25T02:30:00+02:00", "Europe/Paris"),
    Next("30 2 * * *", "2026-10-25T00:30:00+00:00", "2026-10-26T02:30:00+01:00", "Europe/Paris"),
]


@pytest.mark.parametrize("case", NEXT, ids=lambda c: f"{c.schedule} {c.tz} after {c.after}")
def test_next_tick(case: Next) -> None:
    schedule = CronSchedule(case.schedule, case.tz)
    assert iso(schedule.next_after(at(case.after)), case.tz) == case.expected


def ticks(schedule: CronSchedule | IntervalSchedule, start: str, n: int) -> list[float]:
    t, out = at(start), []
    for _ in range(n):
        t = schedule.next_after(t)
        out.append(t)
    return out


def test_every_half_hour_goes_on_through_both_clock_changes() -> None:
    """An hour field of `*` follows the clock: through the skipped hour and both passes
    of the repeated one, every 30 minutes of real time."""
    paris = CronSchedule("*/30 * * * *", "Europe/Paris")
    for start in ("2026-03-28T23:10:00+00:00", "2026-10-24T22:10:00+00:00"):
        got = ticks(paris, start, 8)
        assert [b - a for a, b in itertools.pairwise(got)] == [1800.0] * 7, [
            iso(t, "Europe/Paris") for t in got
        ]


def test_hourly_at_a_fixed_minute_on_the_day_clocks_go_back_fires_each_wall_hour_once() -> None:
    paris = CronSchedule("15 1-3 * * *", "Europe/Paris")
    got = [iso(t, "Europe/Paris") for t in ticks(paris, "2026-10-24T22:00:00+00:00", 4)]
    assert got == [
        "2026-10-25T01:15:00+02:00",
        "2026-10-25T02:15:00+02:00",  # the first 02:15 only
        "2026-10-25T03:15:00+01:00",
        "2026-10-26T01:15:00+01:00",
    ]


def test_ticks_increase_every_minute_of_a_year_in_a_timezone() -> None:
    schedule = CronSchedule("*/7 */3 * * *", "America/New_York")
    got = ticks(schedule, "2026-01-01T00:00:00+00:00", 3000)
    assert all(b > a for a, b in itertools.pairwise(got))


@dataclass(frozen=True)
class Bad:
    schedule: str
    says: tuple[str, ...]


BAD = [
    Bad("* * * *", ("4 field(s), not 5",)),
    Bad("* * * * * *", ("6 field(s)",)),
    Bad("61 * * * *", ("minute field", "61 is outside 0-59")),
    Bad("* 24 * * *", ("hour field", "24 is outside 0-23")),
    Bad("* * 0 * *", ("day of month field", "0 is outside 1-31")),
    Bad("* * * 13 *", ("month field", "13 is outside 1-12")),
    Bad("* * * * 8", ("day of week field", "8 is outside 0-7")),
    Bad("*/0 * * * *", ("minute field", "step '0'")),
    Bad("5-1 * * * *", ("minute field", "runs backwards")),
    Bad("* * * foo *", ("month field", "'foo' is not a number or a name like 'jan'")),
    Bad("* * * * monday", ("day of week field", "'monday'")),
    Bad("1,,2 * * * *", ("minute field", "'' is not a number")),
    Bad("0 0 30 2 *", ("never matches",)),
]


@pytest.mark.parametrize("case", BAD, ids=lambda c: c.schedule)
def test_a_bad_cron_string_names_its_field_and_shows_a_good_one(case: Bad) -> None:
    with pytest.raises(rx.FunctionError) as caught:
        CronSchedule(case.schedule)
    message = str(caught.value)
    assert "\n" not in message
    assert repr(case.schedule) in message
    assert 'e.g. "*/5 * * * *"' in message
    for words in case.says:
        assert words in message


def test_intervals_tick_on_multiples_of_their_length() -> None:
    assert IntervalSchedule(1).next_after(10.3) == 11.0
    assert IntervalSchedule(1).next_after(11.0) == 12.0
    five = IntervalSchedule(300)
    assert iso(five.next_after(at("2026-03-10T10:02:30+00:00"))) == "2026-03-10T10:05:00+00:00"
    assert five.text == "every 300s"
    assert parse_schedule(five.text).next_after(0) == 300
    assert parse_schedule("*/5 * * * *", "Europe/Paris").tz == "Europe/Paris"


def no_op(ctx: rx.ActionContext) -> None:
    return None


@pytest.mark.parametrize(
    ("call", "says"),
    [
        (lambda: rx.cron(no_op), "@rx.cron needs a schedule"),  # type: ignore[arg-type]
        (rx.cron, "not neither"),
        (lambda: rx.cron("* * * * *", every=5), "not both"),
        (lambda: rx.cron(every=5, tz="Europe/Paris"), "an interval counts seconds"),
        (lambda: rx.cron(every=0), "at least 0.1 s"),
        (lambda: rx.cron(every="5m"), "a timedelta or a number of seconds"),  # type: ignore[arg-type]
        (lambda: rx.cron("* * * * *", tz="Mars/Olympus"), "not a known IANA timezone"),
        (lambda: rx.cron("* * * * *", retries=-1)(no_op), "retries=-1"),
        (lambda: rx.cron("* * * * *")(lambda: None), "must take its context"),
        (lambda: rx.cron("* * * * *")(lambda ctx, n: n), "`n` has no default"),
    ],
)
def test_a_bad_definition_says_how_to_fix_it(call: Any, says: str) -> None:
    with pytest.raises(rx.FunctionError) as caught:
        call()
    assert says in str(caught.value)


# -- with a store: one process, both dialects ----------------------------------------


@pytest.fixture(autouse=True)
def _forget_crons() -> Iterator[None]:
    """Crons a test defines are not defined in the stores later tests open."""
    before = set(_cron._defined)
    yield
    for name in set(_cron._defined) - before:
        _cron._defined.pop(name, None)


def yearly(gate: threading.Event | None = None, schedule: str = "0 0 1 1 *") -> Any:
    """A cron named `test_cron.yearly.<locals>.new_year` whatever the call (a redefinition
    when called again), that waits for `gate` if given."""

    def new_year(ctx: rx.ActionContext) -> str:
        if gate is not None and not gate.wait(20):
            raise TimeoutError("the gate never opened")
        return "happy new year"

    return rx.cron(schedule)(new_year)


def row(store: rx.Store, name: str) -> Cron | None:
    return store.database.read(lambda db: db.get(Cron, name))[0]


def runs_of(store: rx.Store, name: str) -> list[Run]:
    return store.database.read(
        lambda db: db.exec(select(Run).where(Run.function == name).order_by(Run.created_at)).all()
    )[0]


def make_due(store: rx.Store, name: str, ago: float) -> float:
    """Set the cron's next tick `ago` seconds in the past, as if nobody ran meanwhile.

    Returns the tick written: the scheduler may fire it before a read after this one.
    """
    due = time.time() - ago

    def write(db: rx.Writer) -> None:
        cron = db.get(Cron, name)
        assert cron is not None
        cron.next_at = due
        db.add(cron)

    store.database.write(write)
    return due


def test_defining_writes_the_schedule_and_redefining_replaces_it(store: rx.Store) -> None:
    first = yearly()
    [info] = rx.crons()
    assert (info.name, info.schedule, info.tz) == (first.name, "0 0 1 1 *", "UTC")
    assert info.next_time == dt.datetime(dt.datetime.now(UTC).year + 1, 1, 1, tzinfo=UTC)
    assert (info.last_run_id, info.last_status, info.skipped, info.defined_here) == (
        None,
        None,
        0,
        True,
    )
    stored = row(store, first.name)
    assert stored is not None

    yearly()  # the cell again, same schedule: the next tick stays
    again = row(store, first.name)
    assert again is not None and again.next_at == stored.next_at

    monthly = yearly(schedule="0 0 1 * *")
    [info] = rx.crons()
    assert info.schedule == "0 0 1 * *"
    assert info.next_time.timestamp() == CronSchedule("0 0 1 * *").next_after(time.time())

    assert monthly.remove() is True
    assert rx.crons() == []
    assert rx.remove_cron(monthly.name) is False


def test_missed_ticks_start_one_run_then_wait_for_the_next_future_tick(store: rx.Store) -> None:
    cron = yearly()
    missed = make_due(store, cron.name, ago=5 * 3600.0)  # five hours of ticks nobody fired
    fired = until(lambda: (r := row(store, cron.name)) and r.next_at > time.time() and r)
    [run] = runs_of(store, cron.name)
    assert fired.last_run_id == run.id
    assert fired.last_tick_at == missed
    assert fired.next_at == CronSchedule("0 0 1 1 *").next_after(time.time())
    assert rx.RunHandle(run.id, store).result(timeout=10) == "happy new year"
    assert len(runs_of(store, cron.name)) == 1
    [info] = rx.crons()
    assert (info.last_run_id, info.last_status) == (run.id, "succeeded")


def test_a_tick_while_the_last_run_still_runs_is_skipped_and_counted(store: rx.Store) -> None:
    gate = threading.Event()
    cron = yearly(gate)
    try:
        make_due(store, cron.name, ago=1.0)
        [first] = until(lambda: [r for r in runs_of(store, cron.name) if r.status == "running"])
        make_due(store, cron.name, ago=1.0)
        skipped = until(lambda: (r := row(store, cron.name)) and r.skipped == 1 and r)
        assert skipped.last_run_id == first.id
        assert skipped.last_skipped_at is not None
        assert skipped.next_at > time.time()
        [info] = rx.crons()
        assert (info.skipped, info.last_status) == (1, "running")
        assert info.last_skipped_time is not None
        assert len(runs_of(store, cron.name)) == 1
    finally:
        gate.set()
    assert rx.RunHandle(first.id, store).result(timeout=10) == "happy new year"
    make_due(store, cron.name, ago=1.0)  # the run ended: the next tick starts one
    until(lambda: len(runs_of(store, cron.name)) == 2)


def test_a_cron_removed_elsewhere_is_no_longer_fired_here(store: rx.Store) -> None:
    cron = yearly()
    timer = _cron.timer_for(store)
    assert cron.name in timer.names()
    store.database.write(lambda db: db.delete(db.get(Cron, cron.name)))  # another process
    until(lambda: cron.name not in timer.names())
    assert rx.crons() == []
    assert runs_of(store, cron.name) == []

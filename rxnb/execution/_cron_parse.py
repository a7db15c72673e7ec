"""Schedules of `@rx.cron`: standard 5-field cron strings in a timezone, and intervals.

A schedule answers one question, `next_after(t)`: the first tick strictly after epoch
second `t`. Both kinds are pure and need no state, so every process that defines a
cron computes the same ticks.

Cron strings follow Vixie cron (`man 5 crontab`):
1. five fields, minute hour day-of-month month day-of-week, each a comma-separated list
   of `*`, `N`, `N-M`, with an optional `/STEP` (`*/15`, `1-30/2`, `5/10` = `5-59/10`);
   months and days of week may be names (`jan`, `mon-fri`); day of week 0 and 7 are
   Sunday; `@hourly`, `@daily` (`@midnight`), `@weekly`, `@monthly`, `@yearly`
   (`@annually`) stand for their usual strings;
2. when both day fields are restricted (neither starts with `*`), a day matches if
   either does ("on the 1st and 15th, and on Mondays"); otherwise both must;
3. times are wall-clock times in the schedule's timezone (UTC by default). A time that
   clocks skip when they go forward fires shifted by the jump (02:30 → 03:30); one that
   happens twice when they go back fires at its first occurrence only, unless the hour
   field starts with `*`, whose schedules go on through the repeated hour as the clock
   does.

Intervals tick at whole multiples of their length since the Unix epoch (`every=3600`
ticks on the hour, UTC), the same instants in every process.
"""

from __future__ import annotations

import datetime as dt
import math
import zoneinfo
from dataclasses import dataclass

from rxnb.errors import FunctionError

EXAMPLE = '"*/5 * * * *" (every five minutes) or "30 9 * * mon-fri" (9:30 on weekdays)'

MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}

MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
DAYS = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"]


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: dict[str, int]


FIELDS = (
    _Field("minute", 0, 59, {}),
    _Field("hour", 0, 23, {}),
    _Field("day of month", 1, 31, {}),
    _Field("month", 1, 12, {m: i + 1 for i, m in enumerate(MONTHS)}),
    _Field("day of week", 0, 7, {d: i for i, d in enumerate(DAYS)}),
)

MIN_INTERVAL = 0.1
"""The shortest interval, in seconds: every tick is a write to the store."""

_SEARCH_YEARS = 9
"""How far ahead a tick is looked for: "29 February" may be 8 years away (2096 → 2104)."""

_FOLD_SPAN = dt.timedelta(hours=3)
"""Longer than any clock change: how far back a repeated hour is looked for."""


class CronSchedule:
    """A parsed 5-field cron string in a timezone."""

    def __init__(self, text: str, tz: str = "UTC") -> None:
        self.text = " ".join(text.split())
        self.tz = tz
        self.zone = timezone(tz)
        fields = MACROS.get(self.text.lower(), self.text).split()
        if len(fields) != 5:
            raise FunctionError(
                f"cron string {text!r} has {len(fields)} field(s), not 5 (minute hour "
                f"day-of-month month day-of-week); use e.g. {EXAMPLE}"
            )
        parsed = [_parse_field(f, spec, text) for f, spec in zip(FIELDS, fields, strict=True)]
        self.minutes, self.hours, self.days, self.months, weekdays = parsed
        self.weekdays = {d % 7 for d in weekdays}  # 7 is Sunday too
        # Rule 2: a field that starts with `*` does not restrict the day.
        self.days_restricted = not fields[2].startswith("*")
        self.weekdays_restricted = not fields[4].startswith("*")
        self.hour_star = fields[1].startswith("*")  # rule 3
        self._sorted_minutes = sorted(self.minutes)
        self.next_after(0.0)  # "0 0 30 2 *" never comes: say so now, not at the first tick

    def __repr__(self) -> str:
        return f"CronSchedule({self.text!r}, tz={self.tz!r})"

    def next_after(self, t: float) -> float:
        """The first tick strictly after epoch second `t`."""
        utc = dt.datetime.fromtimestamp(t, dt.timezone.utc)
        local = utc.astimezone(self.zone).replace(tzinfo=None, second=0, microsecond=0)
        best = self._first_after(local, t, fold=0)
        if self.hour_star and self.tz != "UTC":
            # Rule 3: a repeated hour's second pass is earlier on the wall clock than
            # where the first pass left off: look for it from before the change.
            again = self._first_after(local - _FOLD_SPAN, t, fold=1)
            best = min(best, again)
        return best

    def _first_after(self, start: dt.datetime, t: float, fold: int) -> float:
        """The first wall time after naive `start` that matches and, read with `fold`,
        is an instant after `t` (fold=1: only second occurrences of repeated times)."""
        wall = start + dt.timedelta(minutes=1)
        while True:
            wall = self._match_from(wall)
            instant = wall.replace(tzinfo=self.zone, fold=fold)
            seconds = instant.timestamp()
            if seconds > t:
                if fold == 0 or _repeated(instant):
                    return seconds
                return math.inf  # past `t` with no repeated time: none to add
            wall += dt.timedelta(minutes=1)

    def _match_from(self, wall: dt.datetime) -> dt.datetime:
        """The first naive wall time at or after `wall` (whole minutes) that matches."""
        limit = wall.year + _SEARCH_YEARS
        while wall.year <= limit:
            if wall.month not in self.months:
                year, month = divmod(wall.year * 12 + wall.month, 12)  # the next month
                wall = dt.datetime(year, month + 1, 1)
            elif not self._day_matches(wall.date()):
                wall = dt.datetime.combine(wall.date() + dt.timedelta(days=1), dt.time())
            elif wall.hour not in self.hours:
                wall = wall.replace(minute=0) + dt.timedelta(hours=1)
            elif wall.minute not in self.minutes:
                later = [m for m in self._sorted_minutes if m > wall.minute]
                if later:
                    wall = wall.replace(minute=later[0])
                else:
                    wall = wall.replace(minute=0) + dt.timedelta(hours=1)
            else:
                return wall
        raise FunctionError(
            f"cron string {self.text!r} never matches a date (no such day in those "
            f"months); use e.g. {EXAMPLE}"
        )

    def _day_matches(self, day: dt.date) -> bool:
        in_month = day.day in self.days
        in_week = (day.weekday() + 1) % 7 in self.weekdays  # cron counts from Sunday
        if self.days_restricted and self.weekdays_restricted:
            return in_month or in_week  # rule 2
        return in_month and in_week


class IntervalSchedule:
    """Ticks every `seconds`, at whole multiples of it since the epoch."""

    def __init__(self, seconds: float) -> None:
        if not (math.isfinite(seconds) and seconds >= MIN_INTERVAL):
            raise FunctionError(
                f"@rx.cron(every={seconds!r}): give an interval of at least "
                f"{MIN_INTERVAL} s, e.g. every=timedelta(minutes=5) or every=30"
            )
        self.seconds = float(seconds)
        self.text = f"every {self.seconds:g}s"
        self.tz = "UTC"

    def __repr__(self) -> str:
        return f"IntervalSchedule({self.seconds:g})"

    def next_after(self, t: float) -> float:
        tick = (math.floor(t / self.seconds) + 1) * self.seconds
        return tick if tick > t else tick + self.seconds  # float rounding


Schedule = CronSchedule | IntervalSchedule


def parse_schedule(text: str, tz: str = "UTC") -> Schedule:
    """The schedule stored as `text` (a cron string, or an interval's "every 300s")."""
    if text.startswith("every ") and text.endswith("s"):
        return IntervalSchedule(float(text[len("every ") : -1]))
    return CronSchedule(text, tz)


def timezone(name: str) -> zoneinfo.ZoneInfo:
    """The IANA zone `name`; FunctionError naming it if unknown."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, TypeError):
        raise FunctionError(
            f"@rx.cron(tz={name!r}): not a known IANA timezone; use e.g. tz='Europe/Paris' "
            "or tz='UTC'"
        ) from None


def _repeated(instant: dt.datetime) -> bool:
    """Whether aware wall time `instant` (fold=1) is the second of two occurrences."""
    first = instant.replace(fold=0)
    if first.utcoffset() == instant.utcoffset():
        return False
    # A gap (a time clocks skip) also reads differently by fold: it does not survive a
    # round trip through UTC.
    back = instant.astimezone(dt.timezone.utc).astimezone(instant.tzinfo)
    return back.replace(tzinfo=None) == instant.replace(tzinfo=None)


def _parse_field(field: _Field, text: str, whole: str) -> frozenset[int]:
    values: set[int] = set()
    for item in text.lower().split(","):
        values |= _parse_item(field, item, whole)
    return frozenset(values)


def _parse_item(field: _Field, item: str, whole: str) -> set[int]:
    def bad(why: str) -> FunctionError:
        return FunctionError(
            f"cron string {whole!r}: the {field.name} field has {item!r}, {why}; use e.g. {EXAMPLE}"
        )

    def number(word: str) -> int:
        if word in field.names:
            return field.names[word]
        if not word.isdigit():
            names = f" or a name like {next(iter(field.names))!r}" if field.names else ""
            raise bad(f"{word!r} is not a number{names}")
        value = int(word)
        if not field.low <= value <= field.high:
            raise bad(f"{value} is outside {field.low}-{field.high}")
        return value

    span, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise bad(f"the step {step_text!r} is not a whole number above 0")
        step = int(step_text)
    if span == "*":
        low, high = field.low, field.high
    elif "-" in span:
        first, _, last = span.partition("-")
        low, high = number(first), number(last)
        if low > high:
            raise bad(f"the range runs backwards ({low} > {high})")
    else:
        low = number(span)
        high = field.high if slash else low  # "5/10": from 5 to the end, every 10
    return set(range(low, high + 1, step))

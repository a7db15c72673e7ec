"""rxnb's pytest plugin: test your own agents, actions and workflows on a real store.

pytest loads it by itself once rxnb is installed (the `pytest11` entry point), so its
fixtures need no import:

```python
import rxnb as rx
from rxnb.testing import scripted


def test_helper_uses_the_weather_tool(rx_store):
    helper = rx.Agent("helper", tools=[weather], **scripted(turns=[
        {"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]},
        {"script": "Sunny in Paris."},
    ]))
    assert helper.send("t1", "Weather in Paris?").result(timeout=30) == "Sunny in Paris."


def test_reminder_after_a_month(rx_store, rx_clock, rx_runs_idle):
    run = remind.start(days=30)           # a workflow that sleeps 30 days
    rx_runs_idle()                        # nothing left to do now: it sleeps
    rx_clock.advance(days=30)             # ... and the month passes at once
    assert run.result(timeout=10) == "reminded"
```

- `rx_store`: a new, empty store for the test, opened as the current store and closed
  after it: a SQLite file in the test's `tmp_path`; with `--rxnb-url URL` (or
  `RXNB_TEST_URL`) naming a PostgreSQL database, a schema of its own there, dropped
  after the test. The actions, workflows and agents the test defines run on its
  executor, in this process, with the real claims, journal and retries.
- `rx_clock`: moves the clock that durable sleeps, waits for an event with a timeout,
  crons and scheduled runs are due by (`rx_clock.advance(days=30)`), and puts it back
  after the test. Heartbeats and leases keep the real clock.
- `rx_runs_idle`: a function that waits until no run is running or due (a run that
  waits for an event, an approval or a later time is idle) and returns the runs; it
  raises `TimeoutError` naming the busy runs after `timeout` seconds (default 30).
- `scripted(...)`: the keyword arguments that make `rx.Agent`, `rx.llm.stream` or
  `rx.llm.stream_into` use the embedded offline model, which answers with your script
  and tool calls, streamed as a provider streams them, at no cost and with no key; at
  the speed you set (`delay=`), and with a provider's faults if asked (`rate_limited=`
  429s, `cut_after=` a stream cut midway).
"""

from __future__ import annotations

import datetime
import os
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

import rxnb as rx
from rxnb.errors import ArgumentError
from rxnb.execution import RunStatus, clock
from rxnb.reactive import open_stores
from rxnb.workflows import advance_clock

__all__ = ["Clock", "runs_idle", "scripted", "temporary_schema"]

URL_ENV = "RXNB_TEST_URL"
"""The environment variable that names a PostgreSQL database for `rx_store`."""


def scripted(
    script: str | None = None,
    *,
    tool_calls: list[dict[str, Any]] | None = None,
    turns: list[dict[str, Any]] | None = None,
    delay: float = 0.0,
    rate_limited: int = 0,
    retry_after: float = 0.01,
    cut_after: int | None = None,
) -> dict[str, Any]:
    """Keyword arguments for the offline model `rxnb/scripted`.

    `script` is the text of every answer; `tool_calls` (`[{"name": ..., "arguments":
    {...}}]`) are asked for after it; `turns=[{"script": ..., "tool_calls": [...]},
    ...]` scripts an agent's model calls instead: the call after the tool results gets
    the next turn, and a call asked again (a turn resumed) gets the same one. `delay`
    is seconds per token (0: as fast as it goes).

    Faults, as providers have them: `rate_limited=N` answers the first N requests made
    with these arguments with a 429 (`Retry-After: retry_after` seconds), which rxnb
    waits out and counts in the run's usage; `cut_after=K` breaks every stream after K
    tokens, as a dropped connection does (the row keeps those K tokens and fails).
    """
    if turns is not None and (script is not None or tool_calls is not None):
        raise ArgumentError("scripted: give turns=, or script= and tool_calls=, not both")
    options: dict[str, Any] = {"model": "rxnb/scripted", "delay": delay}
    if rate_limited:
        options.update(rate_limited=rate_limited, retry_after=retry_after)
        options["faults"] = uuid.uuid4().hex  # the requests these arguments make, counted
    if cut_after is not None:
        options["cut_after"] = cut_after
    if turns is not None:
        options["turns"] = turns
    else:
        options["script"] = script or ""
        if tool_calls:
            options["tool_calls"] = tool_calls
    return options


class Clock:
    """The clock durable waits are due by, as `rx_clock` moves it in one test."""

    def __init__(self) -> None:
        self.moved = 0.0
        """Seconds this test has moved it forward (put back after the test)."""

    def now(self) -> datetime.datetime:
        """The time due times are compared with, in UTC."""
        return datetime.datetime.fromtimestamp(clock.now(), datetime.timezone.utc)

    def advance(
        self,
        by: float | datetime.timedelta = 0.0,
        *,
        minutes: float = 0.0,
        hours: float = 0.0,
        days: float = 0.0,
    ) -> None:
        """Move the clock forward (`advance(90)`, `advance(days=30)`) and wake the
        current store's executor, so runs due by then start now."""
        seconds = by.total_seconds() if isinstance(by, datetime.timedelta) else float(by)
        seconds += minutes * 60 + hours * 3600 + days * 86400
        if not seconds >= 0:
            raise ArgumentError(f"rx_clock.advance: move the clock forward, not by {seconds} s")
        advance_clock(seconds)
        self.moved += seconds

    def reset(self) -> None:
        """Put the clock back where this test found it."""
        if self.moved:
            clock.advance(-self.moved)
            self.moved = 0.0


_BUSY = (RunStatus.RUNNING.value, RunStatus.QUEUED.value)


def runs_idle(store: rx.Store, timeout: float = 30.0) -> list[rx.Run]:
    """Wait until no run of `store` is running or due (queued for now or earlier);
    the store's runs, oldest first. `TimeoutError` names the busy runs."""
    deadline = time.monotonic() + timeout
    while True:
        runs = store.database.read(
            lambda db: list(db.exec(select(rx.Run).order_by(col(rx.Run.created_at))).all())
        )[0]
        now = clock.now()
        busy = [r for r in runs if r.status in _BUSY and (r.due_at or 0.0) <= now]
        if not busy and store.wait_idle(max(0.0, deadline - time.monotonic())):
            return runs
        if time.monotonic() >= deadline:
            names = ", ".join(f"{r.function} ({r.status}, {r.id})" for r in busy[:5])
            raise TimeoutError(f"rx_runs_idle: after {timeout} s these runs are busy: {names}")
        time.sleep(0.02)


@contextmanager
def temporary_schema(url: str) -> Iterator[str]:
    """A new schema in PostgreSQL database `url`, dropped (with everything in it, and
    after closing the stores open on it) on leaving; yields the URL of a store in it."""
    base = sa.make_url(url)
    if not base.drivername.startswith("postgresql"):
        raise ArgumentError(
            f"rxnb testing: {base.render_as_string()} is not a PostgreSQL URL; "
            f"give --rxnb-url (or {URL_ENV}) as postgresql+psycopg://user@host/db, "
            "or leave it out to test on SQLite"
        )
    schema = f"rxnb_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(
        base.set(drivername="postgresql+psycopg"),
        isolation_level="AUTOCOMMIT",
        poolclass=sa.pool.NullPool,
    )
    with admin.connect() as conn:
        conn.exec_driver_sql(f"CREATE SCHEMA {schema}")
    try:
        yield base.update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
            hide_password=False
        )
    finally:
        for store in open_stores():
            if schema in store.url:  # in its search_path option, URL-encoded (%3D)
                store.close()
        with admin.connect() as conn:
            conn.exec_driver_sql("SET lock_timeout = '10s'")
            conn.exec_driver_sql(f"DROP SCHEMA {schema} CASCADE")
        admin.dispose()


# -- the pytest plugin -------------------------------------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.getgroup("rxnb").addoption(
        "--rxnb-url",
        default=None,
        help=f"a PostgreSQL URL: rx_store gives each test a schema of its own there "
        f"(default: ${URL_ENV}, else a SQLite file per test)",
    )


@pytest.fixture
def rx_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[rx.Store]:
    """A new, empty store for this test (see the module's docstring)."""
    url = request.config.getoption("--rxnb-url") or os.environ.get(URL_ENV)
    if not url:
        store = rx.open(f"sqlite:///{tmp_path / 'rxnb-test.db'}")
        try:
            yield store
        finally:
            store.close()
        return
    with temporary_schema(url) as schema_url:
        store = rx.open(schema_url)
        try:
            yield store
        finally:
            store.close()


@pytest.fixture
def rx_clock() -> Iterator[Clock]:
    """The clock of durable waits, moved forward by the test and put back after it."""
    moved = Clock()
    try:
        yield moved
    finally:
        moved.reset()


@pytest.fixture
def rx_runs_idle(rx_store: rx.Store) -> Callable[..., list[rx.Run]]:
    """`rx_runs_idle(timeout=30)`: wait until `rx_store` has no run running or due."""

    def wait(timeout: float = 30.0) -> list[rx.Run]:
        return runs_idle(rx_store, timeout)

    return wait

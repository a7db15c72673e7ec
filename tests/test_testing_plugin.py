"""rxnb.testing, the pytest plugin, as a user meets it: a test file of theirs, run by
pytest in a process of its own, with the plugin loaded through its entry point."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pgtools import PG_URL

import rxnb as rx
from rxnb.testing import temporary_schema

USER_TESTS = '''
import datetime
import json
import time

import pytest
from sqlmodel import Field, SQLModel

import rxnb as rx
from rxnb.testing import scripted

CALLS = []


@rx.tool
def weather(city: str) -> str:
    """Today's weather in `city`."""
    CALLS.append(city)
    return "sunny" if city == "Paris" else "rain"


def test_an_agent_calls_its_tool_once(rx_store):
    helper = rx.Agent("helper", tools=[weather], **scripted(turns=[
        {"tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}]},
        {"script": "Sunny in Paris."},
    ]))
    assert helper.send("t1", "Weather in Paris?").result(timeout=30) == "Sunny in Paris."
    assert [m.text for m in rx.agents.messages("t1") if m.role == "tool"] == ["sunny"]
    assert CALLS == ["Paris"]


def test_the_store_is_new_for_each_test(rx_store):
    assert rx.agents.messages("t1") == []


@rx.workflow
def remind(ctx: rx.WorkflowContext, days: int) -> str:
    ctx.sleep(datetime.timedelta(days=days))
    return "reminded"


def test_a_month_passes_at_once(rx_store, rx_clock, rx_runs_idle):
    run = remind.start(days=30)
    rx_runs_idle()
    assert run.status == "sleeping"
    rx_clock.advance(days=29)
    rx_runs_idle()
    assert run.status == "sleeping"
    rx_clock.advance(datetime.timedelta(days=1, seconds=1))
    assert run.result(timeout=10) == "reminded"


def test_the_clock_was_put_back(rx_clock):
    assert abs(rx_clock.now().timestamp() - time.time()) < 60


def test_idle_names_the_busy_run(rx_store, rx_runs_idle):
    @rx.action
    def slow_job(ctx: rx.ActionContext) -> None:
        ctx.wait(30)

    run = slow_job.start()
    with pytest.raises(TimeoutError, match="slow_job"):
        rx_runs_idle(timeout=0.5)
    run.cancel()
    assert run.wait(timeout=10) == "cancelled"


class Note(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    content: str = ""
    status: str = "pending"


@rx.mutation
def new_note(db: rx.Writer) -> int:
    note = Note()
    db.add(note)
    db.flush()
    return note.id


@rx.action
def write(ctx: rx.ActionContext, note_id: int, options: dict) -> str:
    messages = [{"role": "user", "content": "hi"}]
    return rx.llm.stream_into(ctx, Note, note_id, messages=messages, **options)


def test_429s_are_waited_out_and_counted(rx_store):
    run = write.start(note_id=new_note(), options=scripted("Fine now.", rate_limited=2))
    assert run.result(timeout=30) == "Fine now."
    assert json.loads(run.run().usage)["rate_limited"] == 2


def test_a_stream_cut_midway_fails_keeping_its_text(rx_store):
    note_id = new_note()
    run = write.start(note_id=note_id, options=scripted("one two three four", cut_after=2))
    with pytest.raises(rx.RunFailedError, match="cut after 2 tokens"):
        run.result(timeout=30)
    note = rx_store.database.read(lambda db: db.get(Note, note_id))[0]
    assert (note.status, note.content) == ("failed", "one two")


def test_a_wrong_expectation_still_fails(rx_store):
    helper = rx.Agent("plain", **scripted("Hello."))
    assert helper.send("t2", "Hi").result(timeout=30) == "Goodbye."
'''


def run_user_tests(tmp_path: Path, *options: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "test_my_agent.py").write_text(USER_TESTS)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *options,
            "test_my_agent.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_users_tests_run_with_the_plugins_fixtures(tmp_path: Path, backend: str) -> None:
    options = ["--rxnb-url", PG_URL] if backend == "postgres" else []
    done = run_user_tests(tmp_path, *options)
    out = done.stdout + done.stderr
    assert "1 failed, 7 passed" in out, out
    assert "test_a_wrong_expectation_still_fails" in out, out
    assert "'Hello.' == 'Goodbye.'" in out, out


def test_a_url_that_is_not_postgres_is_refused_with_the_fix(tmp_path: Path) -> None:
    done = run_user_tests(tmp_path, "--rxnb-url", "mysql://root@127.0.0.1/test", "-k", "new_for")
    out = done.stdout + done.stderr
    assert done.returncode != 0
    assert "is not a PostgreSQL URL" in out and "postgresql+psycopg://" in out, out


def test_a_temporary_schema_closes_the_stores_left_open_on_it() -> None:
    """A store a test leaves open on its schema is closed before the schema is dropped:
    left open, it would take part in later tests' registrations on a dropped schema."""
    with temporary_schema(PG_URL) as url:
        left_open = rx.open(url)
    assert left_open.closed

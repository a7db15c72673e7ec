"""Model limits (`rx.llm.limit`) and budgets (`rx.budget`) through litellm's real HTTP
path, against a loopback provider that limits itself as providers do."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))

from fake_openai import FakeOpenAI, Ok, Throttle
from limit_jobs import LimitedReply, answer, new_replies, replies
from polling import until
from run_procs import Processes, owners_registering

import rxnb as rx
from rxnb.agents import ChatQuery
from rxnb.execution import Run
from rxnb.llm import Generation

TOKENS = ["a ", "b ", "c ", "d ", "e "]
PRICED = "openai/rxnb-priced"
"""5 prompt + 5 completion tokens at $0.0006 each: $0.006 a generation."""


@rx.query
def thread(db: rx.Reader, thread_id: str) -> list[LimitedReply]:
    return list(db.exec(select(LimitedReply).order_by(LimitedReply.id)))  # type: ignore[arg-type]


def chat_notes() -> dict[int, str | None]:
    """The note under each reply, as `rx.chat` shows it."""
    query = ChatQuery(thread, "status", "thread_id")
    rows = rx.current_store().database.read(lambda db: query.run(db, {"thread_id": "t"}))[0]
    return {row["id"]: row["rx_note"] for row in rows}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(plan=[Ok(TOKENS)])
    yield fake
    fake.close()


def start_answers(
    server: FakeOpenAI, count: int, model: str = "openai/fake"
) -> dict[int, rx.RunHandle]:
    """Runs answering `count` new replies, by reply id."""
    return {
        reply_id: answer.start(reply_id=reply_id, api_base=server.api_base, model=model)
        for reply_id in new_replies(count=count)
    }


def warm_up(server: FakeOpenAI) -> None:
    """One generation first: a process's first provider call spends a second or more in
    litellm's imports before it sends its request, long after its slot."""
    (run,) = start_answers(server, 1).values()
    assert run.result(30) == "".join(TOKENS)


def rate_limited(run: rx.RunHandle) -> int:
    return int(json.loads(run.run().usage or "{}").get("rate_limited") or 0)


def test_a_limit_keeps_40_generations_under_the_providers_rate(
    url: str, server: FakeOpenAI
) -> None:
    """The limit is set a fifth under the provider's 5 requests/s, as one sets it in
    practice: the fake provider counts a request when its thread gets to it, and a
    busy test process (this server shares its interpreter) can hold a second's
    requests back and serve them at once, a burst a real provider would not see."""
    rx.open(url)
    warm_up(server)
    server.throttle = Throttle(per_second=5)
    rpm = 240
    rx.llm.limit("openai/*", rpm=rpm)
    started = time.monotonic()
    runs = list(start_answers(server, 40).values())
    for run in runs:
        assert run.result(30) == "".join(TOKENS)
    assert server.throttled == 0
    assert server.requests == 41
    assert time.monotonic() - started >= 39 * 60 / rpm - 0.5  # spaced, not refused
    assert sum(rate_limited(run) for run in runs) == 0
    assert set(replies().values()) == {"done"}


def test_a_limit_of_300_rpm_holds_across_two_workers_under_a_provider_of_5_a_second(
    no_claims_here: None, store: rx.Store, procs: Processes, url: str, server: FakeOpenAI
) -> None:
    """The issue's figures exactly: the generations run in two worker processes (one
    thread each), so this process only serves the provider and its requests are not
    held back by generating threads of its own."""
    rx.llm.limit("openai/*", rpm=300)  # before the workers start: they read it once
    procs.env["RXNB_WORKERS"] = "1"
    procs.env.pop("RXNB_EXECUTE")  # the workers claim
    for _ in range(2):
        procs.worker(url, "limit_jobs")
    until(lambda: len(owners_registering(store, answer.name)) == 2, timeout=30)
    # Warm-up: two slow answers at once, so each worker (one thread) makes its first
    # provider call, which spends a second in litellm's imports, before the figures.
    server.plan = [Ok(TOKENS, delay=0.3), Ok(TOKENS, delay=0.3), Ok(TOKENS)]
    warm = list(start_answers(server, 2).values())
    assert [run.result(60) for run in warm] == ["".join(TOKENS)] * 2
    assert len({run.run().owner for run in warm}) == 2
    server.throttle = Throttle(per_second=5)
    started = time.monotonic()
    runs = list(start_answers(server, 40).values())
    for run in runs:
        assert run.result(60) == "".join(TOKENS)
    assert (server.throttled, server.requests) == (0, 42)
    assert time.monotonic() - started >= 39 * 0.2 - 0.5  # spaced, not refused
    assert sum(rate_limited(run) for run in runs) == 0
    assert len({run.run().owner for run in runs}) == 2  # both workers generated


def test_generations_a_stalled_process_held_past_their_slots_take_new_ones(
    url: str, server: FakeOpenAI
) -> None:
    """A stall of this whole process (one thread holds the GIL for 1.5 s, as a long
    garbage collection does) makes the generations whose slots pass meanwhile late:
    they take new slots rather than all calling the provider as it ends."""
    rx.open(url)
    warm_up(server)
    server.throttle = Throttle(per_second=5)
    rx.llm.limit("openai/*", rpm=240)
    runs = list(start_answers(server, 16).values())
    until(lambda: server.requests >= 4, timeout=30, interval=0.01)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(3.0)  # no other thread runs until this one waits
    try:
        stall_until = time.monotonic() + 1.5
        while time.monotonic() < stall_until:
            pass
    finally:
        sys.setswitchinterval(interval)
    for run in runs:
        assert run.result(60) == "".join(TOKENS)
    assert (server.throttled, server.requests) == (0, 17)


def test_a_token_limit_holds_a_generation_until_the_one_before_settles_its_usage(
    url: str, server: FakeOpenAI
) -> None:
    """Each generation reserves its estimate (7 prompt tokens + max_tokens=20); the
    provider reports 10. Under tpm=40 the second waits, saying so, until the first
    settles at 10: without settling it would wait for the minute's window."""
    rx.open(url)
    warm_up(server)
    server.plan = [Ok(TOKENS), Ok(TOKENS, delay=0.25), Ok(TOKENS)]
    rx.llm.limit("openai/*", tpm=40)
    ids, runs = zip(*start_answers(server, 2).items(), strict=True)
    reason = "rate limit openai/*: 40 tokens/min"
    held = until(lambda: [i for i in ids if chat_notes()[i] == reason], timeout=10)
    assert len(held) == 1 and replies()[held[0]] == "waiting"
    assert [run.result(20) for run in runs] == ["".join(TOKENS)] * 2
    assert server.requests == 3
    assert {i: replies()[i] for i in ids} == dict.fromkeys(ids, "done")
    assert chat_notes()[held[0]] is None


def test_without_a_limit_the_provider_refuses_some_and_they_are_waited_out(
    url: str, server: FakeOpenAI
) -> None:
    rx.open(url)
    warm_up(server)
    server.throttle = Throttle(per_second=5, retry_after=0.5)
    runs = list(start_answers(server, 40).values())
    until(lambda: all(run.status in ("succeeded", "failed") for run in runs), timeout=30)
    assert server.throttled > 0
    assert sum(rate_limited(run) for run in runs) > 0


@pytest.fixture
def priced() -> None:
    litellm = rx.llm.load_litellm()
    price = {"input_cost_per_token": 0.0006, "output_cost_per_token": 0.0006}
    litellm.register_model({PRICED: {**price, "litellm_provider": "openai", "mode": "chat"}})


def generation_of(reply_id: int) -> Callable[[], Any]:
    def read() -> Any:
        store = rx.current_store()
        key = json.dumps(reply_id)
        return store.database.read(
            lambda db: db.exec(select(Generation).where(Generation.row_key == key)).first()
        )[0]

    return read


@pytest.mark.usefixtures("priced")
def test_a_reached_budget_holds_new_generations_until_it_is_raised(
    url: str, server: FakeOpenAI
) -> None:
    rx.open(url)
    rx.budget(usd=0.01, per="day")
    (first,) = start_answers(server, 1, PRICED).values()
    assert first.result(20) == "".join(TOKENS)
    assert first.run().cost == pytest.approx(0.006)
    (crossing,) = start_answers(server, 1, PRICED).values()  # under the budget when it starts
    assert crossing.result(20) == "".join(TOKENS)

    by_reply = start_answers(server, 3, PRICED)
    ids, held = list(by_reply), list(by_reply.values())
    until(lambda: all(replies()[i] == "waiting" for i in ids), timeout=10)
    reason = "budget reached ($0.012 of $0.01 today)"
    assert [generation_of(i)().waiting for i in ids] == [reason] * 3
    assert [chat_notes()[i] for i in ids] == [reason] * 3
    assert server.requests == 2
    assert {run.status for run in held} == {"running"}

    rx.cancel(held[2].id)  # a cancel still stops a waiting generation
    until(lambda: replies()[ids[2]] == "cancelled", timeout=10)
    assert held[2].wait(10) == "cancelled"

    rx.budget(usd=1.00, per="day")  # raised: the others go
    for run in held[:2]:
        assert run.result(20) == "".join(TOKENS)
    assert [replies()[i] for i in ids] == ["done", "done", "cancelled"]
    assert [generation_of(i)().waiting for i in ids] == [None] * 3
    assert server.requests == 4


@pytest.mark.usefixtures("priced")
def test_a_daily_budget_counts_todays_runs_and_a_total_one_every_run(
    url: str, server: FakeOpenAI
) -> None:
    store = rx.open(url)

    def finished_yesterday(run: rx.RunHandle) -> None:
        def body(db: rx.Writer) -> None:
            row = db.get(Run, run.id)
            assert row is not None and row.finished_at is not None
            row.finished_at -= 86400

        store.database.write(body)

    (first,) = start_answers(server, 1, PRICED).values()
    assert first.result(20) == "".join(TOKENS)  # $0.006
    finished_yesterday(first)
    rx.budget(usd=0.005, per="day")
    (today,) = start_answers(server, 1, PRICED).values()
    assert today.result(20) == "".join(TOKENS)  # yesterday's $0.006 is not today's

    rx.budget(usd=0.01, per=None)  # in total: $0.012 spent
    ((reply_id, held),) = start_answers(server, 1, PRICED).items()
    reason = "budget reached ($0.012 of $0.01 in total)"
    until(lambda: chat_notes()[reply_id] == reason, timeout=10)
    assert (replies()[reply_id], held.status) == ("waiting", "running")
    rx.budget(usd=0.05, per=None)
    assert held.result(20) == "".join(TOKENS)
    assert server.requests == 3


@pytest.mark.usefixtures("priced")
def test_a_thread_or_agent_budget_holds_only_the_turns_it_covers(
    url: str, server: FakeOpenAI
) -> None:
    rx.open(url)
    budgeted = rx.Agent("budgeted", model=PRICED, api_base=server.api_base, api_key="not-a-secret")
    answer_text = "".join(TOKENS)
    rx.budget(usd=0.005, thread="t-a")
    assert budgeted.send("t-a", "one").result(20) == answer_text  # crosses it: finishes
    held = budgeted.send("t-a", "two")
    reason = "budget of thread t-a reached ($0.006 of $0.005 today)"
    assert until(lambda: reply_of(held).note == reason and reply_of(held)).status == "waiting"
    assert budgeted.send("t-b", "three").result(20) == answer_text  # another thread goes
    rx.budget(usd=1.00, thread="t-a")
    assert held.result(20) == answer_text
    assert reply_of(held).note is None

    rx.budget(usd=0.01, agent=budgeted)  # the agent has spent $0.018 today
    held = budgeted.send("t-c", "four")
    reason = "budget of agent budgeted reached ($0.018 of $0.01 today)"
    until(lambda: reply_of(held).note == reason)
    rx.budget(None, agent="budgeted")
    assert held.result(20) == answer_text
    assert server.requests == 4


def reply_of(turn: Any) -> Any:
    return rx.current_store().database.read(lambda db: db.get(rx.agents.Message, turn.message_id))[
        0
    ]


@dataclass
class BadInput:
    call: Callable[[], None]
    message: str


BAD_INPUTS = {
    "negative rpm": BadInput(
        lambda: rx.llm.limit("openai/*", rpm=-1),
        "rx.llm.limit: rpm=-1; pass a whole number of requests per minute > 0, or leave "
        "rpm out for no requests limit",
    ),
    "fractional tpm": BadInput(
        lambda: rx.llm.limit("openai/*", tpm=1.5),
        "rx.llm.limit: tpm=1.5; pass a whole number of tokens per minute > 0",
    ),
    "no pattern": BadInput(
        lambda: rx.llm.limit("", rpm=10),
        "rx.llm.limit: pattern=''; pass a litellm model name or an fnmatch pattern",
    ),
    "a week": BadInput(
        lambda: rx.budget(usd=2.0, per="week"),
        "rx.budget: per='week'; pass per='day' (a UTC day) or per=None (in total)",
    ),
    "two scopes": BadInput(
        lambda: rx.budget(usd=1.0, agent="a", thread="t"),
        "rx.budget: pass agent= or thread=, not both",
    ),
    "dollars as text": BadInput(
        lambda: rx.budget(usd="x"),  # type: ignore[arg-type]
        "rx.budget: usd='x'; pass dollars as a number >= 0",
    ),
}


@pytest.mark.parametrize("case", BAD_INPUTS.values(), ids=BAD_INPUTS.keys())
def test_bad_limits_and_budgets_say_what_to_pass(store: rx.Store, case: BadInput) -> None:
    with pytest.raises(rx.ArgumentError) as raised:
        case.call()
    assert str(raised.value).startswith(case.message)
    assert "\n" not in str(raised.value)

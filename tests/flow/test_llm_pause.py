"""Pausing a streaming generation (`rx.pause`), through litellm's real HTTP path: the
reply stops growing and says `paused`, then streams on after `rx.resume` to its whole
text; a provider that closed the stream meanwhile is asked for the rest."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import select

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "llm"))

from fake_openai import Cut, FakeOpenAI, Ok
from llm_jobs import Reply, generate_http, new_reply, reply
from polling import until
from run_procs import Processes, owners_registering

import rxnb as rx
from rxnb.llm import Generation

TOKENS = [f"t{i} " for i in range(12)]


@rx.action
def answer(ctx: rx.ActionContext, reply_id: int, api_base: str) -> str:
    return rx.llm.stream_into(
        ctx,
        Reply,
        reply_id,
        model="openai/fake",
        api_base=api_base,
        api_key="not-a-secret",
        messages=[{"role": "user", "content": "go"}],
        chunking="word",
        throttle_ms=0,
    )


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(plan=[Ok(["warm"]), Ok(TOKENS, delay=0.1)])
    yield fake
    fake.close()


def warm_up(server: FakeOpenAI) -> None:
    """One generation first: a process's first provider call spends a second or more
    in litellm's imports, while the server fills the socket with the whole answer."""
    assert answer.start(reply_id=new_reply(), api_base=server.api_base).result(30) == "warm"


def statuses_of(store: rx.Store, reply_id: int) -> list[str]:
    """Each status the reply shows, in order (a live subscription, as a chat has)."""
    seen: list[str] = []

    def changed(value: dict[str, str]) -> None:
        if not seen or seen[-1] != value["status"]:
            seen.append(value["status"])

    store.subscribe(reply, {"reply_id": reply_id}, changed)
    return seen


def test_a_paused_generation_keeps_its_text_and_streams_on_when_resumed(
    url: str, server: FakeOpenAI
) -> None:
    store = rx.open(url)
    warm_up(server)
    reply_id = new_reply()
    seen = statuses_of(store, reply_id)
    run = answer.start(reply_id=reply_id, api_base=server.api_base)
    until(lambda: len(reply(reply_id=reply_id)["content"]) >= 6, timeout=30)
    rx.pause(run.id)
    held = until(lambda: (r := reply(reply_id=reply_id))["status"] == "paused" and r)
    assert held["content"] in "".join(TOKENS)
    assert steady(reply_id, seconds=0.5) == held["content"]  # no longer reading
    rx.resume(run.id)
    assert run.result(timeout=30) == "".join(TOKENS)
    assert reply(reply_id=reply_id) == {"status": "done", "content": "".join(TOKENS)}
    assert until(lambda: seen[-1] == "done" and seen) == [
        "pending",
        "streaming",
        "paused",
        "streaming",
        "done",
    ]
    assert server.requests == 2  # the warm-up's, and this one's stream, read on


def test_a_generation_in_a_worker_is_paused_and_resumed_from_this_process(
    no_claims_here: None, store: rx.Store, procs: Processes, url: str, server: FakeOpenAI
) -> None:
    procs.env.pop("RXNB_EXECUTE")  # the worker claims
    procs.worker(url, "llm_jobs")
    (worker,) = until(lambda: owners_registering(store, generate_http.name), timeout=30)
    warm = generate_http.start(reply_id=new_reply(), api_base=server.api_base)
    assert warm.result(30) == "warm"
    reply_id = new_reply()
    seen = statuses_of(store, reply_id)  # this process's subscription, fed by the worker's writes
    run = generate_http.start(reply_id=reply_id, api_base=server.api_base, chunking="word")
    until(lambda: len(reply(reply_id=reply_id)["content"]) >= 6, timeout=30)
    rx.pause(run.id)
    held = until(lambda: (r := reply(reply_id=reply_id))["status"] == "paused" and r)
    assert steady(reply_id, seconds=0.5) == held["content"]
    row = run.run()
    assert (row.status, row.owner) == ("running", worker.id)  # held inside its action there
    rx.resume(run.id)
    assert run.result(timeout=30) == "".join(TOKENS)
    assert until(lambda: seen[-1] == "done" and seen)[-3:] == ["paused", "streaming", "done"]
    assert server.requests == 2  # read on after the resume, not asked again


def steady(reply_id: int, seconds: float) -> str:
    """The reply's text, once it has not changed for `seconds`."""
    text = reply(reply_id=reply_id)["content"]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert reply(reply_id=reply_id)["content"] == text
        threading.Event().wait(0.02)
    return text


def test_a_stream_the_provider_closed_while_paused_is_continued_by_a_new_call(
    url: str, server: FakeOpenAI
) -> None:
    server.plan = [Ok(["warm"]), Cut(TOKENS, after=6, delay=0.1), Ok(["and ", "the ", "rest"])]
    store = rx.open(url)
    warm_up(server)
    reply_id = new_reply()
    run = answer.start(reply_id=reply_id, api_base=server.api_base)
    until(lambda: reply(reply_id=reply_id)["content"], timeout=30)
    rx.pause(run.id)
    until(lambda: reply(reply_id=reply_id)["status"] == "paused")
    until(lambda: any(what == "cut" for _, what in server.events), timeout=10)
    rx.resume(run.id)
    whole = "".join(TOKENS[:6]) + "and the rest"
    assert run.result(timeout=30) == whole
    assert reply(reply_id=reply_id) == {"status": "done", "content": whole}
    asked = server.bodies[2]["messages"]
    assert asked[-2] == {"role": "assistant", "content": "".join(TOKENS[:6])}
    assert "Continue" in asked[-1]["content"]
    generation = store.database.read(
        lambda db: db.exec(select(Generation).where(Generation.run_id == run.id)).one()
    )[0]
    assert generation.status == "done"


def test_a_paused_agent_reply_says_so_and_streams_on_when_resumed(url: str) -> None:
    rx.open(url)
    script = " ".join(f"w{i}" for i in range(60))
    pauser = rx.Agent("pauser", model="rxnb/scripted", script=script, delay=0.02)
    turn = pauser.send("paused-thread", "go")

    def reply_row() -> rx.agents.Message:
        row = rx.current_store().database.read(
            lambda db: db.get(rx.agents.Message, turn.message_id)
        )[0]
        assert row is not None
        return row

    until(lambda: len(reply_row().text or "") >= 10, timeout=30)
    turn.pause()
    held = until(lambda: (r := reply_row()).status == "paused" and r)
    assert held.note == rx.llm.PAUSED_REASON
    turn.resume()
    assert turn.result(timeout=30) == script
    done = reply_row()
    assert (done.status, done.text, done.note) == ("done", script, None)

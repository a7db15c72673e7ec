"""Provider faults through litellm's real HTTP path, against a loopback server."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import pytest
from fake_openai import Cut, FakeOpenAI, Hang, Ok, RateLimited
from llm_jobs import generate_http, generate_http_retried, new_reply, reply
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb.llm._model import Generation

TOKENS = [f"token{i} " for i in range(30)]


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(plan=[Ok(TOKENS)])
    yield fake
    fake.close()


def test_a_stream_over_http_is_stored_whole(store: rx.Store, server: FakeOpenAI) -> None:
    reply_id = new_reply()
    run = generate_http.start(reply_id=reply_id, api_base=server.api_base)
    assert run.result(20) == "".join(TOKENS)
    assert reply(reply_id=reply_id) == {"content": "".join(TOKENS), "status": "done"}
    usage = json.loads(run.run().usage or "{}")
    assert usage["completion_tokens"] == 30 and usage["estimated"] is False


def test_a_rate_limit_is_waited_out_as_retry_after_says(
    store: rx.Store, server: FakeOpenAI
) -> None:
    server.plan = [RateLimited(0.4), Ok(TOKENS)]
    reply_id = new_reply()
    started = time.monotonic()
    run = generate_http.start(reply_id=reply_id, api_base=server.api_base)
    assert run.result(20) == "".join(TOKENS)
    assert time.monotonic() - started >= 0.4
    assert server.requests == 2
    assert json.loads(run.run().usage or "{}")["rate_limited"] == 1


def test_a_stream_cut_midway_keeps_the_text_and_fails(store: rx.Store, server: FakeOpenAI) -> None:
    server.plan = [Cut(TOKENS, after=5)]
    reply_id = new_reply()
    run = generate_http.start(reply_id=reply_id, api_base=server.api_base)
    with pytest.raises(rx.RunFailedError, match=r"MidStreamFallbackError|APIConnectionError"):
        run.result(20)
    assert reply(reply_id=reply_id) == {"content": "".join(TOKENS[:5]), "status": "failed"}


def test_a_retried_cut_replaces_the_partial_text_and_keeps_it_in_the_journal(
    store: rx.Store, server: FakeOpenAI
) -> None:
    server.plan = [Cut(TOKENS, after=5), Ok(TOKENS)]
    reply_id = new_reply()
    run = generate_http_retried.start(reply_id=reply_id, api_base=server.api_base)
    assert run.result(30) == "".join(TOKENS)
    assert reply(reply_id=reply_id) == {"content": "".join(TOKENS), "status": "done"}
    generations = store.database.read(
        lambda db: [g.model_dump() for g in db.exec(select(Generation).order_by(Generation.id))]
    )[0]
    first, second = generations
    assert (first["attempt"], first["status"], first["replaced"]) == (
        1,
        "failed",
        "".join(TOKENS[:5]),
    )
    assert "MidStreamFallbackError" in first["error"] or "APIConnectionError" in first["error"]
    assert (second["attempt"], second["status"], second["offset"]) == (2, "done", 0)
    assert first["run_id"] == second["run_id"] == run.id


def test_a_stalled_stream_times_out_keeping_the_text(store: rx.Store, server: FakeOpenAI) -> None:
    server.plan = [Hang(TOKENS, after=3)]
    reply_id = new_reply()
    run = generate_http.start(reply_id=reply_id, api_base=server.api_base, stream_timeout=0.5)
    with pytest.raises(rx.RunFailedError, match=r"(?i)timeout|timed out"):
        run.result(20)
    assert reply(reply_id=reply_id) == {"content": "".join(TOKENS[:3]), "status": "failed"}


def test_cancel_closes_the_connection_and_keeps_what_was_streamed(
    store: rx.Store, server: FakeOpenAI
) -> None:
    tokens = [f"t{i} " for i in range(200)]
    server.plan = [Ok(tokens, delay=0.05)]
    reply_id = new_reply()
    run = generate_http.start(reply_id=reply_id, api_base=server.api_base)
    until(lambda: len((reply(reply_id=reply_id) or {}).get("content", "").split()) >= 10, 20)
    cancelled_at = time.monotonic()
    run.cancel()
    assert run.wait(10) == "cancelled"
    closed = until(lambda: [t for t, what in server.events if what == "client disconnected"], 5)
    # Closed at the stream's next piece, not after the ~9.5 s it still had to run; the
    # bound only has to survive a loaded machine (0.05 s is typical here).
    assert closed[0] - cancelled_at <= 2.0, (
        f"connection closed after {closed[0] - cancelled_at:.3f} s"
    )
    stored = reply(reply_id=reply_id)
    assert stored is not None and stored["status"] == "cancelled"
    assert "".join(tokens).startswith(stored["content"])
    assert len(stored["content"].split()) >= 10

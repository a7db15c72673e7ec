"""Streaming through litellm's real code path (the embedded offline provider) into rows."""

from __future__ import annotations

import json
import random
import threading

import pytest
from llm_jobs import Reply, from_script, generate, new_reply, reply
from polling import until

import rxnb as rx
from rxnb import llm
from rxnb.execution import ActionContext


def test_echo_streams_the_last_user_message_word_by_word(store: rx.Store) -> None:
    ctx = ActionContext(store, None)
    pieces = list(
        llm.stream(
            ctx,
            model="rxnb/echo",
            delay=0,
            messages=[{"role": "user", "content": "say it back, please"}],
        )
    )
    assert "".join(pieces) == "say it back, please"
    assert len(pieces) == 4


def test_stream_into_stores_the_whole_text_and_marks_it_done(store: rx.Store) -> None:
    reply_id = new_reply()
    script = "Hello there, friend. How are you today? Fine, thanks!"
    run = generate.start(reply_id=reply_id, script=script, delay=0.002)
    assert run.result(20) == script
    assert reply(reply_id=reply_id) == {"content": script, "status": "done"}
    usage = json.loads(run.run().usage or "{}")
    assert usage["completion_tokens"] == 9 and usage["estimated"] is False


def test_no_text_is_lost_for_random_chunkings_and_timings(store: rx.Store) -> None:
    rng = random.Random(11)
    words = ["alpha", "beta,", "gamma.", "delta!", "```", "\n", "x = (1, 2)", "é", "🙂", "  "]
    handles = []
    for _ in range(100):
        script = "".join(rng.choice(words) + rng.choice(["", " ", "\n"]) for _ in range(40))
        reply_id = new_reply()
        handles.append(
            (
                reply_id,
                script,
                generate.start(
                    reply_id=reply_id,
                    script=script,
                    delay=rng.choice([0.0, 0.0005]),
                    chunking=rng.choice(["word", "clause", "sentence", "line"]),
                    throttle_ms=rng.choice([0, 1, 5, 100]),
                ),
            )
        )
    for reply_id, script, handle in handles:
        assert handle.result(60) == script
        assert reply(reply_id=reply_id) == {"content": script, "status": "done"}


RECEIVED: dict[int, str] = {}
"""The text each generation of `generate_and_keep` received from the provider."""


@rx.action
def generate_and_keep(ctx: rx.ActionContext, reply_id: int, script: str) -> str:
    usage = llm.Usage()
    try:
        return from_script(ctx, reply_id, script, delay=0.01, throttle_ms=0, usage=usage)
    finally:
        RECEIVED[reply_id] = usage.text  # what the provider had sent when it stopped


def test_cancel_keeps_exactly_the_text_streamed_before_it(store: rx.Store) -> None:
    reply_id = new_reply()
    script = " ".join(f"word{i}," for i in range(200))
    run = generate_and_keep.start(reply_id=reply_id, script=script)
    until(lambda: len((reply(reply_id=reply_id) or {}).get("content", "")) > 40, timeout=20)
    run.cancel()
    assert run.wait(20) == "cancelled"
    stored = reply(reply_id=reply_id)
    assert stored is not None and stored["status"] == "cancelled"
    assert stored["content"] == RECEIVED[reply_id], "exactly what was streamed, no more, no less"
    assert script.startswith(stored["content"]) and 40 < len(stored["content"]) < len(script)
    usage = json.loads(run.run().usage or "{}")
    assert usage["completion_tokens"] >= 1, "usage is recorded on cancel too"


def test_the_first_text_is_written_before_the_second_token(store: rx.Store) -> None:
    reply_id = new_reply()
    first_seen = threading.Event()
    sub = store.subscribe(
        reply, {"reply_id": reply_id}, lambda r: r and r["content"] and first_seen.set()
    )
    run = generate.start(
        reply_id=reply_id, script="Hello world and more words", delay=0.5, throttle_ms=10_000
    )
    assert first_seen.wait(5)
    assert reply(reply_id=reply_id)["content"] == "Hello", "one token in, before the next"
    run.cancel()
    run.wait(10)
    sub.close()


def test_a_failing_provider_fails_the_row_and_the_run(store: rx.Store) -> None:
    reply_id = new_reply()

    @rx.action
    def broken(ctx: rx.ActionContext, reply_id: int) -> str:
        return llm.stream_into(
            ctx,
            Reply,
            reply_id,
            model="rxnb/no-such-model",
            messages=[{"role": "user", "content": "x"}],
        )

    run = broken.start(reply_id=reply_id)
    with pytest.raises(rx.RunFailedError, match="no offline model"):
        run.result(20)
    assert reply(reply_id=reply_id)["status"] == "failed"


def test_stream_into_names_a_missing_field(store: rx.Store) -> None:
    ctx = ActionContext(store, None)
    with pytest.raises(rx.RxnbError, match="has no field 'body'"):
        llm.stream_into(ctx, Reply, 1, "body", model="rxnb/echo", messages=[])

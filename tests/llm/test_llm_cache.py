"""The LLM cache (`rx.llm.configure(cache=True)`): identical requests answered from the
store, counted at a loopback OpenAI-compatible server through litellm's real HTTP path."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fake_openai import Cut, FakeOpenAI, Ok, ToolCalls
from llm_jobs import Reply, new_reply, reply
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb import llm
from rxnb.llm import CacheEntry, Generation

TOKENS = [f"word{i} " for i in range(40)]
ANSWER = "".join(TOKENS)


@rx.action
def ask(
    ctx: rx.ActionContext,
    reply_id: int,
    api_base: str,
    prompt: str = "go",
    cache: bool | None = None,
    rotated: bool = False,
    temperature: float | None = None,
) -> str:
    extra: dict[str, Any] = {} if temperature is None else {"temperature": temperature}
    return llm.stream_into(
        ctx,
        Reply,
        reply_id,
        model="openai/gpt-4o-mini",
        api_base=api_base,
        api_key="sk-rotated-key-0002" if rotated else "sk-first-key-0001",
        messages=[{"role": "user", "content": prompt}],
        throttle_ms=0,
        cache=cache,
        **extra,
    )


@rx.action
def ask_plain(ctx: rx.ActionContext, api_base: str, prompt: str = "go") -> dict[str, Any]:
    """`rx.llm.stream` (no row): the text and the tool calls."""
    usage = llm.Usage()
    text = "".join(
        llm.stream(
            ctx,
            model="openai/gpt-4o-mini",
            api_base=api_base,
            api_key="sk-first-key-0001",
            messages=[{"role": "user", "content": prompt}],
            usage=usage,
        )
    )
    return {"text": text, "calls": usage.tool_calls, "cached": usage.cached}


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(plan=[Ok(TOKENS)])
    yield fake
    fake.close()


@pytest.fixture
def cache_on() -> Iterator[None]:
    before = llm.configure().cache
    llm.configure(cache=True)
    yield
    llm.configure(cache=before, replay_rate=0)


def _answer(server: FakeOpenAI, **arguments: Any) -> tuple[rx.RunHandle, int]:
    reply_id = new_reply()
    run = ask.start(reply_id=reply_id, api_base=server.api_base, **arguments)
    run.result(20)
    return run, reply_id


def _generations(store: rx.Store) -> list[Generation]:
    return store.database.read(
        lambda db: list(db.exec(select(Generation).order_by(Generation.id)))
    )[0]


def test_an_identical_request_is_answered_from_the_store(
    store: rx.Store, server: FakeOpenAI, cache_on: None
) -> None:
    first, first_id = _answer(server)
    second, second_id = _answer(server)
    assert server.requests == 1
    assert (
        reply(reply_id=second_id)
        == reply(reply_id=first_id)
        == {
            "content": ANSWER,
            "status": "done",
        }
    )
    made, hit = _generations(store)
    assert (made.cached, hit.cached) == (False, True)
    usage = hit.usage_json()
    assert usage is not None and usage["cached"] is True and hit.cost == 0
    first_usage = made.usage_json()
    assert first_usage is not None and first_usage["cost"]  # gpt-4o-mini has a price
    assert usage["cost_saved"] == pytest.approx(first_usage["cost"])
    assert usage["completion_tokens"] == first_usage["completion_tokens"]
    run_usage = json.loads(second.run().usage or "{}")
    assert run_usage["cached"] is True and second.run().cost == 0
    assert json.loads(first.run().usage or "{}").get("cached") is None


def test_what_changes_the_answer_changes_the_key_and_a_key_does_not(
    store: rx.Store, server: FakeOpenAI, cache_on: None
) -> None:
    _answer(server)
    _answer(server, prompt="another prompt")
    assert server.requests == 2
    _answer(server, temperature=0.3)
    assert server.requests == 3
    _answer(server, rotated=True)  # a new key: the same request
    assert server.requests == 3
    stored = store.database.read(lambda db: [e.model_dump() for e in db.exec(select(CacheEntry))])[
        0
    ]
    assert len(stored) == 3
    assert "sk-first-key" not in json.dumps(stored)


def test_the_cache_is_off_unless_asked_for_and_a_call_can_refuse_it(
    store: rx.Store, server: FakeOpenAI
) -> None:
    _answer(server)
    _answer(server)
    assert server.requests == 2  # off by default: a regenerate gets a new answer
    _answer(server, cache=True)
    _answer(server, cache=True)
    assert server.requests == 3
    llm.configure(cache=True)
    try:
        _answer(server, cache=False)
    finally:
        llm.configure(cache=False)
    assert server.requests == 4


def test_an_answer_that_did_not_end_naturally_is_not_stored(
    store: rx.Store, server: FakeOpenAI, cache_on: None
) -> None:
    server.plan = [Cut(TOKENS, after=5), Ok(TOKENS)]
    reply_id = new_reply()
    with pytest.raises(rx.RunFailedError):
        ask.start(reply_id=reply_id, api_base=server.api_base).result(20)
    assert reply(reply_id=reply_id) == {"content": "".join(TOKENS[:5]), "status": "failed"}
    _, again = _answer(server)
    assert server.requests == 2
    assert reply(reply_id=again) == {"content": ANSWER, "status": "done"}
    assert store.database.read(lambda db: len(db.exec(select(CacheEntry)).all()))[0] == 1


def test_a_cancelled_answer_is_not_stored(
    store: rx.Store, server: FakeOpenAI, cache_on: None
) -> None:
    server.plan = [Ok(TOKENS, delay=0.05)]
    reply_id = new_reply()
    run = ask.start(reply_id=reply_id, api_base=server.api_base)
    until(lambda: (reply(reply_id=reply_id) or {}).get("content"), timeout=20)
    run.cancel()
    with pytest.raises(rx.RunCancelledError):
        run.result(20)
    assert store.database.read(lambda db: db.exec(select(CacheEntry)).all())[0] == []


def test_tool_calls_come_back_from_the_cache_and_stream_is_cached_too(
    store: rx.Store, server: FakeOpenAI, cache_on: None
) -> None:
    server.plan = [ToolCalls("Looking.", [("weather", '{"city": "Paris"}')])]
    first = ask_plain.start(api_base=server.api_base).result(20)
    second = ask_plain.start(api_base=server.api_base).result(20)
    assert server.requests == 1
    assert first["cached"] is False and second["cached"] is True
    assert second["text"] == first["text"] == "Looking."
    assert [(c["name"], json.loads(c["arguments"])) for c in second["calls"]] == [
        ("weather", {"city": "Paris"})
    ]


def test_a_replay_rate_streams_a_hit_in_pieces(
    store: rx.Store, server: FakeOpenAI, cache_on: None
) -> None:
    _answer(server)
    llm.configure(replay_rate=1000)  # 270 characters: 6 pieces of 50, 0.05 s apart
    reply_id = new_reply()
    ask.start(reply_id=reply_id, api_base=server.api_base).result(20)
    hit = _generations(store)[-1]
    assert hit.cached and server.requests == 1
    assert hit.finished_at is not None and hit.finished_at - hit.started_at >= 0.25


def test_clear_cache_and_retention_delete_entries(
    store: rx.Store, server: FakeOpenAI, cache_on: None
) -> None:
    _answer(server)
    assert llm.clear_cache(model="openai/other") == 0
    assert llm.clear_cache() == 1
    _answer(server)
    assert server.requests == 2
    store.database.write(
        lambda db: [
            setattr(e, "created_at", time.time() - 3 * 86400) for e in db.exec(select(CacheEntry))
        ]
    )
    rx.retention(days=1)
    pruned = rx.prune()
    assert pruned.deleted.get("rx_llm_cache") == 1
    _answer(server)
    assert server.requests == 3


def test_bad_settings_are_refused_with_the_fix(store: rx.Store) -> None:
    with pytest.raises(rx.ArgumentError, match=r"cache='yes'.*True"):
        llm.configure(cache="yes")  # type: ignore[arg-type]
    with pytest.raises(rx.ArgumentError, match=r"replay_rate=-1.*>= 0"):
        llm.configure(replay_rate=-1)
    assert llm.configure().cache is False


def test_litellm_logging_runs_only_while_someone_listens(
    store: rx.Store, server: FakeOpenAI
) -> None:
    """litellm's per-chunk success logging, and the success handler it runs on a
    thread of its own as a stream ends, are off while no litellm callback or cache is
    configured (rxnb records usage itself), and on again for a user's callback."""
    import litellm
    from litellm.litellm_core_utils.litellm_logging import Logging

    priced: list[str] = []  # the handler's work: pricing the answer again
    real = Logging.response_cost_calculator

    def counted(self: Any, *args: Any, **kwargs: Any) -> Any:
        priced.append(threading.current_thread().name)
        return real(self, *args, **kwargs)

    Logging.response_cost_calculator = counted  # type: ignore[method-assign]
    try:
        _answer(server)
        _answer(server)
    finally:
        Logging.response_cost_calculator = real  # type: ignore[method-assign]
    assert litellm.disable_streaming_logging is True
    assert not [name for name in priced if name.startswith("litellm")]
    heard: list[str] = []

    def callback(kwargs: Any, response: Any, start: Any, end: Any) -> None:
        heard.append(str(kwargs.get("model")))

    litellm.success_callback = [callback]
    try:
        _answer(server)
        assert litellm.disable_streaming_logging is False
        until(lambda: heard, timeout=10)
    finally:
        litellm.success_callback = []
    _answer(server)
    assert litellm.disable_streaming_logging is True

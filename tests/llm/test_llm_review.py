"""`rx.llm` against what a new user and a provider may send it: keys quoted back in
errors, a stream that never opens, NULs in the text, arguments of the wrong shape."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_openai import FakeOpenAI, Hang, RateLimited, Refused
from llm_jobs import Reply, from_fake_server, generate, new_reply, reply
from polling import until
from sqlmodel import select

import rxnb as rx
from rxnb import llm
from rxnb.execution._secrets import REDACTED, redact
from rxnb.llm import load_litellm
from rxnb.llm._model import Generation
from rxnb.widgets import runs_table

SECRET = "sk-proj-QUOTED-0123456789abcdef"
ENV_SECRET = "sk-env-QUOTED-fedcba9876543210"


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    load_litellm()


@pytest.fixture
def server() -> Iterator[FakeOpenAI]:
    fake = FakeOpenAI(plan=[Refused(401)])
    yield fake
    fake.close()


@rx.action
def refused(ctx: rx.ActionContext, reply_id: int, api_base: str, pass_key: bool) -> str:
    return llm.stream_into(
        ctx,
        Reply,
        reply_id,
        model="openai/gpt-4o-mini",
        api_base=api_base,
        messages=[{"role": "user", "content": "go"}],
        rate_limit_retries=1,
        **({"api_key": SECRET} if pass_key else {}),
    )


def stored_text(store: rx.Store) -> str:
    """Every run, generation and runs-view row, as text."""
    runs = [
        r.model_dump() for r in store.database.read(lambda db: db.exec(select(rx.Run)).all())[0]
    ]
    generations = store.database.read(
        lambda db: [g.model_dump() for g in db.exec(select(Generation))]
    )[0]
    return json.dumps([runs, generations, runs_table(limit=20)], default=str)


def test_a_key_the_provider_quotes_back_is_kept_out_of_the_store(
    store: rx.Store, url: str, server: FakeOpenAI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A provider that refuses a key may quote it in its error; the error is stored."""
    monkeypatch.setenv("OPENAI_API_KEY", ENV_SECRET)
    for pass_key in (True, False):  # api_key=, then the provider's environment variable
        run = refused.start(reply_id=new_reply(), api_base=server.api_base, pass_key=pass_key)
        with pytest.raises(rx.RunFailedError, match=rf"AuthenticationError.*{REDACTED}") as err:
            run.result(30)
        assert SECRET not in str(err.value) and ENV_SECRET not in str(err.value)
    text = stored_text(store)
    assert text.count(REDACTED) >= 4, "on both runs and both generations"
    assert SECRET not in text and ENV_SECRET not in text
    store.close()
    path = Path(url.removeprefix("sqlite:///"))
    for file in path.parent.glob(path.name + "*"):
        data = file.read_bytes()
        assert SECRET.encode() not in data and ENV_SECRET.encode() not in data, file


def test_a_key_in_a_wrapped_exception_is_replaced_keeping_the_type() -> None:
    litellm = load_litellm()
    cut = litellm.exceptions.MidStreamFallbackError(
        message="stream broke",
        model="openai/x",
        llm_provider="openai",
        original_exception=ValueError(f"header Authorization: Bearer {SECRET}"),
    )
    assert redact(cut, [SECRET]) is cut
    assert SECRET not in str(cut) and REDACTED in str(cut)


def test_usage_is_recorded_on_the_run_when_the_stream_never_opens(
    store: rx.Store, server: FakeOpenAI
) -> None:
    """Two 429s with one retry allowed: the run fails before any stream opened, and its
    usage still says it was rate limited."""
    server.plan = [RateLimited(0)]
    run = refused.start(reply_id=new_reply(), api_base=server.api_base, pass_key=True)
    assert run.wait(30) == "failed"
    usage = json.loads(run.run().usage or "null")
    assert usage is not None and usage["rate_limited"] == 1


def test_a_nul_in_the_text_is_stored_as_a_replacement_character(store: rx.Store) -> None:
    """PostgreSQL text cannot hold a NUL: the rest of the reply would be lost there."""
    reply_id = new_reply()
    run = generate.start(
        reply_id=reply_id, script="before, a\x00b c, after", delay=0, throttle_ms=0
    )
    assert run.result(20) == "before, a\ufffdb c, after"
    assert reply(reply_id=reply_id) == {"content": "before, a\ufffdb c, after", "status": "done"}


@pytest.mark.postgres_only
def test_a_nul_in_the_text_does_not_fail_the_reply_on_postgresql(store: rx.Store) -> None:
    reply_id = new_reply()
    run = generate.start(reply_id=reply_id, script="hello, world, \x00bad", delay=0)
    assert run.wait(20) == "succeeded", run.run().error
    assert reply(reply_id=reply_id) == {"content": "hello, world, \ufffdbad", "status": "done"}


@rx.action
def into_reply(ctx: rx.ActionContext, row_id: Any, options: dict[str, Any]) -> str:
    arguments: dict[str, Any] = {
        "model": "rxnb/echo",
        "messages": [{"role": "user", "content": "hi there"}],
        "delay": 0,
        **options,
    }
    return llm.stream_into(ctx, Reply, row_id, **arguments)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"messages": "hi there"}, r"messages='hi there' is not a list of messages; pass e\.g\."),
        ({"messages": None}, r"messages=None is not a list of messages"),
        ({"field": "status"}, r"Reply\.status holds the row's status .* field='content'"),
    ],
)
def test_arguments_of_the_wrong_shape_are_refused_naming_the_fix(
    store: rx.Store, options: dict[str, Any], message: str
) -> None:
    reply_id = new_reply()
    run = into_reply.start(row_id=reply_id, options=options)
    with pytest.raises(rx.RunFailedError, match=message):
        run.result(20)
    assert reply(reply_id=reply_id)["status"] in ("pending", "failed")
    assert into_reply.start(row_id=new_reply(), options={}).result(20) == "hi there"


def check_wrong_row_id() -> None:
    run = into_reply.start(row_id="abc", options={})
    with pytest.raises(rx.RunFailedError, match=r"'abc' is not a Reply id \(id: int\)"):
        run.result(20)
    reply_id = new_reply()
    assert into_reply.start(row_id=str(reply_id), options={}).result(20) == "hi there"
    assert reply(reply_id=reply_id) == {"content": "hi there", "status": "done"}


def test_a_row_id_of_the_wrong_type_is_refused_naming_the_key_type(store: rx.Store) -> None:
    check_wrong_row_id()


@pytest.mark.postgres_only
def test_a_row_id_of_the_wrong_type_is_refused_naming_the_key_type_on_postgresql(
    store: rx.Store,
) -> None:
    """PostgreSQL used to answer with its own "invalid input syntax for type integer"."""
    check_wrong_row_id()


@rx.action(timeout=1)
def limited(ctx: rx.ActionContext, reply_id: int, api_base: str) -> str:
    return from_fake_server(ctx, reply_id, api_base)


def test_a_generation_that_overruns_its_timeout_fails_like_its_run(
    store: rx.Store, server: FakeOpenAI
) -> None:
    """The row used to say `cancelled` while its run said `failed` (TimeoutError)."""
    server.plan = [Hang(["one ", "two "], after=2)]
    reply_id = new_reply()
    run = limited.start(reply_id=reply_id, api_base=server.api_base)
    assert run.wait(20) == "failed"
    until(lambda: reply(reply_id=reply_id)["content"] == "one two ", timeout=10)
    assert reply(reply_id=reply_id) == {"content": "one two ", "status": "failed"}
    (generation,) = store.database.read(
        lambda db: [g.model_dump() for g in db.exec(select(Generation))]
    )[0]
    assert generation["status"] == "failed"
    assert "TimeoutError: timed out after 1 s" in generation["error"]

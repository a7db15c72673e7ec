"""`rx.llm` driven the way a demanding user would: odd rows, odd options, odd text,
cancels and retries at odd times, providers that stall or fail, and secrets."""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from fake_openai import Cut, FakeOpenAI, Hang, Ok
from llm_jobs import Reply, from_fake_server, generate, new_reply, reply
from polling import until
from sqlmodel import Field, SQLModel, select

import rxnb as rx
from rxnb import llm
from rxnb.execution import ActionContext
from rxnb.execution._actions import executor_for
from rxnb.llm import Chunker, load_litellm
from rxnb.llm._chunking import MAX_HELD
from rxnb.llm._model import Generation
from rxnb.widgets import runs_table


class UuidNote(SQLModel, table=True):
    """A row keyed by a UUID, as many SQLModel tutorials declare them."""

    __tablename__ = "adv_uuid_note"
    id: uuid.UUID = Field(default_factory=uuid.uuid4, primary_key=True)
    content: str = ""
    status: str = "pending"


class Scored(SQLModel, table=True):
    __tablename__ = "adv_scored"
    id: int | None = Field(default=None, primary_key=True)
    score: int = 0
    content: str = ""
    status: str = "pending"


class Plain(SQLModel, table=True):
    """No status field: only the text is written."""

    __tablename__ = "adv_plain"
    id: int | None = Field(default=None, primary_key=True)
    body: str | None = None


class Short(SQLModel, table=True):
    """A column the text outgrows (as a VARCHAR(n) would on PostgreSQL)."""

    __tablename__ = "adv_short"
    __table_args__ = (sa.CheckConstraint("length(content) <= 12", name="adv_short_len"),)
    id: int | None = Field(default=None, primary_key=True)
    content: str = ""
    status: str = "pending"


@pytest.fixture(scope="module", autouse=True)
def litellm_loaded() -> None:
    """litellm takes seconds to import: once for the module, not inside a test. One
    completion too, so that its lazy imports happen while the warning filters its
    import installed are in force (pytest resets them for each test)."""
    load_litellm()
    ctx = ActionContext(None, None)  # type: ignore[arg-type]  # no run: no store used
    assert "".join(llm.stream(ctx, model="rxnb/echo", messages=[], delay=0)) == ""


@rx.mutation
def new_row(db: rx.Writer, kind: str) -> Any:
    model = {"uuid": UuidNote, "scored": Scored, "plain": Plain, "short": Short}[kind]
    row = model()
    db.add(row)
    db.flush()
    return str(row.id) if kind == "uuid" else row.id


@rx.query
def row_of(db: rx.Reader, kind: str, row_id: Any) -> dict[str, Any] | None:
    model = {"uuid": UuidNote, "scored": Scored, "plain": Plain, "short": Short}[kind]
    key = uuid.UUID(row_id) if kind == "uuid" else row_id
    row = db.get(model, key)
    return None if row is None else row.model_dump(mode="json")


@rx.mutation
def delete_reply(db: rx.Writer, reply_id: int) -> None:
    row = db.get(Reply, reply_id)
    if row is not None:
        db.delete(row)


@rx.action
def into(
    ctx: rx.ActionContext,
    kind: str,
    row_id: Any,
    script: str,
    field: str = "content",
    options: dict[str, Any] | None = None,
) -> str:
    model = {"uuid": UuidNote, "scored": Scored, "plain": Plain, "short": Short}[kind]
    key = uuid.UUID(row_id) if kind == "uuid" else row_id
    return llm.stream_into(
        ctx,
        model,
        key,
        field,
        model="rxnb/scripted",
        messages=[{"role": "user", "content": "go"}],
        script=script,
        delay=0,
        **(options or {}),
    )


def generations(store: rx.Store) -> list[dict[str, Any]]:
    return store.database.read(
        lambda db: [g.model_dump() for g in db.exec(select(Generation).order_by(Generation.id))]
    )[0]


def reply_generations(store: rx.Store, reply_id: int) -> list[dict[str, Any]]:
    return [
        g
        for g in generations(store)
        if g["target"] == Reply.__tablename__ and g["row_key"] == json.dumps(reply_id)
    ]


# -- where streamed text is cut ------------------------------------------------------


def test_chinese_text_streams_at_its_own_punctuation() -> None:
    comma, stop, bang = "\uff0c", "\u3002", "\uff01"  # as Chinese text has them
    clause, sentence = Chunker("clause"), Chunker("sentence")
    pushes = [f"你好{comma}世", f"界{stop}今天", f"天气很好{bang}"]
    assert [clause.push(p) for p in pushes] == [
        f"你好{comma}",
        f"世界{stop}",
        f"今天天气很好{bang}",
    ]
    assert [sentence.push(p) for p in pushes] == [
        "",
        f"你好{comma}世界{stop}",
        f"今天天气很好{bang}",
    ]


def test_text_with_no_space_at_all_is_let_out_after_a_while() -> None:
    """A script without spaces (or a long URL) is not held to the end of the stream."""
    chunker = Chunker("clause")
    given = [chunker.push("字" * 50) for _ in range(6)]
    assert any(given[:4]), "the text must go out before the stream ends"
    assert "".join(given) + chunker.rest() == "字" * 300


def test_the_no_space_fallback_does_not_cut_a_code_fence_mark() -> None:
    chunker = Chunker("clause")
    given = chunker.push("x" * MAX_HELD + "``")
    assert given == "x" * MAX_HELD
    given += chunker.push("`python\ncode = (1, 2)")
    assert chunker._fences == 1, "the fence opened: inside it only line ends count"
    assert given + chunker.rest() == "x" * MAX_HELD + "```python\ncode = (1, 2)"


# -- odd text from the provider --------------------------------------------------------


def test_a_lone_surrogate_is_stored_as_a_replacement_character(store: rx.Store) -> None:
    """UTF-8 cannot hold a lone surrogate: the row used to stay `streaming` forever."""
    reply_id = new_reply()
    run = generate.start(reply_id=reply_id, script="hi \ud83d there, friend")
    assert run.result(20) == "hi \ufffd there, friend"
    assert reply(reply_id=reply_id) == {"content": "hi \ufffd there, friend", "status": "done"}
    assert [g["status"] for g in generations(store)] == ["done"]


def test_a_surrogate_pair_split_across_chunks_is_joined(store: rx.Store) -> None:
    """Some servers split an emoji's JSON escape pair over two events."""
    server = FakeOpenAI(plan=[Ok(["hi ", "\ud83d", "\ude00", " there"])])
    try:
        reply_id = new_reply()
        run = http_into.start(reply_id=reply_id, api_base=server.api_base)
        assert run.result(20) == "hi 😀 there"
        assert reply(reply_id=reply_id) == {"content": "hi 😀 there", "status": "done"}
    finally:
        server.close()


def test_emoji_html_and_a_long_text_arrive_whole(store: rx.Store) -> None:
    """(litellm stops a stream that repeats one chunk ~100 times, so the words vary.)"""
    script = "<script>alert(1)</script> 👩‍👩‍👧 é\u0301 " + "".join(
        f"word{i}, " if i % 40 else "line\n" for i in range(700)
    )
    reply_id = new_reply()
    run = generate.start(reply_id=reply_id, script=script, throttle_ms=5)
    assert run.result(30) == script
    assert reply(reply_id=reply_id) == {"content": script, "status": "done"}


# -- odd rows and fields ---------------------------------------------------------------


def test_a_row_keyed_by_a_uuid_can_be_streamed_into_and_followed(
    store: rx.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    row_id = new_row(kind="uuid")
    run = into.start(kind="uuid", row_id=row_id, script="Hello, uuid world.")
    assert run.follow(timeout=20) == "succeeded"
    assert capsys.readouterr().out == "Hello, uuid world.\n"
    assert row_of(kind="uuid", row_id=row_id)["content"] == "Hello, uuid world."
    (generation,) = generations(store)
    assert generation["row_key"] == json.dumps(row_id)


def test_a_field_that_is_not_text_is_refused_naming_the_text_fields(store: rx.Store) -> None:
    row_id = new_row(kind="scored")
    run = into.start(kind="scored", row_id=row_id, script="hello", field="score")
    with pytest.raises(rx.RunFailedError, match=r"Scored\.score holds int, not text.*content"):
        run.result(20)
    assert row_of(kind="scored", row_id=row_id)["score"] == 0, "no text in an int column"


def test_a_model_without_status_gets_only_its_text(store: rx.Store) -> None:
    row_id = new_row(kind="plain")
    run = into.start(kind="plain", row_id=row_id, script="just text", field="body")
    assert run.result(20) == "just text"
    assert row_of(kind="plain", row_id=row_id) == {"id": row_id, "body": "just text"}
    assert [g["status"] for g in generations(store)] == ["done"]


def test_a_class_that_is_not_a_table_is_refused(store: rx.Store) -> None:
    class NotATable(SQLModel):
        content: str = ""

    with pytest.raises(rx.RxnbError, match="not a table; pass a SQLModel class declared with"):
        llm.stream_into(ActionContext(store, None), NotATable, 1, model="rxnb/echo", messages=[])


def test_a_missing_row_is_named_with_the_fix(store: rx.Store) -> None:
    run = generate.start(reply_id=999, script="x")
    with pytest.raises(rx.RunFailedError, match="no Reply row with id 999; create the row first"):
        run.result(20)
    assert generations(store) == []


def test_a_row_deleted_while_streaming_fails_the_run_and_ends_its_generation(
    store: rx.Store,
) -> None:
    reply_id = new_reply()
    script = " ".join(f"w{i}," for i in range(400))
    run = generate.start(reply_id=reply_id, script=script, delay=0.005, throttle_ms=0)
    until(lambda: len((reply(reply_id=reply_id) or {}).get("content", "")) > 20, timeout=20)
    delete_reply(reply_id=reply_id)
    with pytest.raises(rx.RunFailedError, match="was deleted while its text streamed in"):
        run.result(20)
    (generation,) = reply_generations(store, reply_id)
    assert generation["status"] == "failed", "a generation must not stay `streaming`"
    assert "was deleted" in generation["error"]


def test_text_the_column_cannot_hold_still_ends_the_row(store: rx.Store) -> None:
    """The final write fails on the text: the status and the reason are still stored."""
    row_id = new_row(kind="short")
    run = into.start(kind="short", row_id=row_id, script="this is far too long for it")
    with pytest.raises(rx.RunFailedError, match="IntegrityError"):
        run.result(20)
    row = row_of(kind="short", row_id=row_id)
    assert row is not None and row["status"] == "failed"
    assert len(row["content"]) <= 12
    (generation,) = generations(store)
    assert generation["status"] == "failed" and "IntegrityError" in generation["error"]


def test_a_generation_cut_off_by_its_store_closing_is_handed_over_not_left_streaming(
    url: str,
) -> None:
    """The store closes midway (as when a kernel shuts down): the row used to read
    `streaming` forever, or `failed`. It is handed over: back to `pending`, its
    generation `interrupted`, saying why; reopened, the run streams the reply again
    into the same row, to its end."""
    script = " ".join(f"w{i}," for i in range(150))
    store = rx.open(url)
    try:
        reply_id = new_reply()
        generate.start(reply_id=reply_id, script=script, delay=0.01, throttle_ms=0)
        until(lambda: reply(reply_id=reply_id)["content"], timeout=20)
        executor_for(store).stop("the kernel shut down", grace=5)
        stored = reply(reply_id=reply_id)
        assert stored["status"] == "pending" and script.startswith(stored["content"])
        (generation,) = reply_generations(store, reply_id)
        assert (generation["status"], generation["error"]) == (
            "interrupted",
            "the kernel shut down",
        )
    finally:
        store.close()
    store = rx.open(url)
    try:
        until(lambda: reply(reply_id=reply_id)["status"] == "done", timeout=30)
        assert reply(reply_id=reply_id)["content"] == script
        statuses = [g["status"] for g in reply_generations(store, reply_id)]
        assert statuses == ["interrupted", "done"]
    finally:
        store.close()


def test_a_retry_after_its_attempt_died_midway_ends_that_attempts_generation(
    store: rx.Store,
) -> None:
    """Attempt 1 died with its generation `streaming` (its process was killed); the
    retry's generation replaces its text and ends it, as failed."""
    reply_id = new_reply()

    @rx.mutation
    def died_midway(db: rx.Writer) -> None:
        db.get(Reply, reply_id).content = "half an ans"  # type: ignore[union-attr]
        db.get(Reply, reply_id).status = "streaming"  # type: ignore[union-attr]
        db.add(
            Generation(
                run_id="r1",
                target=Reply.__tablename__,
                row_key=json.dumps(reply_id),
                field="content",
                model="rxnb/scripted",
                attempt=1,
                started_at=time.time(),
            )
        )

    died_midway()
    ctx = ActionContext(store, "r1", attempt=2)
    text = llm.stream_into(
        ctx, Reply, reply_id, model="rxnb/scripted", messages=[], script="A whole answer.", delay=0
    )
    assert text == "A whole answer."
    assert reply(reply_id=reply_id) == {"content": "A whole answer.", "status": "done"}
    first, second = reply_generations(store, reply_id)
    assert (first["status"], first["replaced"]) == ("failed", "half an ans")
    assert "attempt 1 ended before it did" in first["error"]
    assert (second["attempt"], second["status"]) == (2, "done")


# -- options -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"chunking": "paragraph"}, "chunking='paragraph': use one of"),
        ({"throttle_ms": "fast"}, "throttle_ms='fast'; pass milliseconds"),
        ({"throttle_ms": -5}, "throttle_ms=-5; pass milliseconds"),
        ({"rate_limit_retries": -1}, "rate_limit_retries=-1; pass a whole number >= 0"),
    ],
)
def test_a_bad_option_fails_the_row_with_the_reason(
    store: rx.Store, options: dict[str, Any], message: str
) -> None:
    """A chat shows a failed message and why, not a pending one forever (and
    rate_limit_retries=-1 used to end in "AssertionError: unreachable")."""
    reply_id = new_reply()
    with pytest.raises(Exception) as caught:
        llm.stream_into(
            ActionContext(store, None),
            Reply,
            reply_id,
            model="rxnb/echo",
            messages=[{"role": "user", "content": "x"}],
            **options,
        )
    assert message in str(caught.value)
    assert reply(reply_id=reply_id) == {"content": "", "status": "failed"}
    (generation,) = reply_generations(store, reply_id)
    assert generation["status"] == "failed" and message in generation["error"]


def test_the_scripted_model_checks_its_options_before_streaming(store: rx.Store) -> None:
    ctx = ActionContext(store, None)
    cases: list[tuple[dict[str, Any], str]] = [
        ({"tool_calls": "weather"}, r"each of tool_calls= is .*not 'weather'"),
        (
            {"tool_calls": [{"name": "w", "arguments": {"when": object()}}]},
            r"arguments of tool call 'w' cannot be sent as JSON",
        ),
        ({"script": "x", "delay": "fast"}, r"delay= is seconds per token .* not 'fast'"),
        ({"script": "x", "delay": -1}, r"delay= is seconds per token"),
    ]
    for options, message in cases:
        with pytest.raises(Exception, match=message) as caught:
            list(llm.stream(ctx, model="rxnb/scripted", messages=[], **options))
        assert type(caught.value).__name__ == "BadRequestError", caught.value


def test_tool_call_arguments_given_as_json_text_are_sent_as_they_are(store: rx.Store) -> None:
    usage = llm.Usage()
    ctx = ActionContext(store, None)
    calls = [{"name": "w", "arguments": '{"city": "Paris"}'}, {"name": "v"}]
    text = "".join(
        llm.stream(ctx, model="rxnb/scripted", messages=[], tool_calls=calls, delay=0, usage=usage)
    )
    assert text == ""
    assert usage.tool_calls == [
        {"id": "call_0", "name": "w", "arguments": '{"city": "Paris"}'},
        {"id": "call_1", "name": "v", "arguments": "{}"},
    ]


def test_echo_answers_with_the_text_parts_of_a_multimodal_message(store: rx.Store) -> None:
    content = [
        {"type": "text", "text": "look at "},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
        {"type": "text", "text": "this"},
    ]
    ctx = ActionContext(store, None)
    messages = [{"role": "user", "content": content}]
    assert "".join(llm.stream(ctx, model="rxnb/echo", messages=messages, delay=0)) == (
        "look at this"
    )


# -- cancel and retry at odd times ---------------------------------------------------------


@rx.action
def http_into(ctx: rx.ActionContext, reply_id: int, api_base: str) -> str:
    return from_fake_server(ctx, reply_id, api_base, chunking="word")


def test_cancel_while_the_provider_sends_nothing_stops_at_once(store: rx.Store) -> None:
    """A model still thinking sends no chunk: Stop used to wait for the next one."""
    tokens = [f"t{i} " for i in range(20)]
    server = FakeOpenAI(plan=[Hang(tokens, after=3)])
    try:
        reply_id = new_reply()
        run = http_into.start(reply_id=reply_id, api_base=server.api_base)
        until(lambda: reply(reply_id=reply_id)["content"] == "t0 t1 t2 ", timeout=20)
        cancelled_at = time.monotonic()
        run.cancel()
        assert run.wait(5) == "cancelled"
        assert time.monotonic() - cancelled_at < 5
        assert reply(reply_id=reply_id) == {"content": "t0 t1 t2 ", "status": "cancelled"}
        assert [g["status"] for g in reply_generations(store, reply_id)] == ["cancelled"]
    finally:
        server.close()


def test_a_run_cancelled_before_its_stream_opens_sends_no_request(store: rx.Store) -> None:
    server = FakeOpenAI(plan=[Ok(["never "])])
    try:
        reply_id = new_reply()
        ctx = ActionContext(store, None)
        ctx._request_cancel("cancelled before it began")
        with pytest.raises(rx.Cancelled):
            llm.stream_into(
                ctx,
                Reply,
                reply_id,
                model="openai/fake",
                api_base=server.api_base,
                api_key="x",
                messages=[{"role": "user", "content": "go"}],
            )
        assert server.requests == 0
        assert reply(reply_id=reply_id) == {"content": "", "status": "cancelled"}
    finally:
        server.close()


def test_cancel_twice_and_after_the_end_only_report_the_status(store: rx.Store) -> None:
    reply_id = new_reply()
    script = " ".join(f"w{i}," for i in range(300))
    run = generate.start(reply_id=reply_id, script=script, delay=0.005, throttle_ms=0)
    until(lambda: reply(reply_id=reply_id)["content"], timeout=20)
    assert run.cancel() == "running"
    run.cancel()
    assert run.wait(10) == "cancelled"
    assert run.cancel() == "cancelled"
    done = generate.start(reply_id=new_reply(), script="short")
    assert done.result(20) == "short"
    assert done.cancel() == "succeeded"


def test_retrying_a_cancelled_generation_replaces_its_partial_text(store: rx.Store) -> None:
    """`rx.retry` (the runs view's Retry) of a cancelled reply used to append the whole
    new answer to the old partial one."""
    reply_id = new_reply()
    script = " ".join(f"w{i}," for i in range(300))
    run = generate.start(reply_id=reply_id, script=script, delay=0.003, throttle_ms=0)
    until(lambda: len(reply(reply_id=reply_id)["content"]) > 30, timeout=20)
    run.cancel()
    assert run.wait(10) == "cancelled"
    partial = reply(reply_id=reply_id)["content"]
    rx.retry(run.id)
    assert run.wait(30) == "succeeded"
    assert reply(reply_id=reply_id) == {"content": script, "status": "done"}
    first, second = reply_generations(store, reply_id)
    assert (first["status"], first["replaced"]) == ("cancelled", partial)
    assert (second["attempt"], second["offset"], second["status"]) == (2, 0, "done")


@rx.action(retries=1, backoff=0)
def reply_then_fail_once(ctx: rx.ActionContext, reply_id: int) -> str:
    text = llm.stream_into(
        ctx, Reply, reply_id, model="rxnb/scripted", messages=[], script="Answer, here.", delay=0
    )
    if ctx.attempt == 1:
        raise RuntimeError("the tool after the answer failed")
    return text


def test_a_retry_after_a_finished_generation_replaces_its_text(store: rx.Store) -> None:
    reply_id = new_reply()
    assert reply_then_fail_once.start(reply_id=reply_id).result(20) == "Answer, here."
    assert reply(reply_id=reply_id) == {"content": "Answer, here.", "status": "done"}
    first, second = reply_generations(store, reply_id)
    assert (first["attempt"], first["replaced"]) == (1, "Answer, here.")
    assert (second["attempt"], second["offset"]) == (2, 0)


@rx.action(retries=1, backoff=0)
def two_turns_then_fail_once(ctx: rx.ActionContext, reply_id: int) -> str:
    for script in ("First part. ", "Second part."):
        llm.stream_into(
            ctx, Reply, reply_id, model="rxnb/scripted", messages=[], script=script, delay=0
        )
    if ctx.attempt == 1:
        raise RuntimeError("failed after both turns")
    return reply(reply_id=reply_id)["content"]


def test_a_retry_of_a_run_with_two_generations_into_one_row_starts_it_afresh(
    store: rx.Store,
) -> None:
    reply_id = new_reply()
    result = two_turns_then_fail_once.start(reply_id=reply_id).result(20)
    assert result == "First part. Second part."
    replaced = [g["replaced"] for g in reply_generations(store, reply_id)]
    assert replaced == ["First part. ", "Second part.", None, None]


# -- usage -------------------------------------------------------------------------------


@rx.action
def two_replies(ctx: rx.ActionContext, first: int, second: int) -> None:
    for reply_id, script in ((first, "one two three"), (second, "four")):
        llm.stream_into(
            ctx, Reply, reply_id, model="rxnb/scripted", messages=[], script=script, delay=0
        )


def test_a_run_with_two_generations_adds_up_their_usage(store: rx.Store) -> None:
    run = two_replies.start(first=new_reply(), second=new_reply())
    run.result(20)
    usage = json.loads(run.run().usage or "{}")
    assert usage["completion_tokens"] == 4, "3 + 1 tokens, not the last generation's 1"
    assert usage["total_tokens"] == 4 and usage["estimated"] is False


# -- provider faults and secrets -----------------------------------------------------------

SECRET = "sk-proj-TOPSECRET-0123456789abcdef"


@rx.action
def keyed(ctx: rx.ActionContext, reply_id: int, api_base: str) -> str:
    return llm.stream_into(
        ctx,
        Reply,
        reply_id,
        model="openai/gpt-4o-mini",
        api_base=api_base,
        api_key=SECRET,
        messages=[{"role": "user", "content": "go"}],
        throttle_ms=0,
    )


class Unauthorized(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length", 0)))
        body = json.dumps({"error": {"message": "bad key", "code": "invalid_api_key"}}).encode()
        self.send_response(401)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Connection", "close")  # no idle socket left in litellm's pool
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def unauthorized() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Unauthorized)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def test_no_api_key_lands_in_the_store_or_the_runs_view(
    store: rx.Store, url: str, unauthorized: str
) -> None:
    server = FakeOpenAI(plan=[Ok(["fine "]), Cut(["x "] * 5, after=2)])
    try:
        for api_base in (server.api_base, server.api_base, unauthorized):
            keyed.start(reply_id=new_reply(), api_base=api_base).wait(30)
    finally:
        server.close()
    statuses = sorted(r["status"] for r in runs_table(limit=10))
    assert statuses == ["failed", "failed", "succeeded"]
    assert SECRET not in json.dumps(runs_table(limit=10))
    assert SECRET not in json.dumps(generations(store))
    store.close()
    path = Path(url.removeprefix("sqlite:///"))
    for file in path.parent.glob(path.name + "*"):
        assert SECRET.encode() not in file.read_bytes(), file


def test_a_provider_error_prints_nothing_into_the_cell(
    store: rx.Store, unauthorized: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """litellm's "Give Feedback / Get Help" banner would land in whichever cell runs."""
    run = keyed.start(reply_id=new_reply(), api_base=unauthorized)
    with pytest.raises(rx.RunFailedError, match="AuthenticationError"):
        run.result(30)
    out, err = capfd.readouterr()
    assert "Give Feedback" not in out + err


# -- follow -------------------------------------------------------------------------------


def test_follow_a_run_that_generates_nothing_a_missing_one_and_a_slow_one(
    store: rx.Store, capsys: pytest.CaptureFixture[str]
) -> None:
    @rx.action
    def plain(ctx: rx.ActionContext) -> int:
        return 1

    @rx.action
    def slow(ctx: rx.ActionContext) -> None:
        ctx.wait(30)

    assert plain.start().follow(timeout=20) == "succeeded"
    assert capsys.readouterr().out == ""
    with pytest.raises(rx.RunNotFoundError, match="no run has id 'nope'"):
        rx.RunHandle("nope", store).follow(timeout=1)
    waiting = slow.start()
    with pytest.raises(TimeoutError, match=r"still (queued|running) after 0\.2 s"):
        waiting.follow(timeout=0.2)
    waiting.cancel()
    assert waiting.wait(10) == "cancelled"

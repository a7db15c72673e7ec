"""Spans of an agent turn run in this process, read by an in-memory exporter: one
trace under the span current where the turn was started, with the GenAI attributes;
message text only with the opt-in. SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from otel_jobs import ANSWER, PROMPT, helper
from polling import until
from turn_tree import Seen, check_turn, from_sdk, named, turn_finished

import rxnb as rx
from rxnb.agents.hooks import TOOL_CALLING
from rxnb.execution.hooks import RUN_EXECUTING, RUN_INSERTING
from rxnb.workflows.hooks import STEP_RUNNING


@pytest.fixture
def exported() -> Iterator[tuple[TracerProvider, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "kernel"}))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield provider, exporter
    rx.tracing(False)
    provider.shutdown()


def spans_of(exporter: InMemorySpanExporter) -> list[Seen]:
    return [from_sdk(s) for s in exporter.get_finished_spans()]


@pytest.mark.parametrize("content", [False, True], ids=["no-content", "content"])
def test_an_agent_turn_is_one_trace_under_the_span_that_sent_it(
    store: rx.Store, exported: tuple[TracerProvider, InMemorySpanExporter], content: bool
) -> None:
    provider, exporter = exported
    rx.tracing(tracer_provider=provider, capture_content=content)
    with provider.get_tracer("test").start_as_current_span("cell"):
        run = helper.send("t-otel", PROMPT)
    assert run.result(timeout=30) == ANSWER
    spans = until(lambda: (s := spans_of(exporter)) and turn_finished(s) and s, timeout=10)
    (cell,) = named(spans, "cell")
    (call,) = [m for m in rx.agents.messages("t-otel") if m.role == "tool"]
    found = check_turn(spans, cell, "t-otel", str(call.call_id), content=content)
    assert found["turn"].attributes["rxnb.run.id"] == run.id
    assert not named(spans, "start rxnb.agents.turn[otel-helper]")  # a span was current


def test_a_run_started_with_no_span_current_has_a_start_span_as_its_root(
    store: rx.Store, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = exported
    rx.tracing(tracer_provider=provider)
    run = helper.send("t-root", PROMPT)
    assert run.result(timeout=30) == ANSWER
    spans = until(lambda: (s := spans_of(exporter)) and turn_finished(s) and s, timeout=10)
    (start,) = named(spans, "start rxnb.agents.turn[otel-helper]")
    assert start.parent_id == ""
    (turn,) = named(spans, "invoke_agent otel-helper")
    assert turn.parent_id == start.span_id
    assert {s.trace_id for s in spans} == {start.trace_id}


def test_a_failing_step_is_an_error_span_and_each_start_of_a_run_is_a_span(
    store: rx.Store, exported: tuple[TracerProvider, InMemorySpanExporter]
) -> None:
    provider, exporter = exported
    rx.tracing(tracer_provider=provider)
    attempts = []

    def flaky() -> str:
        attempts.append(1)
        if len(attempts) == 1:
            raise ValueError("not yet")
        return "ok"

    @rx.workflow
    def twice(ctx: rx.WorkflowContext) -> str:
        value: str = ctx.step(flaky, retries=1, backoff=0.01, name="flaky")
        ctx.sleep(0.05)  # parks: the run is started again when due
        return value

    with provider.get_tracer("test").start_as_current_span("cell"):
        run = twice.start()
    assert run.result(timeout=30) == "ok"
    until(lambda: len(named(spans_of(exporter), "workflow " + twice.name)) == 2, timeout=10)
    spans = spans_of(exporter)
    (cell,) = named(spans, "cell")
    starts = named(spans, "workflow " + twice.name)
    assert [s.parent_id for s in starts] == [cell.span_id] * 2  # siblings, one trace
    assert [s.attributes["rxnb.run.outcome"] for s in starts] == ["parked", "returned"]
    assert starts[0].attributes["rxnb.run.parked"] == "sleeping"
    steps = named(spans, "step flaky")
    assert [s.attributes["rxnb.step.attempt"] for s in steps] == [1, 2]
    assert {s.parent_id for s in steps} == {starts[0].span_id}
    failed = exporter.get_finished_spans()[[s.name for s in spans].index("step flaky")]
    assert failed.status.status_code.name == "ERROR"
    assert failed.attributes is not None and failed.attributes["error.type"] == "ValueError"


def test_tracing_off_leaves_no_hook_and_needs_the_extra_only_when_asked(
    exported: tuple[TracerProvider, InMemorySpanExporter],
) -> None:
    provider, _ = exported
    hooks = [RUN_INSERTING, RUN_EXECUTING, STEP_RUNNING, TOOL_CALLING]
    rx.tracing(tracer_provider=provider)
    assert all(len(h) == 1 for h in hooks)
    rx.tracing(tracer_provider=provider)  # again: replaces, does not add
    assert all(len(h) == 1 for h in hooks)
    rx.tracing(False)
    assert not any(hooks)
    with pytest.raises(rx.RxnbError, match=r"rx.tracing\('yes'\): pass True or False"):
        rx.tracing("yes")  # type: ignore[arg-type]

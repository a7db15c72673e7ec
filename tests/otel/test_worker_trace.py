"""An agent turn sent from this process (the kernel) and run by an `rxnb worker`
subprocess is one trace: the kernel's span, read by an in-memory exporter here, is
the parent of the worker's run span, and the worker's spans reach an OTLP/HTTP
collector on 127.0.0.1 through the standard variables alone. Message text only when
the worker's environment opts in. A workflow whose worker is killed (kill -9) and
resumed by another stays in its trace. SQLite and PostgreSQL."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from collector import Collector, Received
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from otel_jobs import ANSWER, PROMPT, helper, two_steps
from polling import until
from run_procs import Processes
from turn_tree import Seen, check_turn, from_sdk, named, turn_finished

import rxnb as rx


@pytest.fixture
def collector() -> Iterator[Collector]:
    c = Collector()
    yield c
    c.close()


@pytest.fixture
def queuing(url: str) -> Iterator[rx.Store]:
    """A store this process only queues runs in: the worker runs them."""
    os.environ["RXNB_EXECUTE"] = "0"
    try:
        store = rx.open(url)
    finally:
        del os.environ["RXNB_EXECUTE"]
    yield store
    store.close()


def seen(span: Received) -> Seen:
    return Seen(
        span.name, span.trace_id, span.span_id, span.parent_id, span.attributes, span.service
    )


@pytest.mark.parametrize("content", [False, True], ids=["no-content", "content"])
def test_a_turn_run_by_a_worker_is_one_trace_with_the_kernel_span(
    url: str, queuing: rx.Store, procs: Processes, collector: Collector, content: bool
) -> None:
    memory = InMemorySpanExporter()
    kernel = TracerProvider(resource=Resource.create({"service.name": "kernel"}))
    kernel.add_span_processor(SimpleSpanProcessor(memory))
    kernel.add_span_processor(
        SimpleSpanProcessor(OTLPSpanExporter(endpoint=f"{collector.endpoint}/v1/traces"))
    )
    rx.tracing(tracer_provider=kernel)  # no opt-in here: the worker's variables decide
    try:
        procs.env.update(
            OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
            OTEL_SERVICE_NAME="rxnb-worker",
            OTEL_BSP_SCHEDULE_DELAY="50",
        )
        if content:
            procs.env["OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT"] = "true"
        worker = procs.worker(url, "otel_jobs")
        with kernel.get_tracer("test").start_as_current_span("cell"):
            run = helper.send("t-worker", PROMPT)
        assert run.result(timeout=90) == ANSWER, procs.output(worker)

        (cell,) = [from_sdk(s) for s in memory.get_finished_spans() if s.name == "cell"]
        received = until(
            lambda: (s := [seen(r) for r in collector.spans()]) and turn_finished(s) and s,
            timeout=30,
        )
    finally:
        rx.tracing(False)
        kernel.shutdown()
    (call,) = [m for m in rx.agents.messages("t-worker") if m.role == "tool"]
    check_turn(received, cell, "t-worker", str(call.call_id), content=content)
    assert named(received, "cell") == [cell]  # the kernel's span reached the collector too
    worker_spans = [s for s in received if s.name != "cell"]
    assert {s.service for s in worker_spans} == {"rxnb-worker"}, "run by the worker"
    (turn,) = [r for r in collector.spans() if r.name == "invoke_agent otel-helper"]
    assert turn.kind == SpanKind.CONSUMER.value + 1  # OTLP's enum counts from UNSPECIFIED
    assert turn.attributes["rxnb.run.id"] == run.id


def test_a_workflow_resumed_after_its_worker_was_killed_stays_in_the_trace(
    url: str, queuing: rx.Store, procs: Processes, collector: Collector, tmp_path: Path
) -> None:
    memory = InMemorySpanExporter()
    kernel = TracerProvider()
    kernel.add_span_processor(SimpleSpanProcessor(memory))
    rx.tracing(tracer_provider=kernel)
    procs.env.update(
        OTEL_EXPORTER_OTLP_ENDPOINT=collector.endpoint,
        OTEL_SERVICE_NAME="rxnb-worker",
        OTEL_BSP_SCHEDULE_DELAY="50",
    )
    gate = tmp_path / "gate"
    try:
        victim = procs.worker(url, "otel_jobs")
        with kernel.get_tracer("test").start_as_current_span("cell"):
            run = two_steps.start(gate=str(gate))
        until(gate.exists, timeout=60)
        # the victim's spans that ended (step one) reach the collector before the kill
        until(lambda: any(s.name == "step one" for s in collector.spans()), timeout=30)
        victim.kill()  # SIGKILL: its run span and step two never end
        victim.wait(10)
        procs.worker(url, "otel_jobs")
        assert run.result(timeout=90) == "one+two"
        # The run's span ends after its last step's, and may come in a later batch.
        ended = {"step two", "workflow otel_jobs.two_steps"}
        spans = until(
            lambda: (s := collector.spans()) and ended <= {x.name for x in s} and s,
            timeout=30,
        )
        (cell,) = [from_sdk(s) for s in memory.get_finished_spans() if s.name == "cell"]
    finally:
        rx.tracing(False)
        kernel.shutdown()
    assert {s.trace_id for s in spans} == {cell.trace_id}, "one trace across both workers"
    (resumed,) = [s for s in spans if s.name == "workflow otel_jobs.two_steps"]
    assert resumed.parent_id == cell.span_id  # as the killed start's span was
    assert resumed.attributes["rxnb.run.attempt"] == 2
    assert resumed.attributes["rxnb.run.outcome"] == "returned"
    (one,) = [s for s in spans if s.name == "step one"]  # ran once: replayed, not again
    (two,) = [s for s in spans if s.name == "step two"]
    assert one.parent_id != resumed.span_id  # the killed start's span, never ended
    assert two.parent_id == resumed.span_id

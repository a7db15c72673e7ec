"""OpenTelemetry traces of runs, workflow steps, generations and tool calls, with the
`otel` extra (`pip install 'rxnb[otel]'`), following the OpenTelemetry GenAI semantic
conventions, so that Langfuse, Phoenix, Jaeger or any OTLP collector can read them.

Switching it on:

- set the standard variables (`OTEL_EXPORTER_OTLP_ENDPOINT=http://collector:4318`, or
  `OTEL_TRACES_EXPORTER=console`): every process that imports rxnb (a kernel, an
  `rxnb worker`) then traces, exporting OTLP/HTTP as the variables say; or
- set up a TracerProvider yourself (Phoenix's `register()`, Langfuse's client, your
  own) and call `rx.tracing()`, or pass it: `rx.tracing(tracer_provider=provider)`.

Nothing is imported, recorded or exported without one of those; without the extra,
`import rxnb` does not look for opentelemetry. `rx.tracing(False)` stops.

The spans of an agent turn started in a kernel and run by a worker, one trace:

    cell (your span, current where the turn was started: `agent.send`)
    └─ invoke_agent helper          the run (one span per start of it: a resume after
       │                            a crash, a sleep or a hand-over is another span,
       │                            in whichever process runs it, in the same trace)
       ├─ step model                each attempt of a workflow step
       │  └─ chat rxnb/scripted     each generation: model, parameters, token usage
       ├─ step run_call
       │  └─ execute_tool weather   each tool call run in the turn's process
       └─ step model
          └─ chat rxnb/scripted

A step replayed from the journal ran before: it has no span again. Journaled
queries, mutations, sleeps and waits are not spans; a tool run as a child run (an
action, a workflow, another agent) is that run's span, a child of the turn's.

How it is parented across processes: starting a run (`start`, `db.schedule` in a
mutation, `agent.send`, a child run, a cron) records the W3C `traceparent` of the
span current there in the run's row (`Run.trace`); with no span current, a root span
`start <function>` (kind producer, ended at once) stands for the start. The process
that runs it (this kernel, another, an `rxnb worker`) starts the run's span as a
child of that context, so every start of a run is in the trace it was started in.

Attributes (GenAI conventions): an agent turn's span is `invoke_agent <agent>`
(`gen_ai.operation.name` `invoke_agent`, `gen_ai.agent.name`, and the thread as
`gen_ai.conversation.id`); a generation's is `chat <model>` (kind client;
`gen_ai.request.model`, `gen_ai.provider.name`, `gen_ai.request.*` parameters,
`gen_ai.usage.input_tokens` / `output_tokens`, `gen_ai.response.finish_reasons` when
the model asked for tools, and the conversation and agent in a turn); a tool call's is
`execute_tool <tool>` (`gen_ai.tool.name`, `gen_ai.tool.call.id`, `gen_ai.tool.type`).
rxnb's own: `rxnb.run.id`, `.function`, `.attempt`, `.kind`, `.outcome`
(`returned`, `parked`, `cancelled`, `raised`, `final`), `rxnb.step.seq`/`.name`/
`.attempt`, `rxnb.usage.cost_usd`, `rxnb.cached`, `rxnb.time_to_first_token_s`. A
failure sets the span's status to error and `error.type`.

Message text: none by default. With
`OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true` (the variable of the GenAI
instrumentations) or `rx.tracing(capture_content=True)`, a generation's span carries
`gen_ai.input.messages` and `gen_ai.output.messages` (JSON), and a tool call's
`gen_ai.tool.call.arguments` and `gen_ai.tool.call.result`.

The environment's rules are in `rxnb.otel._setup`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

from rxnb.errors import RxnbError
from rxnb.otel import _setup

log = logging.getLogger("rxnb.otel")

_lock = threading.Lock()
_uninstall: Callable[[], None] | None = None


def tracing(
    enabled: bool = True,
    *,
    tracer_provider: Any = None,
    capture_content: bool | None = None,
) -> None:
    """Make spans of this process's runs, steps, generations and tool calls (see
    `rxnb.otel`), through `tracer_provider`: by default the one the program set up,
    else one made from the `OTEL_*` variables, else the global proxy (spans flow once
    the program sets a provider). `capture_content`: record message text (by default
    `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT`). `tracing(False)` stops;
    calling it again replaces the settings."""
    global _uninstall
    if not isinstance(enabled, bool):
        raise RxnbError(f"rx.tracing({enabled!r}): pass True or False")
    with _lock:
        if _uninstall is not None:
            _uninstall()
            _uninstall = None
        if not enabled:
            return
        if not _setup.installed():
            raise RxnbError(_setup.EXTRA_MISSING)
        from opentelemetry import trace

        from rxnb.otel._spans import Spans

        provider = tracer_provider or _setup.global_provider()
        if provider is None and _setup.configured():
            provider = _setup.provider_from_env()
        tracer = (provider or trace.get_tracer_provider()).get_tracer("rxnb")
        capture = _setup.capture_from_env() if capture_content is None else capture_content
        _uninstall = Spans(tracer, bool(capture)).install()


def enabled() -> bool:
    """Whether this process makes spans."""
    return _uninstall is not None


def _from_environment() -> None:
    """At `import rxnb`: trace when the environment says so and the extra is here."""
    if not _setup.configured() or not _setup.installed():
        return
    try:
        tracing()
    except Exception as exc:  # a misconfiguration must not break `import rxnb`
        log.warning("rxnb: tracing is off: %s", exc)


_from_environment()

__all__ = ["enabled", "tracing"]

"""Where rxnb's spans go: the standard OpenTelemetry settings, read from the
environment, and the opt-in for prompt and completion text.

Rules:

1. Tracing is configured when `OTEL_EXPORTER_OTLP_ENDPOINT`,
   `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_TRACES_EXPORTER` (other than `none`)
   is set, and `OTEL_SDK_DISABLED` is not `true`. Nothing of this module imports
   opentelemetry before that is known.
2. A TracerProvider set up by the program (Langfuse, Phoenix's `register()`, the
   user's own `trace.set_tracer_provider`) is used as it is: it exports where its
   owner said.
3. Otherwise rxnb makes one from the environment (`OTEL_TRACES_EXPORTER`: `otlp`, the
   default, and `console`; `OTEL_EXPORTER_OTLP_(TRACES_)PROTOCOL`: `http/protobuf`, the
   default, or `grpc` with its exporter installed; endpoint, headers, batching and
   resource from their usual variables; `service.name` is `rxnb` unless
   `OTEL_SERVICE_NAME` or `OTEL_RESOURCE_ATTRIBUTES` names one) and sets it as the
   global provider, so that the program's own spans go to the same place.
4. Prompt and completion text (and tool arguments and results) are recorded only
   when `OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT` is `true` (the GenAI
   instrumentations' variable; `span_only` and `span_and_event` count as true), or
   `rx.tracing(capture_content=True)`.
"""

from __future__ import annotations

import importlib.util
import os
from typing import Any

from rxnb.errors import RxnbError

EXTRA_MISSING = (
    "rx.tracing needs the otel extra (opentelemetry-sdk and its OTLP exporter): "
    "pip install 'rxnb[otel]'"
)

_TRUE = {"1", "true", "yes", "on", "span_only", "span_and_event"}


def configured() -> bool:
    """Rule 1: whether the environment asks for traces to be exported."""
    env = os.environ
    if env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporters = env.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporters == "none":
        return False
    return bool(
        exporters
        or env.get("OTEL_EXPORTER_OTLP_ENDPOINT")
        or env.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
    )


def installed() -> bool:
    """Whether the otel extra is installed (looked up, not imported)."""
    try:
        return importlib.util.find_spec("opentelemetry.sdk.trace") is not None
    except ModuleNotFoundError:
        return False


def capture_from_env() -> bool:
    """Rule 4: whether the environment opts in to recording message text."""
    value = os.environ.get("OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT", "")
    return value.strip().lower() in _TRUE


def global_provider() -> Any:
    """Rule 2: the program's TracerProvider, or None while it has set none."""
    from opentelemetry import trace

    provider = trace.get_tracer_provider()
    if isinstance(provider, trace.ProxyTracerProvider):
        return None
    return provider


def provider_from_env() -> Any:
    """Rule 3: a TracerProvider exporting as the environment says, set as the global
    one."""
    from opentelemetry import trace
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import (
        BatchSpanProcessor,
        ConsoleSpanExporter,
        SimpleSpanProcessor,
    )

    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "rxnb"}))
    names = os.environ.get("OTEL_TRACES_EXPORTER", "otlp") or "otlp"
    for name in (n.strip().lower() for n in names.split(",") if n.strip()):
        if name == "otlp":
            provider.add_span_processor(BatchSpanProcessor(_otlp_exporter()))
        elif name == "console":
            provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        elif name != "none":
            raise RxnbError(
                f"OTEL_TRACES_EXPORTER names {name!r}, which rxnb cannot make; use otlp or "
                "console, or set up a TracerProvider yourself and call rx.tracing()"
            )
    trace.set_tracer_provider(provider)
    return provider


def _otlp_exporter() -> Any:
    protocol = (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or "http/protobuf"
    ).strip()
    if protocol == "grpc":
        try:
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (  # type: ignore[import-not-found, unused-ignore]
                OTLPSpanExporter as GrpcExporter,
            )
        except ImportError:
            raise RxnbError(
                "OTEL_EXPORTER_OTLP_PROTOCOL=grpc needs opentelemetry-exporter-otlp-proto-grpc: "
                "pip install it, or use http/protobuf (the default)"
            ) from None
        return GrpcExporter()
    if protocol != "http/protobuf":
        raise RxnbError(
            f"OTEL_EXPORTER_OTLP_PROTOCOL={protocol!r}: rxnb exports http/protobuf (the "
            "default) or grpc"
        )
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    return OTLPSpanExporter()

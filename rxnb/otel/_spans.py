"""`Spans`: the hooks of the runs, workflows and agents layers, and the llm layer's
generation observer, made into OpenTelemetry spans (see `rxnb.otel` for the tree).

Imported only once tracing is on: this module imports opentelemetry.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Callable
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Span, SpanKind, Status, StatusCode, Tracer
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from sqlmodel import select

from rxnb.agents.hooks import TOOL_CALLING, ToolEnd
from rxnb.execution import ActionContext, Failure, Run, one_line
from rxnb.execution.hooks import RUN_EXECUTING, RUN_INSERTING, RunEnd
from rxnb.llm import GenerationEvent, load_litellm, on_generation
from rxnb.otel._content import input_messages, output_messages
from rxnb.workflows import WorkflowContext
from rxnb.workflows.hooks import STEP_RUNNING, StepEnd

log = logging.getLogger("rxnb.otel")

_PROPAGATOR = TraceContextTextMapPropagator()
_AGENT_TURN = re.compile(r"^rxnb\.agents\.turn\[(?P<agent>.+)\]$")
_REQUEST = {  # litellm's parameter: the GenAI attribute it is
    "temperature": "gen_ai.request.temperature",
    "top_p": "gen_ai.request.top_p",
    "top_k": "gen_ai.request.top_k",
    "max_tokens": "gen_ai.request.max_tokens",
    "max_completion_tokens": "gen_ai.request.max_tokens",
    "frequency_penalty": "gen_ai.request.frequency_penalty",
    "presence_penalty": "gen_ai.request.presence_penalty",
    "seed": "gen_ai.request.seed",
    "stop": "gen_ai.request.stop_sequences",
    "n": "gen_ai.request.choice.count",
}


class _Running:
    """A run executing in this process: its span, and what its children's spans say
    of it (the agent, the thread as the conversation)."""

    __slots__ = ("agent", "conversation", "span")

    def __init__(self, span: Span, agent: str | None, conversation: str | None) -> None:
        self.span, self.agent, self.conversation = span, agent, conversation


def traceparent(context: otel_context.Context) -> str | None:
    """The W3C `traceparent` of the span current in `context`."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier, context=context)
    return carrier.get("traceparent")


class Spans:
    """Makes spans of what rxnb does in this process. Responsibilities:

    1. a run inserted records the span current where it was started in `Run.trace`
       (with none current, a `start <function>` span, ended at once, as the root);
    2. each start of a run (its first, a retry, a resume after a crash, a sleep or a
       hand-over) is a span, child of the span in `Run.trace`, in whichever process
       runs it, current in its thread while its body runs;
    3. each attempt of a workflow step is a span, child of its run's span, current
       while the step runs (in the run's thread or a `ctx.parallel` thread);
    4. each generation (`rx.llm`) is a `chat` span, child of the span current where
       it was made (its step's, its run's), with its model, parameters and usage;
    5. each tool call an agent runs in-process is an `execute_tool` span, child of its
       step's;
    6. message text, tool arguments and results only with `capture_content`.
    """

    def __init__(self, tracer: Tracer, capture_content: bool) -> None:
        self.tracer = tracer
        self.capture_content = capture_content
        self._runs: dict[str, _Running] = {}
        self._lock = threading.Lock()
        self._local = threading.local()
        """`.running`: the `_Running` of the step running on this thread."""

    def install(self) -> Callable[[], None]:
        """Register the hooks; the function that removes them."""
        RUN_INSERTING.append(self.run_inserting)
        RUN_EXECUTING.append(self.run_executing)
        STEP_RUNNING.append(self.step_running)
        TOOL_CALLING.append(self.tool_calling)
        stop_observing = on_generation(self.generation)

        def uninstall() -> None:
            for hooks, hook in (
                (RUN_INSERTING, self.run_inserting),
                (RUN_EXECUTING, self.run_executing),
                (STEP_RUNNING, self.step_running),
                (TOOL_CALLING, self.tool_calling),
            ):
                if hook in hooks:
                    hooks.remove(hook)  # type: ignore[arg-type]
            stop_observing()

        return uninstall

    # -- rule 1 ------------------------------------------------------------------------

    def run_inserting(self, run: Run) -> None:
        context = otel_context.get_current()
        if not trace.get_current_span(context).get_span_context().is_valid:
            root = self.tracer.start_span(
                f"start {run.function}",
                context=otel_context.Context(),
                kind=SpanKind.PRODUCER,
                attributes={"rxnb.run.id": run.id, "rxnb.run.function": run.function},
            )
            root.end()
            context = trace.set_span_in_context(root)
        run.trace = traceparent(context)

    # -- rule 2 ------------------------------------------------------------------------

    def run_executing(self, ctx: ActionContext, function: str, args: dict[str, Any]) -> RunEnd:
        run_id = ctx.run_id
        recorded = None
        if run_id is not None:
            recorded = ctx.store.database.read(
                lambda db: db.exec(select(Run.trace).where(Run.id == run_id)).first()
            )[0]
        parent = _PROPAGATOR.extract({"traceparent": recorded}) if recorded else None
        attributes: dict[str, Any] = {
            "rxnb.run.id": run_id or "",
            "rxnb.run.function": function,
            "rxnb.run.attempt": ctx.attempt,
            "rxnb.run.kind": "workflow" if isinstance(ctx, WorkflowContext) else "action",
        }
        turn = _AGENT_TURN.match(function)
        agent = conversation = None
        if turn is not None:
            agent = turn.group("agent")
            conversation = str(args.get("thread_id")) if args.get("thread_id") else None
            attributes["gen_ai.operation.name"] = "invoke_agent"
            attributes["gen_ai.agent.name"] = agent
            if conversation is not None:
                attributes["gen_ai.conversation.id"] = conversation
            name = f"invoke_agent {agent}"
        else:
            name = f"{attributes['rxnb.run.kind']} {function}"
        span = self.tracer.start_span(
            name,
            context=parent or otel_context.Context(),  # never the pool thread's leftovers
            kind=SpanKind.CONSUMER if recorded else SpanKind.INTERNAL,
            attributes=attributes,
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        if run_id is not None:
            with self._lock:
                self._runs[run_id] = _Running(span, agent, conversation)

        def end(ended: tuple[str, Any]) -> None:
            otel_context.detach(token)
            if run_id is not None:
                with self._lock:
                    self._runs.pop(run_id, None)
            kind, detail = ended
            span.set_attribute("rxnb.run.outcome", kind)
            if kind == "parked":
                span.set_attribute("rxnb.run.parked", str(detail[0]))
            if ctx.handing_over is not None:
                span.set_attribute("rxnb.run.handed_over", ctx.handing_over)
            if kind in ("raised", "final") and isinstance(detail, Failure):
                _failed(span, detail.line)
            span.end()

        return end

    # -- rule 3 ------------------------------------------------------------------------

    def step_running(self, ctx: ActionContext, seq: int, name: str, attempt: int) -> StepEnd:
        running = self._running(ctx)
        parent = trace.set_span_in_context(running.span) if running is not None else None
        span = self.tracer.start_span(
            f"step {name}",
            context=parent,
            attributes={
                "rxnb.run.id": ctx.run_id or "",
                "rxnb.step.seq": seq,
                "rxnb.step.name": name,
                "rxnb.step.attempt": attempt,
            },
        )
        token = otel_context.attach(trace.set_span_in_context(span))
        local = self._local
        outer, local.running = getattr(local, "running", None), running

        def end(raised: BaseException | None) -> None:
            otel_context.detach(token)
            local.running = outer
            if isinstance(raised, Exception):
                _failed(span, f"{type(raised).__name__}: {raised}")
            elif raised is not None:  # a cancel, a hand-over: not the step's failure
                span.set_attribute("rxnb.step.stopped", type(raised).__name__)
            span.end()

        return end

    # -- rule 5 ------------------------------------------------------------------------

    def tool_calling(self, agent: str, call: dict[str, str]) -> ToolEnd:
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "execute_tool",
            "gen_ai.tool.name": call.get("name", ""),
            "gen_ai.tool.call.id": call.get("call_id", ""),
            "gen_ai.tool.type": "function",
            "gen_ai.agent.name": agent,
        }
        running = getattr(self._local, "running", None)
        if running is not None and running.conversation is not None:
            attributes["gen_ai.conversation.id"] = running.conversation
        if self.capture_content:
            attributes["gen_ai.tool.call.arguments"] = call.get("arguments", "")
        span = self.tracer.start_span(f"execute_tool {call.get('name', '')}", attributes=attributes)
        token = otel_context.attach(trace.set_span_in_context(span))

        def end(result: dict[str, Any] | None, raised: BaseException | None) -> None:
            otel_context.detach(token)
            if result is not None:
                if self.capture_content:
                    span.set_attribute("gen_ai.tool.call.result", str(result.get("text", "")))
                if result.get("status") not in ("done", None):
                    span.set_attribute("rxnb.tool.status", str(result.get("status")))
                    _failed(span, str(result.get("error") or "ToolInputError: see the call"))
            elif isinstance(raised, Exception):
                _failed(span, f"{type(raised).__name__}: {raised}")
            span.end()

        return end

    # -- rule 4 ------------------------------------------------------------------------

    def generation(self, event: GenerationEvent) -> None:
        ctx = event.ctx
        running = self._running(ctx)
        parent = None  # the span current here: the step's, or the run's
        if not trace.get_current_span().get_span_context().is_valid and running is not None:
            parent = trace.set_span_in_context(running.span)
        usage = event.usage
        attributes: dict[str, Any] = {
            "gen_ai.operation.name": "chat",
            "gen_ai.request.model": event.model,
            "gen_ai.provider.name": _provider(event.model),
            "rxnb.cached": event.cached,
        }
        if ctx.run_id is not None:
            attributes["rxnb.run.id"] = ctx.run_id
        if running is not None and running.conversation is not None:
            attributes["gen_ai.conversation.id"] = running.conversation
        if running is not None and running.agent is not None:
            attributes["gen_ai.agent.name"] = running.agent
        for name, value in event.parameters.items():
            key = _REQUEST.get(name)
            if key is not None and value is not None:
                attributes[key] = (
                    [value] if key.endswith("sequences") and isinstance(value, str) else value
                )
        if usage.prompt_tokens is not None:
            attributes["gen_ai.usage.input_tokens"] = usage.prompt_tokens
        if usage.completion_tokens is not None:
            attributes["gen_ai.usage.output_tokens"] = usage.completion_tokens
        if usage.cost is not None:
            attributes["rxnb.usage.cost_usd"] = usage.cost
        if event.first_token_at is not None:
            attributes["rxnb.time_to_first_token_s"] = event.first_token_at - event.started_at
        calls = usage.tool_calls
        finish = "tool_calls" if calls and event.error is None else None
        if finish is not None:  # known only when the model asked for tools
            attributes["gen_ai.response.finish_reasons"] = [finish]
        if self.capture_content:
            attributes["gen_ai.input.messages"] = input_messages(event.messages)
            attributes["gen_ai.output.messages"] = output_messages(usage.text, calls, finish)
        span = self.tracer.start_span(
            f"chat {event.model}",
            context=parent,
            kind=SpanKind.CLIENT,
            attributes={k: v for k, v in attributes.items() if v is not None},
            start_time=int(event.started_at * 1e9),
        )
        if event.error is not None:
            _failed(span, f"{type(event.error).__name__}: {event.error}")
        span.end(end_time=int(event.ended_at * 1e9))

    def _running(self, ctx: ActionContext) -> _Running | None:
        run_id = getattr(ctx, "run_id", None)
        if run_id is None:
            return None
        with self._lock:
            return self._runs.get(run_id)


def _failed(span: Span, line: str) -> None:
    """Mark `span` failed with `line` (`Type: message`); `error.type` is the type."""
    line = one_line(line)
    kind = line.split(":", 1)[0].strip() if ":" in line else ""
    span.set_attribute("error.type", kind if kind.isidentifier() else "_OTHER")
    span.set_status(Status(StatusCode.ERROR, line))


def _provider(model: str) -> str | None:
    """`gen_ai.provider.name`: the provider litellm sends `model` to."""
    try:
        provider = load_litellm().get_llm_provider(model)[1]
    except Exception:
        provider = model.split("/", 1)[0] if "/" in model else None
    return str(provider) if provider else None

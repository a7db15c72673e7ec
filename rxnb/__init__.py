"""rxnb: reactive, durable Jupyter notebooks for AI work.

    import rxnb as rx
    store = rx.open()

    @rx.query
    def messages(db: rx.Reader, thread_id: str) -> list[Message]: ...

    @rx.mutation
    def send(db: rx.Writer, thread_id: str, text: str) -> int: ...

    store.subscribe(messages, {"thread_id": "t1"}, print)
    send(thread_id="t1", text="hi")      # the subscriber sees the new result

Only the names in `__all__` are public.
"""

from typing import Any as _Any

from rxnb.errors import (
    AgentError,
    ArgumentError,
    Cancelled,
    FunctionError,
    NonDeterminismError,
    NonRetryableError,
    NoStoreError,
    ReadOnlyError,
    ResultError,
    RunCancelledError,
    RunError,
    RunFailedError,
    RunNotFoundError,
    RxnbError,
    SchemaMismatchError,
    StepError,
    StoreBusyError,
    StoreClosedError,
    StoreError,
    StoreOpenError,
    StoreUnavailableError,
    WorkflowError,
)
from rxnb.execution import (
    Action,
    ActionContext,
    File,
    FileRef,
    Queue,
    Run,
    RunHandle,
    RunStatus,
    action,
    cancel,
    cron,
    crons,
    files,
    pause,
    prune,
    remove_cron,
    resume,
    retention,
    retry,
    run_after,
    run_at,
    signal,
)
from rxnb.execution import set_follower as _set_follower
from rxnb.functions import Mutation, Query, mutation, query
from rxnb.functions import set_live_view as _set_live_view
from rxnb.reactive import Store, Subscription, current_store, open
from rxnb.store import DataProblem, Hit, Page, Reader, Vector, Writer
from rxnb.workflows import Workflow, WorkflowContext, fork, restart, send_event, workflow

from rxnb.agents import Agent, tool  # isort: skip
from rxnb.agents import set_chat_view as _set_chat_view  # isort: skip

# Every process ends the generations of runs that end without them (a dead owner, a
# closed store), not only those that have streamed: a hook, installed by this import.
# litellm itself is imported on the first generation.
from rxnb.llm import end_generations as _end_generations  # noqa: F401  isort: skip
from rxnb.llm import budget  # isort: skip
from rxnb.otel import tracing  # isort: skip  (spans, with the otel extra)


__version__ = "0.1.0"


def __getattr__(name: str) -> object:
    """`rx.widgets`, `rx.llm` and `rx.evals` import their layers on first use."""
    if name == "widgets":
        import rxnb.widgets

        return rxnb.widgets
    if name == "llm":  # litellm itself loads on the first generation
        import rxnb.llm

        return rxnb.llm
    if name == "evals":
        import rxnb.evals

        return rxnb.evals
    raise AttributeError(f"module 'rxnb' has no attribute {name!r}")


def _live_view(query: Query[..., _Any], args: dict[str, _Any]) -> _Any:
    from rxnb.widgets import live

    return live(query, args)


def _follow(handle: RunHandle, timeout: float | None) -> str | None:
    from rxnb.widgets import follow

    return follow(handle, timeout)


def _agent_chat(agent: Agent, thread_id: str, **options: _Any) -> _Any:
    from rxnb.widgets import agent_chat

    return agent_chat(agent, thread_id, **options)


# The layers before widgets reach them through these: `query.live()`, `run.follow()`,
# `agent.chat()`. The widgets layer (IPython, anywidget) is imported on first use.
_set_live_view(_live_view)
_set_follower(_follow)
_set_chat_view(_agent_chat)

from rxnb.llm import set_comparison_view as _set_comparison_view  # noqa: E402  isort: skip


def _comparison_view(comparison: _Any) -> _Any:
    from rxnb.widgets import comparison_view

    return comparison_view(comparison)


_set_comparison_view(_comparison_view)  # `rx.llm.compare(...)` shows as this widget


def chat(thread_id: object, **options: _Any) -> _Any:
    """A live chat widget of one thread: `rx.chat("t1", send=send, messages=messages)`.

    Messages stream in as they are stored, the input calls `send`, the abort button
    cancels the generation of a message (see `rxnb.widgets.chat` for the options).
    """
    from rxnb.widgets import chat as chat_widget

    return chat_widget(thread_id, **options)


def runs(limit: int = 100) -> object:
    """A live table of the store's runs (all processes), with Cancel and Retry buttons."""
    from rxnb.widgets import runs as runs_widget

    return runs_widget(limit)


def load_ipython_extension(shell: object) -> None:
    """`%load_ext rxnb` (see `rxnb.ipython`)."""
    from rxnb.ipython import load_ipython_extension as load

    load(shell)


__all__ = [
    "Action",
    "ActionContext",
    "Agent",
    "AgentError",
    "ArgumentError",
    "Cancelled",
    "DataProblem",
    "File",
    "FileRef",
    "FunctionError",
    "Hit",
    "Mutation",
    "NoStoreError",
    "NonDeterminismError",
    "NonRetryableError",
    "Page",
    "Query",
    "Queue",
    "ReadOnlyError",
    "Reader",
    "ResultError",
    "Run",
    "RunCancelledError",
    "RunError",
    "RunFailedError",
    "RunHandle",
    "RunNotFoundError",
    "RunStatus",
    "RxnbError",
    "SchemaMismatchError",
    "StepError",
    "Store",
    "StoreBusyError",
    "StoreClosedError",
    "StoreError",
    "StoreOpenError",
    "StoreUnavailableError",
    "Subscription",
    "Vector",
    "Workflow",
    "WorkflowContext",
    "WorkflowError",
    "Writer",
    "__version__",
    "action",
    "budget",
    "cancel",
    "chat",
    "cron",
    "crons",
    "current_store",
    "files",
    "fork",
    "mutation",
    "open",
    "pause",
    "prune",
    "query",
    "remove_cron",
    "restart",
    "resume",
    "retention",
    "retry",
    "run_after",
    "run_at",
    "runs",
    "send_event",
    "signal",
    "tool",
    "tracing",
    "workflow",
]

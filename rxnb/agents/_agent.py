"""`rx.Agent`: a model with instructions and tools that answers in threads.

Each agent is registered by its name, the latest definition winning (re-running the
cell that defines it changes what its next turns do); its turns are runs of its own
workflow, `rxnb.agents.turn[<name>]`, so only a process that defines the agent claims
them (a worker started with the module that defines it, or the notebook's kernel).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any

import pydantic

from rxnb.agents._retrieve import Retrieval
from rxnb.agents._thread_search import ThreadSearch
from rxnb.agents._threads import HISTORY, ContextFn, send_in
from rxnb.agents._tools import Tool, as_tools
from rxnb.agents._turn import run_turn
from rxnb.errors import AgentError, ArgumentError
from rxnb.execution import File, RunHandle, executor_for
from rxnb.reactive import Store, current_store
from rxnb.store import Writer
from rxnb.workflows import Workflow, WorkflowContext

_NAME = re.compile(r"^[A-Za-z0-9_.-]{1,64}$")

_agents: dict[str, Agent] = {}
_lock = threading.Lock()

Search = Retrieval | ThreadSearch
"""What `retrieve=` takes: `rx.agents.search(...)`, `rx.agents.search_thread(...)`."""

ChatView = Callable[..., Any]
_chat_view: list[ChatView] = []


def set_chat_view(fn: ChatView) -> None:
    """Make `fn(agent, thread_id, **options)` what `Agent.chat` returns (the widgets
    layer's chat, registered by `import rxnb`: this layer knows no widget)."""
    _chat_view[:] = [fn]


def agent_named(name: str) -> Agent:
    """The latest agent defined with `name` in this process."""
    with _lock:
        agent = _agents.get(name)
    if agent is None:
        raise AgentError(
            f"no agent named {name!r} is defined in this process; run the cell (or import "
            "the module) that defines it"
        )
    return agent


class TurnHandle(RunHandle):
    """A turn's run: `result()` is the answer's text, or an `output_type` instance."""

    def __init__(
        self, run_id: str, store: Store, output_type: type[pydantic.BaseModel] | None, reply_id: int
    ) -> None:
        super().__init__(run_id, store)
        self.output_type = output_type
        self.message_id = reply_id
        """The reply `send` stored (the turn's first model call streams into it)."""

    def result(self, timeout: float | None = None) -> Any:
        value = super().result(timeout)
        if self.output_type is not None and isinstance(value, dict):
            return self.output_type.model_validate(value)
        return value


class Agent:
    """A model, its instructions and tools, answering in threads (`send`, `chat`).

    Any keyword besides the named ones goes to litellm with every model call
    (`temperature=`, `api_base=`, `api_key=`, and for the offline `rxnb/scripted`
    model `turns=[{"script": ..., "tool_calls": [...]}, ...]`); nothing of them is
    stored. `history` is how many of the thread's latest messages the model is sent;
    `context=` (a function of a reader and the thread id, returning messages) decides
    instead. `retrieve=rx.agents.search(Doc.embedding, text=Doc.body, k=5)` searches
    stored documents for each user message before the turn's first model call, as a
    journaled step, and sends the model the nearest ones as a `system` message;
    `retrieve=rx.agents.search_thread(k=5)` searches the thread's own earlier messages
    (those older than `history`), and a list runs several searches.
    `queue=` (an `rx.Queue` or its name) holds its turns' starts to the
    queue's limits, like any workflow's.
    """

    def __init__(
        self,
        name: str,
        *,
        model: str,
        instructions: str = "",
        tools: Sequence[Tool | Callable[..., Any]] = (),
        max_steps: int = 10,
        output_type: type[pydantic.BaseModel] | None = None,
        context: ContextFn | None = None,
        retrieve: Search | Sequence[Search] | None = None,
        history: int = HISTORY,
        queue: Any = None,
        **litellm_kwargs: Any,
    ) -> None:
        given: dict[str, Any] = {"name": name, "model": model, "output_type": output_type}
        if not isinstance(given["name"], str) or not _NAME.match(given["name"]):
            raise ArgumentError(
                f"rx.Agent: the name must be 1-64 letters, digits, _ . or -, not {name!r}"
            )
        if not isinstance(given["model"], str) or "/" not in given["model"]:
            raise ArgumentError(
                f"rx.Agent({name!r}): model= is a litellm model name such as "
                f"'openai/gpt-4o-mini' or 'rxnb/scripted', not {model!r}"
            )
        counts: tuple[tuple[str, Any, int], ...] = (
            ("max_steps", max_steps, 1),
            ("history", history, 1),
        )
        for label, value, low in counts:
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise ArgumentError(
                    f"rx.Agent({name!r}): {label}= is a whole number >= {low}, not {value!r}"
                )
        kind = given["output_type"]
        if kind is not None and not (
            isinstance(kind, type) and issubclass(kind, pydantic.BaseModel)
        ):
            raise ArgumentError(
                f"rx.Agent({name!r}): output_type= is a pydantic model class (or None), not "
                f"{output_type!r}"
            )
        if context is not None and not callable(context):
            raise ArgumentError(
                f"rx.Agent({name!r}): context= is a function (db, thread_id) -> messages, "
                f"not {context!r}"
            )
        searches = _searches(name, retrieve)
        if not isinstance(instructions, str):
            raise ArgumentError(f"rx.Agent({name!r}): instructions= is a str, not {instructions!r}")
        self.name, self.model, self.instructions = name, model, instructions
        self.tools = as_tools(tools)
        self.max_steps, self.history = max_steps, history
        self.output_type, self.context = output_type, context
        self.retrieve = searches
        """The searches each turn runs before its first model call, or None."""
        self.litellm_kwargs = litellm_kwargs
        self.workflow = Workflow(_turn_function(self), queue=queue)
        with _lock:
            _agents[name] = self

    def tool_named(self, name: str) -> Tool | None:
        return next((t for t in self.tools if t.name == name), None)

    def send(
        self,
        thread_id: str,
        text: str,
        *,
        files: Sequence[str | File] | None = None,
        store: Store | None = None,
    ) -> TurnHandle:
        """Store `text` as the user's message in thread `thread_id`, a pending reply, and
        the turn that writes it, in one transaction; the turn's handle at once. `files`
        are stored files (ids from `rx.files.put`, or `rx.File` rows) sent with it."""
        store = store if store is not None else current_store()
        reply_id, run_id = store.database.write(
            lambda db: send_in(db, self, thread_id, text, files=files)
        )
        assert run_id is not None
        executor_for(store).register(self.workflow)
        return TurnHandle(run_id, store, self.output_type, reply_id)

    def send_in(
        self,
        db: Writer,
        thread_id: str,
        text: str,
        *,
        schedule: bool = True,
        files: Sequence[str | File] | None = None,
    ) -> int:
        """`send` inside your own mutation (all of it commits with it); the reply's id.

        `schedule=False` stores the message and the pending reply only: a workflow then
        runs the turn as its child, `ctx.child(agent.workflow, thread_id=..., message_id=
        reply_id)` (the reply's id journaled by the `ctx.mutation` that called this)."""
        reply_id, _ = send_in(db, self, thread_id, text, schedule=schedule, files=files)
        return reply_id

    def chat(self, thread_id: str, **options: Any) -> Any:
        """The chat widget of this agent in thread `thread_id`: messages, tool calls as
        cards, approvals with buttons, an input that sends to this agent, Stop."""
        if not _chat_view:
            raise AgentError("Agent.chat needs rxnb's widgets: `import rxnb` first")
        return _chat_view[0](self, thread_id, **options)

    def as_tool(
        self, *, name: str | None = None, description: str | None = None, approval: bool = False
    ) -> Tool:
        """This agent as another agent's tool: each call is a child turn in a thread of
        its own, given the call's `input`; its answer is the call's result."""

        def ask(input: str) -> str:
            raise AgentError("an agent called as a tool runs as a child turn, not inline")

        ask.__name__ = ask.__qualname__ = name or self.name
        ask.rx_agent = self  # type: ignore[attr-defined]
        return Tool(
            ask,
            name=name or self.name,
            description=description or f"Ask the agent {self.name}. {self.instructions}".strip(),
            approval=approval,
        )

    def __repr__(self) -> str:
        tools = ", ".join(t.name for t in self.tools) or "no tools"
        return f"<rx.Agent {self.name} {self.model} ({tools})>"


def _searches(name: str, retrieve: Any) -> tuple[Search, ...] | None:
    """`retrieve=` as the searches a turn runs, in order (None for none)."""
    given = [retrieve] if isinstance(retrieve, Retrieval | ThreadSearch) else retrieve
    if given is None:
        return None
    if (
        isinstance(given, Sequence)
        and not isinstance(given, str)
        and all(isinstance(s, Retrieval | ThreadSearch) for s in given)
    ):
        return tuple(given) or None
    raise ArgumentError(
        f"rx.Agent({name!r}): retrieve= is what rx.agents.search(Doc.embedding, "
        f"text=Doc.body) or rx.agents.search_thread() returns, or a list of them, not "
        f"{retrieve!r:.80}"
    )


def _turn_function(agent: Agent) -> Callable[..., Any]:
    """The agent's turn, as a function its workflow can be named by."""

    def turn(ctx: WorkflowContext, thread_id: str, message_id: int) -> Any:
        return run_turn(agent, ctx, thread_id, message_id)

    turn.__module__ = "rxnb.agents"
    turn.__name__ = turn.__qualname__ = f"turn[{agent.name}]"
    return turn

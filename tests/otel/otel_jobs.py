"""The agent the tracing tests run, in this process and in `rxnb worker` processes
(`--import otel_jobs`): one tool call, then an answer (offline `rxnb/scripted`); and
a workflow to kill mid-step."""

from __future__ import annotations

import threading
from pathlib import Path

import rxnb as rx

PROMPT = "Weather in Paris?"
ANSWER = "Sunny in Paris."


@rx.tool
def weather(city: str) -> str:
    """The weather in a city."""
    return f"sunny in {city}"


helper = rx.Agent(
    "otel-helper",
    model="rxnb/scripted",
    instructions="Be brief.",
    tools=[weather],
    delay=0.0,
    turns=[
        {
            "script": "Checking.",
            "tool_calls": [{"name": "weather", "arguments": {"city": "Paris"}}],
        },
        {"script": ANSWER},
    ],
)


def first() -> str:
    return "one"


def second(gate: str) -> str:
    """Blocks in the first process that reaches it (until kill -9); returns in the next."""
    path = Path(gate)
    if not path.exists():
        path.write_text("reached")
        threading.Event().wait()
    return "two"


@rx.workflow
def two_steps(ctx: rx.WorkflowContext, gate: str) -> str:
    """A workflow whose second step its first worker never finishes."""
    one = ctx.step(first, name="one")
    two = ctx.step(second, gate, name="two")
    return f"{one}+{two}"

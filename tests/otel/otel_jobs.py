"""The agent the tracing tests run, in this process and in `rxnb worker` processes
(`--import otel_jobs`): one tool call, then an answer (offline `rxnb/scripted`)."""

from __future__ import annotations

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

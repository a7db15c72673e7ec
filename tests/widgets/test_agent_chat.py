"""`agent.chat(thread_id)`: the kernel side of an agent's chat, with ipywidgets' real
code and the offline model: tool calls arrive as rows whose arguments are appended
text, approvals are decided through the widget's own bound function, and the
functions it binds refuse other threads."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from browser_model import BrowserModel
from polling import until
from recording_comm import Comms
from test_chat import call, replay, rows

import rxnb as rx

sys.path.insert(0, str(Path(__file__).parents[1] / "agents"))
sys.path.insert(0, str(Path(__file__).parents[1] / "llm"))
from agent_jobs import send_email
from fake_openai import FakeOpenAI, ToolCalls


def ask(comms: Comms, widget: Any, fn: str, n: int, args: dict[str, Any]) -> dict[str, Any]:
    """`call` with the arguments as a dict (one of them is named `call_id`)."""
    comms.receive(widget, {"type": "call", "id": n, "fn": fn, "args": args})
    return until(
        lambda: next(
            (m for m in comms.custom() if m.get("type") == "reply" and m.get("id") == n), None
        )
    )


class Follower:
    """The browser's copy of the widget's rows, brought up to date on demand."""

    def __init__(self, browser: BrowserModel, comms: Comms) -> None:
        self.browser, self.comms, self.seen = browser, comms, 0

    def rows(self) -> list[dict[str, object]]:
        new = self.comms.custom()[self.seen :]
        self.seen += len(new)
        replay(self.browser, self.comms, len(self.comms.custom()) - len(new))
        return rows(self.browser)


def mailer() -> rx.Agent:
    return rx.Agent(
        "chat-mailer",
        model="rxnb/scripted",
        tools=[send_email],
        delay=0.001,
        turns=[
            {
                "script": "Sending it.",
                "tool_calls": [
                    {
                        "name": "send_email",
                        "arguments": {"to": "ana@example.com", "body": "x" * 3000},
                    }
                ],
            },
            {"script": "Sent."},
        ],
    )


def test_an_agent_chat_shows_tool_calls_and_approves_through_its_own_function(
    store: rx.Store, comms: Comms
) -> None:
    agent = mailer()
    widget = agent.chat("t-chat")
    state = widget.get_state()
    assert state["functions"] == ["approve", "cancel", "earlier", "file", "send"]
    view = state["payload"]["chat"]
    assert view["tool"] == {
        "name": "tool_name",
        "arguments": "arguments",
        "approval": "approval",
        "call": "call_id",
    }
    assert view["approve"] == {"fn": "approve", "arg": "call_id"}
    browser = Follower(BrowserModel(state["payload"]), comms)
    sent = call(comms, widget, "send", 1, thread_id="t-chat", text="Email Ana")
    assert sent["ok"] is True, sent
    waiting = until(
        lambda: [m for m in rx.agents.messages("t-chat") if m.approval == "pending"], timeout=30
    )
    call_id = waiting[0].call_id
    until(
        lambda: any(r.get("approval") == "pending" for r in browser.rows()),
        timeout=10,
    )
    tool_row = next(r for r in browser.rows() if r["role"] == "tool")
    assert json.loads(tool_row["arguments"]) == {"to": "ana@example.com", "body": "x" * 3000}

    refused = call(comms, widget, "send", 2, thread_id="another", text="hi")
    assert refused["ok"] is False and "only to its own thread" in refused["error"]["message"]

    approved = ask(
        comms, widget, "approve", 3, {"call_id": call_id, "approved": True, "note": "ok"}
    )
    assert approved["ok"] is True, approved
    until(
        lambda: (
            rx.agents.messages("t-chat")[-1].text == "Sent."
            and rx.agents.messages("t-chat")[-1].status == "done"
        ),
        timeout=30,
    )
    expected = [("user", "done"), ("assistant", "done"), ("tool", "done"), ("assistant", "done")]
    until(lambda: [(r["role"], r["status"]) for r in browser.rows()] == expected, timeout=10)
    assert browser.rows()[-1]["text"] == "Sent."


def test_tool_arguments_show_as_they_stream_and_stop_ends_the_turn_with_nothing_streaming(
    store: rx.Store, comms: Comms
) -> None:
    arguments = json.dumps({"to": "ana@example.com", "body": "word " * 400})
    server = FakeOpenAI(plan=[ToolCalls(["Writing"], [("send_email", arguments)], 0.05, 60)])
    try:
        agent = rx.Agent(
            "chat-stopper",
            model="openai/fake",
            api_base=server.api_base,
            api_key="not-a-secret",
            tools=[send_email],
        )
        widget = agent.chat("t-stop")
        browser = Follower(BrowserModel(widget.get_state()["payload"]), comms)
        sent = call(comms, widget, "send", 1, thread_id="t-stop", text="Email Ana")
        assert sent["ok"] is True, sent
        reply_id = sent["result"]

        def partial() -> dict[str, object] | None:
            return next(
                (
                    r
                    for r in browser.rows()
                    if r["role"] == "tool" and 10 < len(str(r["arguments"])) < len(arguments) // 2
                ),
                None,
            )

        # The call's arguments reach the browser piece by piece, while the model streams.
        seen = until(partial, timeout=30)
        assert arguments.startswith(str(seen["arguments"])) and seen["status"] == "streaming"
        stop = call(comms, widget, "cancel", 2, message_id=reply_id)
        assert stop["ok"] is True, stop
        ended = ["done", "cancelled", "cancelled"]  # the message, the reply, its tool call
        until(lambda: all(m.status != "streaming" for m in rx.agents.messages("t-stop")), 30)
        assert [m.status for m in rx.agents.messages("t-stop")] == ended
        until(lambda: [r["status"] for r in browser.rows()] == ended)
        assert len(server.bodies) == 1  # no further model call after the stop
    finally:
        server.close()


def test_an_agent_chat_refuses_calls_of_other_threads(store: rx.Store, comms: Comms) -> None:
    agent = mailer()
    other = agent.send("t-other", "Email Ana")
    waiting = until(
        lambda: [m for m in rx.agents.messages("t-other") if m.approval == "pending"], timeout=30
    )
    widget = agent.chat("t-mine")
    refused = ask(comms, widget, "approve", 1, {"call_id": waiting[0].call_id, "approved": True})
    assert refused["ok"] is False and "is not in this chat's thread" in refused["error"]["message"]
    stop = call(comms, widget, "cancel", 2, message_id=other.message_id)
    assert stop["ok"] is False and "is not in this chat's thread" in stop["error"]["message"]
    rx.agents.approve(waiting[0].call_id, approved=False)
    assert other.result(timeout=30) == "Sent."

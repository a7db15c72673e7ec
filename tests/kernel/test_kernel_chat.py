"""The chat app (examples/chat_app.py) in a real kernel that restarts while an
`rxnb worker` generates the reply: the reopened notebook's chat shows the reply still
streaming, with the text it has so far, and then done, with all of it."""

from __future__ import annotations

import itertools
import json
import os
import re
import signal
import sqlite3
import sys
from pathlib import Path
from typing import Any

import pytest
from kernel_session import KernelSession
from polling import until

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "execution"))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "widgets"))
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
import chat_app
from browser_model import BrowserModel
from run_procs import Processes

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"

DELAY = "0.08"
"""Seconds per token of the offline model: the 660-character reply takes ~14 s, which
leaves it streaming through a restart (~4 s) and several of the chat's batches of
appended text (one per ~512 bytes or 2 s) after it."""

QUESTION = "hello"


def notebook(url: str) -> str:
    """The first cell of a chat notebook (as in examples/01_chat.ipynb)."""
    return f"""
%load_ext rxnb
import os, sys
sys.path.insert(0, {str(EXAMPLES)!r})
import rxnb as rx
from chat_app import messages, send
store = rx.open({url!r})
"""


CHAT_CELL = 'rx.chat("t", send=send, messages=messages)'


def chat_comm(kernel: KernelSession) -> str:
    """The comm id of the one chat widget the kernel opened."""
    opened = [
        m
        for m in kernel.snapshot()
        if m["msg_type"] == "comm_open"
        and "chat" in m["content"]["data"]["state"].get("payload", {})
    ]
    assert len(opened) == 1, opened
    return str(opened[0]["content"]["comm_id"])


def replay(kernel: KernelSession, comm_id: str) -> tuple[BrowserModel, list[Any]]:
    """The widget as a browser that connected at its creation sees it now, and each
    state it went through (as message rows), the initial one first."""
    comm = kernel.comm_messages(comm_id)
    browser = BrowserModel(comm[0]["content"]["data"]["state"]["payload"])
    states = [rows(browser)]
    for m in comm[1:]:
        data = m["content"]["data"]
        if m["msg_type"] == "comm_msg" and data.get("method") == "custom":
            browser.apply(data["content"])
            if data["content"]["type"] != "reply":
                states.append(rows(browser))
    return browser, states


def rows(browser: BrowserModel) -> list[dict[str, Any]]:
    columns = browser.payload["columns"]
    return [dict(zip(columns, row, strict=True)) for row in browser.payload["rows"]]


def updates(kernel: KernelSession, comm_id: str) -> list[dict[str, Any]]:
    """The custom messages the kernel sent on the widget's comm (not replies)."""
    return [
        m["content"]["data"]["content"]
        for m in kernel.comm_messages(comm_id)
        if m["msg_type"] == "comm_msg"
        and m["content"]["data"].get("method") == "custom"
        and m["content"]["data"]["content"].get("type") != "reply"
    ]


def reply_of(states: list[list[dict[str, Any]]]) -> dict[str, Any] | None:
    """The assistant message of the newest state, if there is one."""
    assistant = [m for m in states[-1] if m["role"] == "assistant"]
    return assistant[-1] if assistant else None


def until_done(
    kernel: KernelSession, comm_id: str, timeout: float
) -> tuple[BrowserModel, list[list[dict[str, Any]]]]:
    """The replayed widget once its reply is done; on timeout, what it showed last."""

    def done() -> tuple[BrowserModel, list[list[dict[str, Any]]]] | None:
        browser, states = replay(kernel, comm_id)
        reply = reply_of(states)
        return (browser, states) if reply and reply["status"] == "done" else None

    try:
        return until(done, timeout=timeout, interval=0.02)  # type: ignore[no-any-return]
    except AssertionError:
        browser, states = replay(kernel, comm_id)
        last = [json.dumps(m)[:300] for m in updates(kernel, comm_id)[-3:]]
        raise AssertionError(
            f"the reply was not done within {timeout} s: the widget shows {reply_of(states)} "
            f"after {len(states) - 1} updates, {browser.resyncs} resync(s); last: {last}"
        ) from None


def end_kernel(kernel: KernelSession, pid: int, how: str) -> None:
    """End the kernel's process as a restart does: SIGKILL (JupyterLab's restart after
    its grace period, or a crash), or a shutdown request with `restart=True`."""
    if how == "sigkill":
        os.kill(pid, signal.SIGKILL)
        until(lambda: not kernel.manager.is_alive(), timeout=10)
    else:
        kernel.manager.shutdown_kernel(now=False, restart=True)
    assert not kernel.manager.is_alive()


@pytest.mark.parametrize("how", ["sigkill", "shutdown"])
def test_after_a_kernel_restart_the_chat_shows_the_workers_reply_streaming_then_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    url = f"sqlite:///{tmp_path / 'chat.db'}"
    expected = chat_app.offline_answer(QUESTION)
    procs = Processes(tmp_path)
    procs.env.update(
        RXNB_CHAT_DELAY=DELAY,
        RXNB_EXECUTE="1",
        PYTHONPATH=os.pathsep.join([str(EXAMPLES), procs.env["PYTHONPATH"]]),
    )
    # The notebook's kernels queue runs and leave them to the worker.
    monkeypatch.setenv("RXNB_EXECUTE", "0")
    monkeypatch.setenv("RXNB_CHAT_DELAY", DELAY)
    try:
        worker = procs.worker(url, "chat_app")
        banner = until(
            lambda: re.search(r"^rxnb worker (\S+):", procs.output(worker), re.M), timeout=30
        )
        worker_id = banner[1]

        first = KernelSession(tmp_path)
        try:
            first.run(notebook(url))
            first_pid = int(first.eval("os.getpid()"))
            first.run(CHAT_CELL, cell_id="chat")
            first.run(f"reply_id = send(thread_id='t', text={QUESTION!r})")
            first_comm = chat_comm(first)
            streaming = until(
                lambda: (
                    (m := reply_of(replay(first, first_comm)[1]))
                    and m["status"] == "streaming"
                    and m["content"]
                    and m
                ),
                timeout=30,
                interval=0.02,
            )
            end_kernel(first, first_pid, how)
        finally:
            first.close()
        seen_before = streaming["content"]
        assert expected.startswith(seen_before)

        kernel = KernelSession(tmp_path)  # the same notebook, reopened
        try:
            kernel.run(notebook(url))
            assert int(kernel.eval("os.getpid()")) != first_pid
            kernel.run(CHAT_CELL, cell_id="chat")
            comm_id = chat_comm(kernel)
            browser, states = until_done(kernel, comm_id, timeout=30)
            sent = updates(kernel, comm_id)
        finally:
            kernel.close()
    finally:
        procs.close()

    # The reopened chat's initial state: the reply still streaming, with its text so far.
    initial = states[0]
    assert [(m["role"], m["status"]) for m in initial] == [
        ("user", "done"),
        ("assistant", "streaming"),
    ], initial
    assert initial[0]["content"] == QUESTION
    shown = initial[1]["content"]
    assert shown and expected.startswith(shown), shown
    assert len(shown) >= len(seen_before), "the store kept what the first kernel showed"
    assert initial[1]["id"] == streaming["id"]

    # Then it kept streaming in, as appended text, to exactly the whole reply.
    assert browser.resyncs == 0
    final = rows(browser)
    assert [(m["role"], m["status"]) for m in final] == [("user", "done"), ("assistant", "done")]
    assert final[1]["content"] == expected
    assert final[1]["rx_usage"]["completion_tokens"] > 50
    texts = [s[1]["content"] for s in states]
    assert all(b.startswith(a) for a, b in itertools.pairwise(texts)), "text only grew"
    statuses = [s[1]["status"] for s in states]
    done = statuses.index("done")
    assert set(statuses[:done]) == {"streaming"} and set(statuses[done:]) == {"done"}, statuses
    # Every update was appended text (the last one also sets the status and usage
    # cells): none carries the text whole again.
    parts = {"type", "base", "version", "appended", "cells"}
    assert all(m["type"] == "diff" and "appended" in m and set(m) <= parts for m in sent), sent
    assert len(sent) >= 2, "the rest of the reply streamed in, not in one piece"
    assert sum(len(text) for m in sent for *_, text in m["appended"]) == len(expected) - len(shown)
    whole = json.dumps(expected)[1:-1]
    assert not any(whole in json.dumps(m) for m in sent), "the text was sent whole again"

    # The worker generated it, exactly once.
    with sqlite3.connect(tmp_path / "chat.db") as db:
        runs = db.execute("SELECT function, status, attempt, owner, args FROM rx_runs").fetchall()
        generations = db.execute("SELECT target, row_key, status FROM rx_generations").fetchall()
    db.close()
    assert len(runs) == 1, runs
    function, status, attempt, owner, args = runs[0]
    assert function.endswith("generate") and json.loads(args) == {"message_id": final[1]["id"]}
    assert (status, attempt, owner) == ("succeeded", 1, worker_id)
    assert generations == [("chat_message", json.dumps(final[1]["id"]), "done")]

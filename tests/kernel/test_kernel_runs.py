"""Runs seen from a real kernel that restarts while an `rxnb worker` runs them."""

from __future__ import annotations

import ast
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from kernel_session import KernelSession
from polling import until

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))


def runs_widget_rows(kernel: KernelSession, after: int) -> list[list[dict[str, Any]]]:
    """Each state of the newest runs widget opened after message `after`, as rows."""
    from browser_model import BrowserModel

    messages = kernel.snapshot()[after:]
    opened = [
        m
        for m in messages
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"].get("_anywidget_id") == "rxnb.widgets._live.LiveWidget"
    ]
    if not opened:
        return []
    comm_id = opened[-1]["content"]["comm_id"]
    comm = kernel.comm_messages(comm_id)
    browser = BrowserModel(comm[0]["content"]["data"]["state"]["payload"])
    states = []
    for m in comm:
        data = m["content"]["data"]
        if m["msg_type"] == "comm_msg" and data.get("method") == "custom":
            browser.apply(data["content"])
        payload = browser.payload
        states.append([dict(zip(payload["columns"], row, strict=True)) for row in payload["rows"]])
    return states


def test_a_worker_keeps_a_run_going_across_a_kernel_restart(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sys.path.insert(0, str(HERE.parent / "widgets"))
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), str(HERE.parent), *sys.path])}
    worker = subprocess.Popen(
        [sys.executable, "-m", "rxnb", "worker", "--import", "kernel_jobs"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        assert worker.stdout is not None
        assert "rxnb worker" in worker.stdout.readline()
        monkeypatch.setenv("RXNB_EXECUTE", "0")  # the notebook queues; the worker runs
        first_kernel = KernelSession(tmp_path)
        try:
            first_kernel.run("import rxnb as rx, kernel_jobs\nstore = rx.open()")
            # 12 s of steps: the new kernel below starts and opens the store while the
            # run goes on (3.4 s of a 4 s run had passed by then once, in a loaded CI).
            first_kernel.run("h = kernel_jobs.slow.start(steps=120, pause=0.1)\nrun_id = h.id")
            run_id = first_kernel.eval("run_id").strip("'")
            first_kernel.run("rx.runs()")
            until(lambda: "step 5 " in first_kernel.eval("h.run().progress"), timeout=20)
        finally:
            first_kernel.close()  # the kernel process ends, as on a restart

        kernel = KernelSession(tmp_path)
        try:
            kernel.run("import rxnb as rx, kernel_jobs\nstore = rx.open()")
            kernel.run("rx.runs()")
            states = until(
                lambda: (
                    [s for s in runs_widget_rows(kernel, 0) if s and s[0]["status"] == "succeeded"]
                    and runs_widget_rows(kernel, 0)
                ),
                timeout=30,
            )
        finally:
            kernel.close()
    finally:
        worker.terminate()
        worker.wait(10)
        assert worker.stdout is not None
        worker.stdout.close()

    first = states[0][0]
    assert first["id"] == run_id
    assert first["status"] == "running", "the reopened notebook shows the run's current state"
    assert first["owner"].split(":")[1] == str(worker.pid), "owned by the worker"
    assert first["progress"]["done"] >= 5
    done = [s[0]["progress"]["done"] for s in states if s[0]["progress"]]
    assert done == sorted(done) and done[-1] == 120, "progress kept arriving in the widget"
    assert len(set(done)) >= 5
    assert states[-1][0]["status"] == "succeeded"


def test_follow_shows_the_run_and_an_interrupt_only_stops_following(
    kernel: KernelSession, tmp_path: Path
) -> None:
    kernel.run("import rxnb as rx, kernel_jobs\nstore = rx.open()")
    outputs = kernel.run("quick = kernel_jobs.slow.start(steps=3, pause=0.05)\nquick.follow(10)")
    assert "'succeeded'" in kernel.text(outputs)
    assert any(
        "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
        for m in outputs
        if m["msg_type"] == "display_data"
    )

    kernel.run("long = kernel_jobs.slow.start(steps=30, pause=0.1)")
    run_id = kernel.eval("long.id").strip("'")
    following = kernel.execute("long.follow()")
    # The kernel is busy following: read the run's row from the file, read-only (an
    # rx.open here would start this process's own executor, with every action the
    # suite has defined, beside the kernel's).
    database = sqlite3.connect(f"file:{tmp_path / '.rxnb' / 'rxnb.db'}?mode=ro", uri=True)
    try:
        until(
            lambda: (
                "step 3 "
                in (
                    database.execute(
                        "select progress from rx_runs where id = ?", (run_id,)
                    ).fetchone()[0]
                    or ""
                )
            ),
            timeout=20,
        )
    finally:
        database.close()
    kernel.manager.interrupt_kernel()
    reply = kernel.reply(following, timeout=10)
    kernel.wait_for(lambda: kernel.idle(following))
    assert reply["content"]["status"] == "ok", "the interrupt is absorbed by follow()"
    assert "stopped following" in kernel.text(kernel.outputs(following))
    assert kernel.eval("long.status") in ("'running'", "'succeeded'")
    assert kernel.eval("long.wait(20)") == "'succeeded'", "the run went on"


def test_follow_streams_a_generation_into_the_cell_and_an_interrupt_loses_nothing(
    kernel: KernelSession,
) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    kernel.run(
        f"import sys; sys.path.insert(0, {str(examples)!r})\n"
        "import rxnb as rx, chat_app\nchat_app.DELAY = 0.03\nstore = rx.open()"
    )
    kernel.run("reply_id = chat_app.ask(thread_id='t', text='hi')")
    following = kernel.execute("run = chat_app.generate.start(message_id=reply_id)\nrun.follow()")

    def texts() -> list[str]:
        """The text output as each display and update of it showed it."""
        return [
            m["content"]["data"]["text/plain"]
            for m in kernel.snapshot()
            if m["parent_header"].get("msg_id") == following
            and m["msg_type"] in ("display_data", "update_display_data")
            and set(m["content"]["data"]) == {"text/plain"}
        ]

    def streamed() -> str:
        printed = "".join(
            m["content"]["text"]
            for m in kernel.outputs(following)
            if m["msg_type"] == "stream" and m["content"]["name"] == "stdout"
        )
        return (texts() or [""])[-1] + printed

    # The text arrives in the cell in pieces while the cell still runs: one output,
    # updated in place, so a saved notebook holds it as one block.
    kernel.wait_for(lambda: len(streamed()) > 80 and not kernel.idle(following), timeout=30)
    assert len(texts()) >= 2
    assert not any(m["msg_type"] == "stream" for m in kernel.outputs(following))
    kernel.manager.interrupt_kernel()
    reply = kernel.reply(following, timeout=10)
    kernel.wait_for(lambda: kernel.idle(following))
    assert reply["content"]["status"] == "ok", "the interrupt is absorbed by follow()"
    answer = ast.literal_eval(kernel.eval("chat_app.offline_answer('hi')"))
    shown = streamed()
    assert "stopped following run" in shown
    printed = shown.split("\nstopped following run")[0]
    assert printed and answer.startswith(printed) and len(printed) < len(answer)
    assert kernel.eval("run.wait(30)") == "'succeeded'", "the generation went on"
    assert (
        kernel.eval("chat_app.messages(thread_id='t')[-1].content == chat_app.offline_answer('hi')")
        == "True"
    )

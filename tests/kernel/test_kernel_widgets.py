"""Live widgets in a real IPython kernel, read off its iopub channel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from kernel_session import KernelSession

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "widgets"))
from browser_model import BrowserModel

SETUP = """
import threading, time
import rxnb as rx
from sqlmodel import SQLModel, Field, select

class Row(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    n: int

@rx.query
def rows(db: rx.Reader) -> list[Row]:
    return db.exec(select(Row).order_by(Row.id)).all()

@rx.mutation
def add(db: rx.Writer, n: int) -> None:
    db.add(Row(n=n))

store = rx.open()
"""


def live_widgets_opened(kernel: KernelSession) -> list[dict[str, Any]]:
    return [
        m
        for m in kernel.snapshot()
        if m["msg_type"] == "comm_open"
        and m["content"]["data"]["state"].get("_anywidget_id") == "rxnb.widgets._live.LiveWidget"
    ]


def browser_for(kernel: KernelSession, comm_id: str) -> tuple[BrowserModel, list[dict[str, Any]]]:
    """Replay every message of one widget's comm as the browser would."""
    msgs = kernel.comm_messages(comm_id)
    browser = BrowserModel(msgs[0]["content"]["data"]["state"]["payload"])
    for m in msgs[1:]:
        data = m["content"]["data"]
        if m["msg_type"] == "comm_msg" and data.get("method") == "custom":
            browser.apply(data["content"])
    return browser, msgs


def test_updates_arrive_while_another_cell_sleeps(kernel: KernelSession) -> None:
    kernel.run(SETUP)
    kernel.run("rows.live()")
    [opened] = live_widgets_opened(kernel)
    comm_id = opened["content"]["comm_id"]
    kernel.run("""
def writer():
    for i in range(50):
        add(n=i)
        time.sleep(0.04)
threading.Thread(target=writer).start()
""")
    sleeping = kernel.execute("time.sleep(4)")
    reply = kernel.reply(sleeping, timeout=30)

    browser, msgs = browser_for(kernel, comm_id)
    assert [row[1] for row in browser.payload["rows"]] == list(range(50)), "every row arrived"
    assert browser.resyncs == 0
    updates = [m for m in msgs if m["msg_type"] == "comm_msg"]
    last_row_arrived = min(
        m["received"]
        for m in updates
        if any(row[1] == 49 for _, row in m["content"]["data"]["content"].get("inserted", []))
        or len(m["content"]["data"]["content"].get("payload", {}).get("rows", [])) == 50
    )
    assert last_row_arrived < reply["received"], "the final state came while the cell slept"
    assert len(updates) >= 10, "updates streamed, not one batch at the end"


def test_rerunning_a_cell_keeps_one_widget_and_one_subscription(kernel: KernelSession) -> None:
    kernel.run(SETUP)
    kernel.run("%load_ext rxnb")
    for _ in range(20):
        kernel.run("rows.live()", cell_id="cell-live")
    assert (
        kernel.eval(
            "len(rxnb.widgets.live_widgets()) if (rxnb := __import__('rxnb.widgets')) else 0"
        )
        == "1"
    )
    assert kernel.eval("len(store.subscriptions())") == "1"
    # A cell that no longer makes a widget disposes the one it made before.
    kernel.run("1 + 1", cell_id="cell-live")
    assert kernel.eval("len(store.subscriptions())") == "0"


def test_without_the_extension_rerunning_still_replaces_the_widget(kernel: KernelSession) -> None:
    kernel.run(SETUP)
    for _ in range(5):
        kernel.run("w = rows.live(); w", cell_id="cell-a")
    kernel.run("other = rows.live()", cell_id="cell-b")
    assert kernel.eval("len(store.subscriptions())") == "2"


def test_live_cell_magic_and_status(kernel: KernelSession) -> None:
    kernel.run(SETUP)
    kernel.run("%load_ext rxnb")
    outputs = kernel.run("%%live\nlimit = 3\nrows()")
    assert any(
        "application/vnd.jupyter.widget-view+json" in m["content"]["data"]
        for m in outputs
        if m["msg_type"] in ("display_data", "execute_result")
    )
    status = kernel.text(kernel.run("%rxnb status"))
    assert "1 subscription(s)" in status and "1 live widget(s)" in status
    assert kernel.eval("limit") == "3"
    msg_id = kernel.execute("%%live\nprint('no query here')")
    reply = kernel.reply(msg_id)
    kernel.wait_for(lambda: kernel.idle(msg_id))
    assert reply["content"]["status"] == "error"
    assert "last line must call an @rx.query" in kernel.text(kernel.outputs(msg_id))


def test_the_output_carries_a_snapshot_kept_current(kernel: KernelSession) -> None:
    kernel.run(SETUP)
    outputs = kernel.run("rows.live()")
    snapshot, view = [m for m in outputs if m["msg_type"] == "display_data"]
    display_id = snapshot["content"]["transient"]["display_id"]
    assert "0 rows" in snapshot["content"]["data"]["text/html"]
    assert display_id in snapshot["content"]["data"]["text/html"]  # the class views hide
    assert "application/vnd.jupyter.widget-view+json" in view["content"]["data"]
    assert "text/html" not in view["content"]["data"]
    kernel.run("for i in range(3): add(n=i)")
    sleeping = kernel.execute("time.sleep(2)")
    kernel.reply(sleeping)
    updates = [
        m
        for m in kernel.snapshot()
        if m["msg_type"] == "update_display_data"
        and m["content"]["transient"]["display_id"] == display_id
    ]
    assert updates, "the snapshot was refreshed"
    assert "3 rows" in updates[-1]["content"]["data"]["text/html"]


def test_a_browser_call_on_a_subshell_runs_while_a_cell_is_busy(kernel: KernelSession) -> None:
    """JupyterLab >= 4.4 sends widget messages on a kernel subshell (ipykernel >= 7)."""
    kernel.run(SETUP)
    kernel.run("w = rx.widgets.live(rows, bind={'add': add}); w")
    [opened] = live_widgets_opened(kernel)
    comm_id = opened["content"]["comm_id"]

    request = kernel.client.session.msg("create_subshell_request", {})
    kernel.client.control_channel.send(request)
    subshell_id = kernel.client.get_control_msg(timeout=10)["content"]["subshell_id"]

    busy = kernel.execute("time.sleep(4)")
    kernel.wait_for(
        lambda: any(
            m["msg_type"] == "status"
            and m["content"]["execution_state"] == "busy"
            and m["parent_header"].get("msg_id") == busy
            for m in kernel.snapshot()
        )
    )
    call = kernel.client.session.msg(
        "comm_msg",
        {
            "comm_id": comm_id,
            "data": {
                "method": "custom",
                "content": {"type": "call", "id": 1, "fn": "add", "args": {"n": 7}},
            },
        },
    )
    call["header"]["subshell_id"] = subshell_id
    kernel.client.shell_channel.send(call)

    def reply() -> dict[str, Any] | None:
        for m in kernel.comm_messages(comm_id):
            content = m["content"]["data"].get("content", {})
            if content.get("type") == "reply":
                return m
        return None

    answered = kernel.wait_for(reply, timeout=10)
    assert answered["content"]["data"]["content"] == {
        "type": "reply",
        "id": 1,
        "ok": True,
        "result": None,
    }
    done = kernel.reply(busy)
    assert answered["received"] < done["received"], "answered while the cell was still sleeping"
    # The row the call added reaches the widget through the usual update path.
    kernel.wait_for(
        lambda: [row[1] for row in browser_for(kernel, comm_id)[0].payload["rows"]] == [7],
        timeout=10,
    )

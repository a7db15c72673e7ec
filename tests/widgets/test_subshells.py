"""Which kernel thread gets the browser's messages to a live widget.

JupyterLab (>= 4.4) sends widget messages on kernel subshells, and ipykernel (>= 7.4)
routes a message to a comm to the subshell of the request that comm last published
under. These tests use ipykernel's real `Kernel` parent tracking and real comm class,
with a session that records what would go out on iopub instead of sending it.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import comm
import pytest
from ipykernel.comm.comm import BaseComm
from ipykernel.kernelbase import Kernel
from jupyter_client.session import Session
from models import messages, send
from polling import until

import rxnb as rx
from rxnb.widgets import live_widgets


class RecordingSession(Session):
    """Keeps each message (type, content, parent) instead of sending it."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.sent: list[dict[str, Any]] = []
        self._sent_lock = threading.Lock()

    def send(  # type: ignore[override]
        self, stream: Any, msg_or_type: Any, content: Any = None, parent: Any = None, **_: Any
    ) -> None:
        with self._sent_lock:
            self.sent.append({"msg_type": msg_or_type, "content": content, "parent": parent})

    def custom(self, comm_id: str) -> list[dict[str, Any]]:
        """The widget protocol's messages to `comm_id`, with the parent each went under."""
        with self._sent_lock:
            return [
                m
                for m in self.sent
                if m["msg_type"] == "comm_msg"
                and m["content"]["comm_id"] == comm_id
                and m["content"]["data"].get("method") == "custom"
            ]


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[Kernel]:
    kernel = Kernel.instance(session=RecordingSession())
    monkeypatch.setattr(comm, "create_comm", BaseComm)  # what ipykernel installs
    yield kernel
    for widget in live_widgets():
        widget.close()
    Kernel.clear_instance()


def request(msg_type: str, subshell_id: str | None = None) -> dict[str, Any]:
    header: dict[str, Any] = {"msg_id": uuid.uuid4().hex, "msg_type": msg_type}
    if subshell_id is not None:
        header["subshell_id"] = subshell_id
    return {"header": header, "parent_header": {}, "metadata": {}, "content": {}}


def handle_on_subshell(kernel: Kernel, msg: dict[str, Any]) -> None:
    """What ipykernel does first with each request, on the thread that handles it."""
    thread = threading.Thread(target=kernel.set_parent, args=([b"page"], msg, "shell"))
    thread.start()
    thread.join()


def test_after_a_reload_the_browser_reaches_the_widget_on_a_live_shell(
    store: rx.Store, kernel: Kernel
) -> None:
    cell = request("execute_request")  # a notebook cell runs on the main shell
    kernel.set_parent([b"page"], cell, "shell")
    send(thread_id="t", text="a")
    widget = messages.live(thread_id="t")
    # The reloaded page loads its widgets through the widget-control comm, whose last
    # message (its close) is handled with the subshell JupyterLab opened for it, and
    # which JupyterLab deletes right after. Nothing else reaches the kernel meanwhile.
    handle_on_subshell(kernel, request("comm_close", subshell_id="deleted-control-subshell"))

    send(thread_id="t", text="b")  # an update, sent by the dispatcher thread
    session = kernel.session
    assert isinstance(session, RecordingSession)
    [update] = until(lambda: session.custom(widget.model_id))
    assert update["content"]["data"]["content"]["type"] == "diff"
    assert update["parent"]["header"]["msg_id"] == cell["header"]["msg_id"], (
        "the widget's updates go out as the cell that made it, not as whatever the kernel "
        "handled last"
    )
    # So ipykernel hands the page's resync to the main shell, not to the deleted subshell
    # (where it was dropped, "Unknown subshell_id", and the view waited forever).
    resync = {"method": "custom", "content": {"type": "resync"}}
    route = getattr(widget.comm, "_reply_subshell_for", None)
    if route is not None:  # ipykernel >= 7.4
        assert route(resync, "widget-subshell-of-the-page") is None

    widget.comm.handle_msg({"content": {"comm_id": widget.model_id, "data": resync}, "buffers": []})
    full = until(lambda: session.custom(widget.model_id)[1:])
    assert full[0]["content"]["data"]["content"]["type"] == "full"
    assert full[0]["parent"]["header"]["msg_id"] == cell["header"]["msg_id"]

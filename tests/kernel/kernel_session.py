"""A real IPython kernel driven with jupyter_client, and every iopub message it sends.

nbclient stops reading iopub when a cell goes idle; widgets updated by background
threads keep sending after that, so tests read iopub themselves, on a thread.
"""

from __future__ import annotations

import gc
import os
import queue
import sys
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jupyter_client.manager import KernelManager

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from polling import until

TESTS = Path(__file__).resolve().parent.parent


class KernelSession:
    def __init__(self, cwd: Path) -> None:
        env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join([str(TESTS), *sys.path]),
            "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        }
        env.pop("RXNB_URL", None)
        self.manager = KernelManager(kernel_name="python3")
        self.manager.kernel_spec.argv[0] = sys.executable
        self.manager.start_kernel(cwd=str(cwd), env=env)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self.messages: list[dict[str, Any]] = []
        self._lock = threading.Lock()
        self._replies: dict[str, queue.Queue[dict[str, Any]]] = {}
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_iopub, daemon=True)
        self._reader.start()

    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                msg = self.client.get_iopub_msg(timeout=0.1)
            except queue.Empty:
                continue
            msg["received"] = time.monotonic()
            with self._lock:
                self.messages.append(msg)

    def execute(self, code: str, cell_id: str | None = None) -> str:
        """Send an execute request (with the cell id JupyterLab would send); its msg_id."""
        content = {
            "code": code,
            "silent": False,
            "store_history": True,
            "user_expressions": {},
            "allow_stdin": False,
            "stop_on_error": True,
        }
        msg = self.client.session.msg("execute_request", content)
        if cell_id is not None:
            msg["metadata"]["cellId"] = cell_id
        self.client.shell_channel.send(msg)
        return str(msg["header"]["msg_id"])

    def wait_ready(self, timeout: float = 60) -> None:
        """Wait until the kernel (a new one, after a restart) answers on shell. Unlike
        `client.wait_for_ready`, this leaves iopub to the reader thread: two readers
        of one socket garble each other's messages."""
        deadline = time.monotonic() + timeout
        while True:
            msg_id = self.client.kernel_info()
            try:
                self.reply(msg_id, timeout=min(2.0, max(0.1, deadline - time.monotonic())))
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"the kernel did not answer within {timeout} s") from None

    def reply(self, msg_id: str, timeout: float = 60) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                msg = self.client.get_shell_msg(timeout=0.2)
            except queue.Empty:
                continue
            if msg["parent_header"].get("msg_id") == msg_id:
                msg["received"] = time.monotonic()
                return msg
        raise AssertionError(f"no reply to {msg_id} within {timeout} s")

    def run(
        self, code: str, cell_id: str | None = None, timeout: float = 60
    ) -> list[dict[str, Any]]:
        """Execute and wait for the reply; the cell's iopub messages (its outputs)."""
        msg_id = self.execute(code, cell_id)
        reply = self.reply(msg_id, timeout)
        self.wait_for(lambda: self.idle(msg_id))
        outputs = self.outputs(msg_id)
        if reply["content"]["status"] != "ok":
            raise AssertionError(f"cell failed: {reply['content']}\n{outputs}")
        return outputs

    def idle(self, msg_id: str) -> bool:
        return any(
            m["msg_type"] == "status"
            and m["content"]["execution_state"] == "idle"
            and m["parent_header"].get("msg_id") == msg_id
            for m in self.snapshot()
        )

    def outputs(self, msg_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.snapshot()
            if m["parent_header"].get("msg_id") == msg_id
            and m["msg_type"] in ("stream", "display_data", "execute_result", "error")
        ]

    def text(self, msg_id_or_outputs: Any) -> str:
        outputs = msg_id_or_outputs
        parts = []
        for m in outputs:
            if m["msg_type"] == "stream":
                parts.append(m["content"]["text"])
            elif m["msg_type"] in ("execute_result", "display_data"):
                parts.append(m["content"]["data"].get("text/plain", ""))
            elif m["msg_type"] == "error":
                parts.append("\n".join(m["content"]["traceback"]))
        return "".join(parts)

    def snapshot(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self.messages)

    def comm_messages(self, comm_id: str) -> list[dict[str, Any]]:
        return [
            m
            for m in self.snapshot()
            if m["msg_type"].startswith("comm_") and m["content"].get("comm_id") == comm_id
        ]

    def wait_for(self, condition: Callable[[], Any], timeout: float = 30) -> Any:
        return until(condition, timeout, interval=0.01)

    def eval(self, expression: str) -> str:
        """`repr` of an expression evaluated in the kernel."""
        msg_id = self.execute(f"print(repr({expression}))")
        self.reply(msg_id)
        self.wait_for(lambda: self.idle(msg_id))
        return self.text(self.outputs(msg_id)).strip()

    def close(self) -> None:
        self._stop.set()
        self._reader.join(2)
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=True)
        # jupyter_client's blocking client leaves asyncio loops and sockets to the
        # garbage collector: collect them now, where their warnings are expected.
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            gc.collect()

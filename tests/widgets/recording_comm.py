"""A comm that records what ipywidgets would send to the browser."""

from __future__ import annotations

import threading
from typing import Any

from comm.base_comm import BaseComm


class RecordingComm(BaseComm):  # type: ignore[misc]
    """A comm whose messages are kept in `sent` instead of going to a front end."""

    def __init__(self, *args: Any, sent: list[dict[str, Any]], **kwargs: Any) -> None:
        self._sent = sent
        self._sent_lock = threading.Lock()
        super().__init__(*args, **kwargs)

    def publish_msg(
        self,
        msg_type: str,
        data: Any = None,
        metadata: Any = None,
        buffers: Any = None,
        **keys: Any,
    ) -> None:
        with self._sent_lock:
            self._sent.append(
                {"msg_type": msg_type, "data": data, "thread": threading.current_thread().name}
            )


class Comms:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.made: list[RecordingComm] = []

    def create(self, *args: Any, **kwargs: Any) -> RecordingComm:
        made = RecordingComm(*args, sent=self.sent, **kwargs)
        self.made.append(made)
        return made

    def custom(self) -> list[dict[str, Any]]:
        """The widget protocol's messages sent so far (state updates excluded)."""
        return [
            m["data"]["content"]
            for m in list(self.sent)
            if m["msg_type"] == "comm_msg" and m["data"].get("method") == "custom"
        ]

    def receive(self, widget: Any, content: Any) -> None:
        """Deliver `content` as if the browser had sent it."""
        widget._handle_msg(
            {"content": {"data": {"method": "custom", "content": content}}, "buffers": []}
        )

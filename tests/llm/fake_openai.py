"""A loopback OpenAI-compatible chat server for litellm's real HTTP path.

Each request takes the next behaviour from `plan` (the last one repeats):
- `Ok(tokens, delay)`: stream the tokens as SSE chunks, `delay` seconds apart;
- `RateLimited(retry_after)`: HTTP 429 with a `Retry-After` header;
- `Cut(tokens, after, delay)`: stream `after` tokens (`delay` seconds apart), then
  drop the connection mid-body;
- `Hang(tokens, after)`: stream `after` tokens, then send nothing more;
- `Refused(status)`: an error response that quotes the request's key back;
- `ToolCalls(text, calls, delay, pieces)`: stream the text, then each (name, arguments)
  call as OpenAI streams tool calls (arguments in `pieces` parts), `finish_reason`
  "tool_calls";
- `ByTurn(behaviours)`: one of `behaviours` by the request's messages: the number of
  assistant messages after the last user message (the last one repeats), so a repeated
  request gets the same answer and a conversation that went on gets the next.
`events` records (time, what) for each request and each client disconnect; `bodies`
records each request's JSON body. With `throttle=Throttle(per_second)`, the server
also limits itself as providers do: a request over `per_second` requests a second (a
token bucket holding one second's worth) is answered 429 before its plan is looked
at, and counted in `throttled`.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from itertools import pairwise
from typing import Any


@dataclass
class Ok:
    tokens: list[str]
    delay: float = 0.0


@dataclass
class RateLimited:
    retry_after: float


@dataclass
class Cut:
    tokens: list[str]
    after: int
    delay: float = 0.01


@dataclass
class Hang:
    tokens: list[str]
    after: int


@dataclass
class Refused:
    """An error (401: a bad key) whose message quotes the key, as some providers do."""

    status: int = 401


@dataclass
class ToolCalls:
    """Text deltas, then each (name, arguments JSON text) call as OpenAI streams it."""

    text: list[str] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)
    delay: float = 0.0
    pieces: int = 3


@dataclass
class ByTurn:
    """`behaviours[i]`, i = the assistant messages after the request's last user message."""

    behaviours: list[Behaviour]

    def pick(self, body: dict[str, Any]) -> Behaviour:
        messages = body.get("messages") or []
        roles = [m.get("role") for m in messages if isinstance(m, dict)]
        last_user = max((i for i, role in enumerate(roles) if role == "user"), default=-1)
        turn = roles[last_user + 1 :].count("assistant")
        return self.behaviours[min(turn, len(self.behaviours) - 1)]


@dataclass
class Throttle:
    """A provider's own rate limit: `per_second` requests a second, bursts of as many."""

    per_second: float
    retry_after: float = 0.2

    def __post_init__(self) -> None:
        self._tokens, self._at = self.per_second, time.monotonic()

    def take(self) -> bool:
        """Whether a request arriving now is within the limit (the caller holds a lock)."""
        now = time.monotonic()
        self._tokens = min(self.per_second, self._tokens + (now - self._at) * self.per_second)
        self._at = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True


Answer = Ok | RateLimited | Cut | Hang | Refused | ToolCalls
Behaviour = Answer | ByTurn


def _answer(behaviour: Behaviour, body: dict[str, Any]) -> Answer:
    """`behaviour`, or for a `ByTurn` the behaviour it picks for this request."""
    if isinstance(behaviour, ByTurn):
        return _answer(behaviour.pick(body), body)
    return behaviour


@dataclass
class FakeOpenAI:
    plan: list[Behaviour] = field(default_factory=list)
    events: list[tuple[float, str]] = field(default_factory=list)
    requests: int = 0
    bodies: list[dict[str, Any]] = field(default_factory=list)
    throttle: Throttle | None = None
    throttled: int = 0
    """Requests the throttle answered 429."""

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._release = threading.Event()
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("content-length", 0))
                owner._serve(self, self.rfile.read(length))

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def note(self, what: str) -> None:
        with self._lock:
            self.events.append((time.monotonic(), what))

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()

    def _next(self, raw: bytes) -> tuple[Answer, int]:
        """The behaviour for this request, and the request's number (from 1)."""
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {}
        if not isinstance(body, dict):
            body = {}
        with self._lock:
            self.requests += 1
            self.bodies.append(body)
            index = min(self.requests, len(self.plan)) - 1
            behaviour, number = self.plan[index], self.requests
        return _answer(behaviour, body), number

    def _over_throttle(self) -> RateLimited | None:
        """A 429 if the throttle refuses this request (counted), else None."""
        with self._lock:
            if self.throttle is None or self.throttle.take():
                return None
            self.throttled += 1
            return RateLimited(self.throttle.retry_after)

    def _serve(self, handler: BaseHTTPRequestHandler, raw: bytes = b"") -> None:
        refused = self._over_throttle()
        behaviour, number = (refused, 0) if refused is not None else self._next(raw)
        self.note(f"request {type(behaviour).__name__}")
        if isinstance(behaviour, RateLimited):
            body = json.dumps({"error": {"message": "slow down", "type": "rate_limit"}}).encode()
            handler.send_response(429)
            handler.send_header("Retry-After", f"{behaviour.retry_after:g}")
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(body)))
            handler.send_header("Connection", "close")  # no idle socket left in litellm's pool
            handler.end_headers()
            handler.wfile.write(body)
            return
        if isinstance(behaviour, Refused):
            key = handler.headers.get("authorization", "").removeprefix("Bearer ")
            message = f"Incorrect API key provided: {key}"
            error = json.dumps({"error": {"message": message, "code": "invalid_api_key"}})
            handler.send_response(behaviour.status)
            handler.send_header("Content-Type", "application/json")
            handler.send_header("Content-Length", str(len(error.encode())))
            handler.send_header("Connection", "close")  # no idle socket left in litellm's pool
            handler.end_headers()
            handler.wfile.write(error.encode())
            return
        if isinstance(behaviour, ToolCalls):
            self._start_stream(handler)
            self._tool_calls(handler, behaviour, number)
            return
        self._start_stream(handler)
        tokens = behaviour.tokens
        limit = len(tokens) if isinstance(behaviour, Ok) else behaviour.after
        delay = behaviour.delay if isinstance(behaviour, Ok | Cut) else 0.01
        try:
            for token in tokens[:limit]:
                self._send(handler, _chunk({"role": "assistant", "content": token}, None))
                if delay:
                    time.sleep(delay)
            if isinstance(behaviour, Cut):
                handler.wfile.flush()
                handler.connection.shutdown(socket.SHUT_RDWR)  # a real cut, mid-body
                self.note("cut")
                return
            if isinstance(behaviour, Hang):
                self._release.wait(30)
                return
            usage = {
                "prompt_tokens": 5,
                "completion_tokens": len(tokens),
                "total_tokens": 5 + len(tokens),
            }
            self._send(handler, {**_chunk({}, "stop"), "usage": usage})
            self._chunk(handler, b"data: [DONE]\n\n")
            self._chunk(handler, b"")
        except (BrokenPipeError, ConnectionResetError):
            self.note("client disconnected")

    def _start_stream(self, handler: BaseHTTPRequestHandler) -> None:
        handler.send_response(200)
        handler.send_header("Content-Type", "text/event-stream")
        handler.send_header("Transfer-Encoding", "chunked")
        handler.end_headers()

    def _tool_calls(
        self, handler: BaseHTTPRequestHandler, behaviour: ToolCalls, number: int
    ) -> None:
        deltas: list[dict[str, Any]] = [
            {"role": "assistant", "content": token} for token in behaviour.text
        ]
        for index, (name, arguments) in enumerate(behaviour.calls):
            first, *rest = _split(arguments, behaviour.pieces)
            call = {
                "index": index,
                "id": f"call_{number}_{index}",
                "type": "function",
                "function": {"name": name, "arguments": first},
            }
            head: dict[str, Any] = {"tool_calls": [call]}
            if not deltas:
                head = {"role": "assistant", "content": None, **head}
            deltas.append(head)
            deltas += [
                {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                for piece in rest
            ]
        try:
            for delta in deltas:
                self._send(handler, _chunk(delta, None))
                if behaviour.delay:
                    time.sleep(behaviour.delay)
            usage = {
                "prompt_tokens": 5,
                "completion_tokens": len(deltas),
                "total_tokens": 5 + len(deltas),
            }
            finish = "tool_calls" if behaviour.calls else "stop"
            self._send(handler, {**_chunk({}, finish), "usage": usage})
            self._chunk(handler, b"data: [DONE]\n\n")
            self._chunk(handler, b"")
        except (BrokenPipeError, ConnectionResetError):
            self.note("client disconnected")

    def _send(self, handler: BaseHTTPRequestHandler, data: dict[str, Any]) -> None:
        self._chunk(handler, f"data: {json.dumps(data)}\n\n".encode())

    def _chunk(self, handler: BaseHTTPRequestHandler, payload: bytes) -> None:
        handler.wfile.write(f"{len(payload):x}\r\n".encode() + payload + b"\r\n")
        handler.wfile.flush()


def _chunk(delta: dict[str, Any], finish_reason: str | None) -> dict[str, Any]:
    """One `chat.completion.chunk` event as OpenAI streams it."""
    return {
        "id": "c",
        "object": "chat.completion.chunk",
        "created": 0,
        "model": "fake",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish_reason}],
    }


def _split(text: str, pieces: int) -> list[str]:
    """`text` in `pieces` roughly equal, non-empty parts (one part, maybe empty, at least)."""
    count = max(1, min(pieces, len(text)))
    bounds = [len(text) * k // count for k in range(count + 1)]
    return [text[a:b] for a, b in pairwise(bounds)]

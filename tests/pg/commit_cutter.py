"""`CommitCutter`: a TCP proxy to PostgreSQL that makes commits ambiguous.

Terminating a backend cannot do it: PostgreSQL holds interrupts while it commits and
sends the answer before it dies, so the client always learns the outcome. Here, for
the next `cuts` transactions that sent a statement containing `marker`, the proxy
forwards the COMMIT, waits for the server's answer that it committed, drops that
answer, and closes the client's connection: the transaction is committed, and the
client sees a lost connection, as after a network cut or a server crash at the wrong
moment.
"""

from __future__ import annotations

import contextlib
import socket
import threading


class CommitCutter:
    def __init__(self, target: tuple[str, int], marker: bytes, cuts: int) -> None:
        self.target, self.marker = target, marker
        self._lock = threading.Lock()
        self._to_cut = cuts
        self.cut = 0
        """How many commits were made to land unseen so far."""
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._sockets: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True, name="commit-cutter").start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return  # closed
            server = socket.create_connection(self.target)
            with self._lock:
                self._sockets += [client, server]
            _Link(self, client, server)

    def _take_cut(self) -> bool:
        with self._lock:
            if self._to_cut <= 0:
                return False
            self._to_cut -= 1
            return True

    def _cut_done(self) -> None:
        with self._lock:
            self.cut += 1

    def close(self) -> None:
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                _close(sock)


class _Link:
    """One client connection and its server connection, pumped both ways."""

    def __init__(self, cutter: CommitCutter, client: socket.socket, server: socket.socket) -> None:
        self.cutter, self.client, self.server = cutter, client, server
        self.marked = False  # the open transaction sent the marker
        self.cutting = threading.Event()
        threading.Thread(target=self._up, daemon=True).start()
        threading.Thread(target=self._down, daemon=True).start()

    def _up(self) -> None:
        """Client to server; notes marked transactions and arms the cut at COMMIT."""
        try:
            while data := self.client.recv(65536):
                if self.cutter.marker in data:
                    self.marked = True
                if b"COMMIT\x00" in data or b"ROLLBACK\x00" in data:
                    if b"COMMIT\x00" in data and self.marked and self.cutter._take_cut():
                        self.cutting.set()  # before the COMMIT goes: its answer is dropped
                    self.marked = False
                self.server.sendall(data)
        except OSError:
            pass
        finally:
            if not self.cutting.is_set():
                _close(self.client)
                _close(self.server)

    def _down(self) -> None:
        """Server to client; during a cut, swallows up to the commit's answer, then
        closes both sides."""
        try:
            while data := self.server.recv(65536):
                if self.cutting.is_set():
                    if b"COMMIT\x00" in data:  # CommandComplete "COMMIT": it landed
                        self.cutter._cut_done()
                        break
                    continue
                self.client.sendall(data)
        except OSError:
            pass
        _close(self.client)
        _close(self.server)


def _close(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()

"""A round-robin TCP proxy on 127.0.0.1 for the multi-instance tests: a load balancer without sticky sessions.

Each new client connection goes to the next backend in turn. So that the requests of one upload really
spread across the backends, the proxy carries one request per connection: it rewrites the request head
to say `Connection: close` (dropping any other Connection header), the backend answers with
`Connection: close` and closes, and the client (requests, tuspy, Node's http agent) opens a new
connection, hence reaches the next backend, for its next request. No client needs special settings.

Bytes after the request head (the body) are relayed untouched in both directions. Every socket has a
timeout, and `stop()` (or leaving the `with` block) shuts down every open connection and joins every
thread within a bounded time.
"""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Sequence
from types import TracebackType

__all__ = ["RoundRobinProxy"]

HEAD_LIMIT = 64 * 1024
IO_TIMEOUT = 30.0
JOIN_TIMEOUT = 10.0


class RoundRobinProxy:
    """Relays each client connection to the next of `backends` (host, port pairs), one request per connection."""

    def __init__(self, backends: Sequence[tuple[str, int]]) -> None:
        assert backends, "a proxy needs at least one backend"
        self._backends = list(backends)
        self._next = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._open: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)  # the accept loop checks for stop() this often
        self._acceptor = threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> RoundRobinProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, shut down every open connection, join every thread (bounded)."""
        self._stopping.set()
        self._acceptor.join(JOIN_TIMEOUT)
        self._listener.close()
        with self._lock:
            for sock in self._open:
                _shutdown(sock)
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads), "a proxy thread did not stop"

    def __enter__(self) -> RoundRobinProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._spawn(self._serve, client, self._pick())

    def _pick(self) -> tuple[str, int]:
        with self._lock:
            index = self._next
            self._next = (index + 1) % len(self._backends)
        return self._backends[index]

    def _spawn(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        with self._lock:
            self._threads = [known for known in self._threads if known.is_alive()] + [thread]
        thread.start()

    def _track(self, sock: socket.socket) -> bool:
        """Register an open socket; False (and the socket closed) if the proxy is stopping."""
        with self._lock:
            if self._stopping.is_set():
                sock.close()
                return False
            self._open.add(sock)
            return True

    def _forget(self, *socks: socket.socket) -> None:
        with self._lock:
            for sock in socks:
                self._open.discard(sock)
                sock.close()

    def _serve(self, client: socket.socket, backend_address: tuple[str, int]) -> None:
        client.settimeout(IO_TIMEOUT)
        if not self._track(client):
            return
        try:
            head, rest = _read_head(client)
            backend = socket.create_connection(backend_address, timeout=IO_TIMEOUT)
        except OSError:
            self._forget(client)
            return
        if not self._track(backend):
            self._forget(client)
            return
        try:
            backend.sendall(_close_after(head) + rest)
        except OSError:
            self._forget(client, backend)
            return
        upstream = threading.Thread(target=_pump, args=(client, backend), daemon=True)
        upstream.start()
        _pump(backend, client)  # the response; the backend closes after it (Connection: close)
        _shutdown(client)
        _shutdown(backend)  # ends the upstream pump even if the client keeps its side open
        upstream.join(JOIN_TIMEOUT)
        self._forget(client, backend)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The request head (up to the blank line, excluded) and whatever body bytes came with it."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(HEAD_LIMIT)
        if not piece or len(data) > HEAD_LIMIT:
            raise ConnectionError("no complete request head")
        data += piece
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


def _close_after(head: bytes) -> bytes:
    """The request head with `Connection: close` instead of any Connection header, blank line included."""
    request_line, *fields = head.split(b"\r\n")
    kept = [field for field in fields if not field.lower().startswith(b"connection:")]
    return b"\r\n".join([request_line, *kept, b"Connection: close"]) + b"\r\n\r\n"


def _pump(source: socket.socket, target: socket.socket) -> None:
    """Copy until `source` ends, then half-close `target` (the other direction may still run)."""
    try:
        while piece := source.recv(256 * 1024):
            target.sendall(piece)
    except OSError:
        pass
    with contextlib.suppress(OSError):
        target.shutdown(socket.SHUT_WR)


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)

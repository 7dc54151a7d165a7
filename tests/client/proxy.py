"""An HTTP/1.1 proxy on 127.0.0.1 for the client's tests: it records every request, and on demand answers some
itself (a 503 with `Retry-After`, a 423, a 409), slows bodies down, or damages one PATCH body on the way.

One thread per client connection, one upstream connection per client connection (keep-alive on both sides).
Requests must frame their bodies with Content-Length (the client always does); answers with Content-Length,
chunked (@tus/server's) or no body. Every socket has a timeout, and `stop()` joins every thread.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["Injection", "Seen", "TusProxy"]

PIECE = 64 * 1024
IO_TIMEOUT = 30.0
JOIN_TIMEOUT = 10.0


@dataclass
class Seen:
    """One request as the proxy saw it, and what answered it."""

    method: str
    path: str
    headers: dict[str, str]
    started: float
    body_bytes: int = 0
    status: int | None = None
    injected: bool = False
    ended: float | None = None  # when the answer was relayed


@dataclass
class Injection:
    """An answer the proxy gives itself, instead of the server, to the next request with `method`."""

    method: str
    status: int
    headers: dict[str, str] = field(default_factory=dict)


class TusProxy:
    """Relays to `target` (host, port); `inject`, `throttle` and `corrupt_next_patch` change what passes."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.seen: list[Seen] = []
        self._injections: deque[Injection] = deque()
        self._rate: float | None = None
        self._corrupt = False
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.05)
        self._acceptor = threading.Thread(target=self._accept_loop, name="tusproxy-accept", daemon=True)

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def inject(self, *injections: Injection) -> None:
        with self._lock:
            self._injections.extend(injections)

    def throttle(self, bytes_per_second: float | None) -> None:
        """Pace request and response bodies to about this rate per connection (None: full speed)."""
        with self._lock:
            self._rate = bytes_per_second

    def corrupt_next_patch(self) -> None:
        """Flip one byte of the next PATCH body (its Upload-Checksum then cannot match: 460)."""
        with self._lock:
            self._corrupt = True

    def requests(self, method: str) -> list[Seen]:
        with self._lock:
            return [seen for seen in self.seen if seen.method == method]

    def body_bytes(self, method: str) -> int:
        """Bytes of `method` bodies relayed so far (counted as they pass, so mid-request too)."""
        return sum(seen.body_bytes for seen in self.requests(method))

    def start(self) -> TusProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        self._acceptor.join(JOIN_TIMEOUT)
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in threads), "a proxy thread did not stop"

    def __enter__(self) -> TusProxy:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _accept_loop(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            thread = threading.Thread(target=self._serve, args=(client,), daemon=True)
            with self._lock:
                self._threads.append(thread)
            thread.start()

    def _serve(self, client: socket.socket) -> None:
        upstream: socket.socket | None = None
        try:
            client.settimeout(IO_TIMEOUT)
            upstream = socket.create_connection(self.target, timeout=IO_TIMEOUT)
            with self._lock:
                self._sockets.update({client, upstream})
            reader = _Reader(client)
            while not self._stopping.is_set() and self._exchange(reader, client, upstream, _Reader(upstream)):
                pass
        except OSError:
            pass
        finally:
            with self._lock:
                self._sockets.difference_update({client, upstream})
            for sock in (client, upstream):
                if sock is not None:
                    sock.close()

    def _exchange(self, reader: _Reader, client: socket.socket, upstream: socket.socket, answers: _Reader) -> bool:
        """Relay (or answer) one request; False when the connection is done."""
        head = reader.head()
        if head is None:
            return False
        request_line, headers = _parse(head)
        method, path = request_line.split(" ")[:2]
        seen = Seen(method, path, headers, time.monotonic())
        with self._lock:
            self.seen.append(seen)
            injection = self._take(method)
            corrupt = self._corrupt and method == "PATCH" and injection is None
            self._corrupt = self._corrupt and not corrupt
        length = int(headers.get("content-length", "0"))
        if injection is not None:
            reader.discard(length, seen)
            seen.status, seen.injected = injection.status, True
            client.sendall(_canned(injection))
            seen.ended = time.monotonic()
            return False
        upstream.sendall(head)
        reader.relay(length, upstream, seen, self._pace, corrupt=corrupt)
        return self._answer(answers, client, seen, method)

    def _answer(self, answers: _Reader, client: socket.socket, seen: Seen, method: str) -> bool:
        head = answers.head()
        if head is None:
            return False
        status_line, headers = _parse(head)
        seen.status = int(status_line.split(" ")[1])
        client.sendall(head)
        if "chunked" in headers.get("transfer-encoding", ""):
            answers.relay_chunked(client)
            seen.ended = time.monotonic()
            return headers.get("connection", "").lower() != "close"
        length = 0 if method == "HEAD" or seen.status in {204, 304} else int(headers.get("content-length", "0"))
        answers.relay(length, client, None, self._pace, corrupt=False)
        seen.ended = time.monotonic()
        return headers.get("connection", "").lower() != "close"

    def _take(self, method: str) -> Injection | None:
        for injection in self._injections:
            if injection.method == method:
                self._injections.remove(injection)
                return injection
        return None

    def _pace(self, count: int) -> None:
        with self._lock:
            rate = self._rate
        if rate:
            time.sleep(count / rate)  # the throttle itself: a slow link, not a wait for a condition


class _Reader:
    """Buffered reads of one socket: request or answer heads, then bodies of a known length."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = b""

    def head(self) -> bytes | None:
        while b"\r\n\r\n" not in self.buffer:
            data = self.sock.recv(PIECE)
            if not data:
                return None
            self.buffer += data
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head + b"\r\n\r\n"

    def _piece(self, length: int) -> bytes:
        """Up to `length` bytes of body; b"" if the peer closed."""
        if self.buffer:
            piece, self.buffer = self.buffer[:length], self.buffer[length:]
            return piece
        return self.sock.recv(min(PIECE, length))

    def relay(
        self, length: int, to: socket.socket, seen: Seen | None, pace: Callable[[int], None], *, corrupt: bool
    ) -> None:
        while length > 0:
            piece = self._piece(length)
            if not piece:
                raise ConnectionError("closed in the middle of a body")
            if corrupt:
                piece, corrupt = bytes([piece[0] ^ 0xFF]) + piece[1:], False
            pace(len(piece))
            to.sendall(piece)
            length -= len(piece)
            if seen is not None:
                seen.body_bytes += len(piece)

    def discard(self, length: int, seen: Seen) -> None:
        while length > 0:
            piece = self._piece(length)
            if not piece:
                return
            length -= len(piece)
            seen.body_bytes += len(piece)

    def line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            data = self.sock.recv(PIECE)
            if not data:
                raise ConnectionError("closed in the middle of a chunked body")
            self.buffer += data
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line + b"\r\n"

    def relay_chunked(self, to: socket.socket) -> None:
        """Relay a chunked body (RFC 9112 §7.1) through its last chunk and trailer section."""
        while True:
            size_line = self.line()
            to.sendall(size_line)
            size = int(size_line.split(b";")[0].strip(), 16)
            if size == 0:
                break
            while size > 0:
                piece = self._piece(size)
                if not piece:
                    raise ConnectionError("closed in the middle of a chunk")
                to.sendall(piece)
                size -= len(piece)
            to.sendall(self.line())
        while (trailer := self.line()) != b"\r\n":
            to.sendall(trailer)
        to.sendall(trailer)


def _parse(head: bytes) -> tuple[str, dict[str, str]]:
    first, *lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip().lower()] = value.strip()
    return first, headers


def _canned(injection: Injection) -> bytes:
    body = f"ERR_INJECTED: answered by the test proxy with {injection.status}\n".encode()
    extra = "".join(f"{name}: {value}\r\n" for name, value in injection.headers.items())
    head = (
        f"HTTP/1.1 {injection.status} Injected\r\nTus-Resumable: 1.0.0\r\n{extra}Content-Type: text/plain\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body

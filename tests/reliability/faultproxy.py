"""A fault-injecting TCP proxy on 127.0.0.1, between the server under test and Redis, S3 or Azure.

Each client connection is relayed to the one target by a thread of its own that owns both sockets and
multiplexes them with a selector, so every fault is applied by the thread that owns the connection, at a
chunk boundary, and no read or write blocks it for long. Faults switch at run time, from the test:

- `latency(seconds)`: every chunk, in either direction, is held that long before it is sent on;
- `resets(after=n)`: every open connection, and every new one, relays `n` more bytes towards the
  target, then both of its sockets are closed with a TCP RST;
- `errors(status, count=None)`: the next `count` HTTP requests (all, with None) are answered by the proxy
  with a canned `status` (an S3-style XML error) and `Connection: close`, never reaching the target; the
  proxy must be made with `http=True`, and only splits requests with a Content-Length body (what
  botocore sends over http): after a chunked one, a connection is relayed blindly;
- `black_hole()`: connections are accepted and nothing is ever answered; open connections fall silent
  too, in both directions. `heal()` closes every connection the black hole swallowed (as a client's
  timeout would), so none resumes half-way;
- `heal()`: back to relaying faithfully.

Every loop is bounded: the selector wakes at least every `TICK` seconds to look for a switch or `stop()`,
a connection buffers at most `BUFFER_LIMIT` bytes per direction before it stops reading, and `stop()`
joins every thread within `JOIN_TIMEOUT` seconds.
"""

from __future__ import annotations

import contextlib
import selectors
import socket
import struct
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from types import TracebackType

__all__ = ["FaultProxy", "FaultStats"]

TICK = 0.02
CHUNK = 64 * 1024
BUFFER_LIMIT = 1024 * 1024
HEAD_LIMIT = 64 * 1024
JOIN_TIMEOUT = 5.0
_REASONS = {500: "Internal Server Error", 502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}
_S3_CODES = {500: "InternalError", 503: "ServiceUnavailable"}


@dataclass
class FaultStats:
    """What the proxy did, so a test can check that its fault was really met."""

    accepted: int = 0
    delayed_chunks: int = 0
    resets: int = 0
    canned_responses: int = 0
    swallowed: int = 0  # connections the black hole took


@dataclass
class _Faults:
    delay: float = 0.0
    reset_after: int | None = None
    errors_left: int | None = 0  # canned responses still to give; None: every request
    status: int = 503
    code: str | None = None
    black_hole: bool = False
    generation: int = 0  # bumped by every switch, so connections notice it


class FaultProxy:
    """Relays connections to `target`, injecting the faults switched on (see the module docstring)."""

    def __init__(self, target: tuple[str, int], *, http: bool = False) -> None:
        self.target = target
        self.http = http
        self.stats = FaultStats()
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(TICK)
        self._acceptor = threading.Thread(target=self._accept_loop, name="faultproxy-accept", daemon=True)

    @property
    def port(self) -> int:
        port: int = self._listener.getsockname()[1]
        return port

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- switches ------------------------------------------------------------------------------------

    def heal(self) -> None:
        """Relay faithfully from now on (connections swallowed by a black hole are closed)."""
        self._switch(_Faults())

    def latency(self, seconds: float) -> None:
        """Hold every chunk `seconds` before sending it on."""
        self._switch(_Faults(delay=seconds))

    def resets(self, *, after: int = 0) -> None:
        """Reset every connection once it has relayed `after` more bytes towards the target."""
        self._switch(_Faults(reset_after=after))

    def errors(self, status: int = 503, *, count: int | None = None, code: str | None = None) -> None:
        """Answer the next `count` HTTP requests (every one, with None) with a canned `status`, its XML
        error naming `code` (S3's name for the status by default; Azure's is e.g. "ServerBusy")."""
        assert self.http, "canned HTTP answers need FaultProxy(..., http=True)"
        self._switch(_Faults(errors_left=count, status=status, code=code))

    def black_hole(self) -> None:
        """Accept connections and never answer; open connections fall silent too."""
        self._switch(_Faults(black_hole=True))

    def _switch(self, faults: _Faults) -> None:
        with self._lock:
            faults.generation = self._faults.generation + 1
            self._faults = faults

    def faults(self) -> _Faults:
        with self._lock:
            return self._faults

    def take_error(self) -> bytes | None:
        """The canned answer to the request just read, or None to relay it (counts it down)."""
        with self._lock:
            faults = self._faults
            if faults.errors_left == 0:
                return None
            if faults.errors_left is not None:
                faults.errors_left -= 1
            self.stats.canned_responses += 1
            return canned_response(faults.status, faults.code)

    def count(self, name: str) -> None:
        with self._lock:
            setattr(self.stats, name, getattr(self.stats, name) + 1)

    # -- life cycle ----------------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._acceptor.start()
        return self

    def stop(self) -> None:
        """Stop accepting, close every connection and join every thread (bounded)."""
        self._stopping.set()
        self._acceptor.join(JOIN_TIMEOUT)
        self._listener.close()
        with self._lock:
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)
        assert not any(thread.is_alive() for thread in [self._acceptor, *threads]), "a proxy thread did not stop"

    @property
    def stopping(self) -> bool:
        return self._stopping.is_set()

    def __enter__(self) -> FaultProxy:
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
            self.count("accepted")
            thread = threading.Thread(target=_Connection(self, client).run, name="faultproxy-conn", daemon=True)
            with self._lock:
                self._threads = [known for known in self._threads if known.is_alive()] + [thread]
            thread.start()


@dataclass
class _Direction:
    """One way through a connection: chunks waiting to be sent (each with the time it may go)."""

    pending: deque[tuple[float, bytes]] = field(default_factory=deque)
    buffered: int = 0
    eof: bool = False  # the source closed its side: half-close the target once `pending` is sent
    closed: bool = False  # that half-close was done

    def push(self, data: bytes, due: float) -> None:
        if data:
            last = self.pending[-1][0] if self.pending else due
            self.pending.append((max(due, last), data))  # in order, even if the latency dropped
            self.buffered += len(data)

    def ready(self, now: float) -> bool:
        return bool(self.pending) and self.pending[0][0] <= now

    def send(self, sock: socket.socket) -> None:
        due, data = self.pending.popleft()
        sent = sock.send(data)
        self.buffered -= sent
        if sent < len(data):
            self.pending.appendleft((due, data[sent:]))


class _Connection:
    """One relayed connection, run by its own thread."""

    def __init__(self, proxy: FaultProxy, client: socket.socket) -> None:
        self.proxy = proxy
        self.client = client
        self.backend: socket.socket | None = None
        self.up = _Direction()  # client -> target
        self.down = _Direction()  # target -> client
        self.requests = _Requests(proxy) if proxy.http else None
        self.generation = -1
        self.reset_budget: int | None = None
        self.swallowed = False
        self.closing = False  # a canned answer is queued: close once it is sent
        self.done = False

    def run(self) -> None:
        selector = selectors.DefaultSelector()
        try:
            self.client.setblocking(False)
            self._apply(self.proxy.faults())
            if not self.done and not self.swallowed:
                self._connect()
            while not self.done and not self.proxy.stopping:
                self._apply(self.proxy.faults())
                if not self.done:
                    self._step(selector)
        except OSError:
            pass
        finally:
            selector.close()
            for sock in (self.client, self.backend):
                if sock is not None:
                    sock.close()

    def _connect(self) -> None:
        try:
            self.backend = socket.create_connection(self.proxy.target, timeout=JOIN_TIMEOUT)
        except OSError:
            _reset(self.client)  # the target refused: so does the proxy
            self.done = True
            return
        self.backend.setblocking(False)

    def _apply(self, faults: _Faults) -> None:
        """Take up a switch: a new reset budget, a black hole, or the end of one."""
        if faults.generation != self.generation:
            self.generation = faults.generation
            self.reset_budget = faults.reset_after
        if faults.black_hole and not self.swallowed:
            self.swallowed = True
            self.proxy.count("swallowed")
            self.up, self.down = _Direction(), _Direction()
        elif self.swallowed and not faults.black_hole:
            self.done = True  # healed: the connection the black hole took is closed (FIN)
        elif self.reset_budget == 0 and not self.up.pending:  # the bytes it may relay are relayed
            self._reset()

    def _reset(self) -> None:
        self.proxy.count("resets")
        for sock in (self.client, self.backend):
            if sock is not None:
                _reset(sock)
        self.done = True

    def _step(self, selector: selectors.BaseSelector) -> None:
        now = time.monotonic()
        reading = self.up.buffered < BUFFER_LIMIT and not self.up.eof
        self._register(selector, self.client, reading=reading, writing=self.down.ready(now))
        if self.backend is not None:
            reading = self.down.buffered < BUFFER_LIMIT and not self.down.eof
            self._register(selector, self.backend, reading=reading, writing=self.up.ready(now))
        timeout = TICK
        for direction in (self.up, self.down):
            if direction.pending:
                timeout = min(timeout, max(0.0, direction.pending[0][0] - now))
        for key, events in selector.select(timeout):
            if events & selectors.EVENT_READ:
                self._read(key.fileobj)  # type: ignore[arg-type]
            if events & selectors.EVENT_WRITE and not self.done:
                self._write(key.fileobj)  # type: ignore[arg-type]
        self._half_close()

    @staticmethod
    def _register(selector: selectors.BaseSelector, sock: socket.socket, *, reading: bool, writing: bool) -> None:
        events = (selectors.EVENT_READ if reading else 0) | (selectors.EVENT_WRITE if writing else 0)
        registered = sock in selector.get_map()
        if not events:
            if registered:
                selector.unregister(sock)
        elif registered:
            selector.modify(sock, events)
        else:
            selector.register(sock, events)

    def _read(self, sock: socket.socket) -> None:
        try:
            data = sock.recv(CHUNK)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.done = True
            return
        if sock is self.client:
            self._from_client(data)
        else:
            self._from_target(data)

    def _from_client(self, data: bytes) -> None:
        if not data:
            self.up.eof = True
            self.done = self.done or self.swallowed or self.backend is None or self.closing
            return
        if self.swallowed or self.closing:
            return  # the black hole takes it; or a canned answer is on its way and the rest is dropped
        if self.reset_budget is not None:
            data = data[: self.reset_budget]
            self.reset_budget -= len(data)
        if self.requests is not None:
            data, answer = self.requests.feed(data)
            if answer is not None:
                self.down.push(answer, time.monotonic())
                self.closing = True
        self.up.push(data, self._due())

    def _from_target(self, data: bytes) -> None:
        if not data:
            self.down.eof = True
            return
        if not self.swallowed and not self.closing:
            self.down.push(data, self._due())

    def _due(self) -> float:
        delay = self.proxy.faults().delay
        if delay:
            self.proxy.count("delayed_chunks")
        return time.monotonic() + delay

    def _write(self, sock: socket.socket) -> None:
        direction = self.down if sock is self.client else self.up
        try:
            direction.send(sock)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self.done = True
            return
        if self.closing and sock is self.client and not self.down.pending:
            self.done = True  # the canned answer is out: close (it said Connection: close)

    def _half_close(self) -> None:
        """Pass a side's end of stream on once everything before it is sent; done when both ended."""
        for direction, target in ((self.up, self.backend), (self.down, self.client)):
            if direction.eof and not direction.pending and not direction.closed and target is not None:
                with contextlib.suppress(OSError):
                    target.shutdown(socket.SHUT_WR)
                direction.closed = True
        if self.up.closed and self.down.closed:
            self.done = True


class _Requests:
    """Splits a client's bytes into HTTP/1.1 requests, so that any one can be answered by the proxy.

    Only Content-Length bodies are framed; after a chunked request the rest is relayed as it is.
    """

    def __init__(self, proxy: FaultProxy) -> None:
        self.proxy = proxy
        self.head = b""
        self.body_left = 0
        self.blind = False
        self.answer: bytes | None = None  # a canned answer, sent once the body it answers is read

    def feed(self, data: bytes) -> tuple[bytes, bytes | None]:
        """The bytes to relay, and a canned answer to send instead of the request, if any."""
        relay = bytearray()
        while data and not self.blind:
            if self.body_left:
                body, data = data[: self.body_left], data[self.body_left :]
                self.body_left -= len(body)
                if self.answer is None:
                    relay += body
                elif not self.body_left:
                    return bytes(relay), self.answer  # the answered request's body is all in
                continue
            self.head += data
            if b"\r\n\r\n" not in self.head:
                self.blind = len(self.head) > HEAD_LIMIT
                return bytes(relay + (self.head if self.blind else b"")), None
            head, _, data = self.head.partition(b"\r\n\r\n")
            self.head = b""
            answer = self._start(head)
            if answer is not None and (not self.body_left or b"100-continue" in head.lower()):
                return bytes(relay), answer  # no body to wait for (or the client waits for us)
            self.answer = answer
            if answer is None:
                relay += head + b"\r\n\r\n"
        if self.blind:
            relay += data
        return bytes(relay), None

    def _start(self, head: bytes) -> bytes | None:
        fields = {}
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            fields[name.strip().lower()] = value.strip().lower()
        self.blind = b"chunked" in fields.get(b"transfer-encoding", b"")
        self.body_left = int(fields.get(b"content-length", b"0") or b"0")
        return self.proxy.take_error()


def canned_response(status: int, code: str | None = None) -> bytes:
    """An XML error answer (`<Error><Code>...`, as S3 and Azure Blob send) that closes the connection."""
    code = code or _S3_CODES.get(status, "InternalError")
    body = (
        f'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>{code}</Code>'
        f"<Message>injected by the fault proxy</Message></Error>"
    ).encode()
    head = (
        f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}\r\nContent-Type: application/xml\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


def _reset(sock: socket.socket) -> None:
    """Close with a TCP RST (SO_LINGER 0) instead of a FIN."""
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.close()

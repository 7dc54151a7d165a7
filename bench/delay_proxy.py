"""A delaying TCP proxy on 127.0.0.1: a long, window-limited link, on which parallel streams pay off.

Each byte is held `delay` seconds in each direction before it is passed on, and each connection has at most
`window` bytes in flight per direction: what a TCP connection over a long path does when its window is the
limit (one stream moves at most `window / delay` bytes a second, whatever the bandwidth), the case tus
clients meet on intercontinental links and that parallel uploads exist for. Two threads per direction and
connection: a reader that stamps pieces and stops reading while the window is full, a writer that sends each
piece when it is due. Every loop is bounded by socket timeouts and `stop()`.

Usage: DelayProxy(("127.0.0.1", port), delay=0.025, window=1 << 20) as a context manager; `.origin` is its URL.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections import deque
from types import TracebackType

__all__ = ["DelayProxy"]

PIECE = 64 * 1024
JOIN_TIMEOUT = 10.0


class _Pipe:
    """One direction of one connection: pieces in flight, each with the moment it may leave."""

    def __init__(self, source: socket.socket, target: socket.socket, delay: float, window: int) -> None:
        self.source, self.target, self.delay, self.window = source, target, delay, window
        self.pending: deque[tuple[float, bytes]] = deque()
        self.in_flight = 0
        self.closed = False
        self.changed = threading.Condition()

    def read(self) -> None:
        try:
            while data := self.source.recv(PIECE):
                with self.changed:
                    while self.in_flight >= self.window and not self.closed:
                        self.changed.wait(0.1)
                    self.pending.append((time.monotonic() + self.delay, data))
                    self.in_flight += len(data)
                    self.changed.notify_all()
        except OSError:
            pass
        with self.changed:
            self.closed = True
            self.changed.notify_all()

    def write(self) -> None:
        try:
            while True:
                with self.changed:
                    while not self.pending and not self.closed:
                        self.changed.wait(0.1)
                    if not self.pending:
                        break
                    due, data = self.pending[0]
                wait = due - time.monotonic()
                if wait > 0:
                    time.sleep(wait)  # the link's latency itself
                self.target.sendall(data)
                with self.changed:
                    self.pending.popleft()
                    self.in_flight -= len(data)
                    self.changed.notify_all()
        except OSError:
            pass
        with contextlib.suppress(OSError):
            self.target.shutdown(socket.SHUT_WR)
        with self.changed:
            self.closed = True
            self.changed.notify_all()


class DelayProxy:
    """Relays connections to `target` with `delay` seconds of latency and `window` bytes in flight each way."""

    def __init__(self, target: tuple[str, int], *, delay: float, window: int) -> None:
        self.target, self.delay, self.window = target, delay, window
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._stopping = threading.Event()
        self._threads: list[threading.Thread] = []
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> DelayProxy:
        self._spawn(self._accept)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stopping.set()
        self._listener.close()
        with self._lock:
            for sock in self._sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
            threads = list(self._threads)
        for thread in threads:
            thread.join(JOIN_TIMEOUT)

    def _spawn(self, target: object, *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)  # type: ignore[arg-type]
        with self._lock:
            self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            upstream = socket.create_connection(self.target)
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                self._sockets += [client, upstream]
            for source, target in ((client, upstream), (upstream, client)):
                pipe = _Pipe(source, target, self.delay, self.window)
                self._spawn(pipe.read)
                self._spawn(pipe.write)

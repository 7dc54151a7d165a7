"""A graceful stop, on uvicorn and on granian: drain, give running requests `--shutdown-timeout` seconds, then end
their bodies as a disconnect would, so that every byte received is stored and recorded and every lock released.

uvicorn on SIGTERM closes its listening sockets, closes idle connections, lets busy ones finish their
request (closing after it), and after `timeout_graceful_shutdown` cancels the requests still running. A
cancelled PATCH is the wrong ending: the cancellation can land anywhere, also between storing bytes and
recording them. `DrainingServer` instead, when the timeout passes, closes the connections still open. Each
request then sees `http.disconnect`, which the pipeline already handles cleanly: the body ends, what arrived
is stored and its offset recorded, the lock is let go, as when a client goes away mid-PATCH. uvicorn's own
cancellation stays as the last resort, `END_GRACE` seconds later.

granian (2.x) on SIGTERM also closes its listener and its idle connections, but then waits for the running
requests without any limit, and tells the app (the lifespan's shutdown) only once they are all done. So
`GranianDrain`, around the app in granian's worker, hears the signal itself and, when the timeout passes,
answers the running requests' `receive()` with `http.disconnect`: the same clean ending. granian's
`workers_kill_timeout` (set by `tusserver.serving.servers`) is its last resort, `END_GRACE` seconds later.

Requests that arrive on a connection still open once draining began get 503 with Retry-After and
`Connection: close` (`tusserver.pipeline.operations`), and `/readyz` says the server is shutting down.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from types import FrameType
from typing import Any

import anyio
import anyio.to_thread
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusserver.context import TusContext

__all__ = ["END_GRACE", "STOP_SIGNALS", "DrainingServer", "GranianDrain"]

logger = logging.getLogger("tusserver")

END_GRACE = 10.0  # seconds requests get to record what they received once their connections are closed
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)  # what stops uvicorn and granian (Ctrl-C reaches every process)
_DISCONNECT: Message = {"type": "http.disconnect"}


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining `tus`'s app on shutdown (see the module)."""

    def __init__(self, config: uvicorn.Config, tus: TusContext, *, timeout: float) -> None:
        config.timeout_graceful_shutdown = int(timeout + END_GRACE + 1)  # whole seconds in uvicorn's annotation
        super().__init__(config)
        self.tus = tus
        self.timeout = timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        _start_draining(self.tus, self.timeout)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._end_connections_later)
            await super().shutdown(sockets)
            tasks.cancel_scope.cancel()

    async def _end_connections_later(self) -> None:
        await anyio.sleep(self.timeout)
        connections: set[Any] = self.server_state.connections
        _warn_cut(len(connections))
        for connection in list(connections):
            splicer = getattr(connection, "_splicer", None)  # PieceProtocol's, while a body is spliced
            if splicer is not None:
                # Closed here, in a task: anyio wakes the splice waiting on it only from inside the event loop's
                # tasks, and connection_lost runs as a plain callback.
                splicer.close()
            connection.transport.close()  # connection_lost: the request's receive() answers http.disconnect


class GranianDrain:
    """`app` in granian's worker, drained on SIGTERM (see the module).

    granian's worker hears SIGTERM through its event loop (`add_signal_handler`: the signal number arrives on
    the loop's wakeup descriptor, which Python writes for every signal that has a Python-level handler). At the
    lifespan's start-up, which granian runs after that, the Python-level handler (the loop's no-op) is
    replaced by one that calls it and wakes the draining through a pipe: a signal handler may interrupt the
    event loop anywhere, so it only writes a byte, and a task does the rest.
    """

    def __init__(self, app: ASGIApp, tus: TusContext, *, timeout: float) -> None:
        self.app = app
        self.tus = tus
        self.timeout = timeout
        self._running = 0  # requests being served
        self._cut = False  # the timeout passed: bodies end now
        self._receiving: set[anyio.CancelScope] = set()  # the receive() calls waiting now

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
            return
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        self._running += 1
        try:
            await self.app(scope, self._cuttable(receive), send)
        finally:
            self._running -= 1

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        if threading.current_thread() is not threading.main_thread():
            # Only the main thread may set signal handlers: granian's workers are threads on a free-threaded
            # Python, and its own stop is all there is then.
            logger.warning("granian's workers are threads here: a stop does not drain running requests")
            await self.app(scope, receive, send)
            return
        with _signal_pipe() as read_end:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._drain_on_signal, read_end)
                await self.app(scope, receive, send)  # returns after granian's shutdown, once requests are done
                tasks.cancel_scope.cancel()

    async def _drain_on_signal(self, read_end: int) -> None:
        # In a thread, which the pipe's closing (at the lifespan's end) wakes too.
        if not await anyio.to_thread.run_sync(_read_then_close, read_end, abandon_on_cancel=True):
            return
        _start_draining(self.tus, self.timeout)
        await anyio.sleep(self.timeout)
        _warn_cut(self._running)
        self._cut = True
        for waiting in list(self._receiving):
            waiting.cancel()

    def _cuttable(self, receive: Receive) -> Receive:
        """`receive`, answering `http.disconnect` from the cut on, also to a call that waits then."""

        async def receive_until_cut() -> Message:
            if not self._cut:
                with anyio.CancelScope() as waiting:
                    self._receiving.add(waiting)
                    try:
                        return await receive()
                    finally:
                        self._receiving.discard(waiting)
            return _DISCONNECT

        return receive_until_cut


@contextmanager
def _signal_pipe() -> Iterator[int]:
    """The read end of a pipe that gets a byte on each of STOP_SIGNALS, whose handlers run as before too (for
    `_read_then_close`, which closes it). At the end the handlers are put back and the write end is closed:
    a reader still waiting reads EOF."""
    read_end, write_end = os.pipe()
    os.set_blocking(write_end, False)
    previous = {number: signal.getsignal(number) for number in STOP_SIGNALS}

    def handler(number: int, frame: FrameType | None) -> None:
        with suppress(OSError):  # the pipe is full, or its reader is gone: the drain was woken already
            os.write(write_end, b"!")
        chained = previous[signal.Signals(number)]
        if callable(chained):
            chained(number, frame)

    try:
        for number in STOP_SIGNALS:
            signal.signal(number, handler)
        yield read_end
    finally:
        for number, restored in previous.items():
            signal.signal(number, restored)
        os.close(write_end)


def _read_then_close(read_end: int) -> bytes:
    """Wait for a byte (a signal came) or EOF (the lifespan ended), then close: the one reader owns its end."""
    try:
        return os.read(read_end, 1)
    finally:
        os.close(read_end)


def _start_draining(tus: TusContext, timeout: float) -> None:
    tus.draining = True
    logger.info("draining: running requests have %g s to finish", timeout)


def _warn_cut(running: int) -> None:
    if running:
        logger.warning("shutdown timeout: ending %d request(s) as disconnects; what arrived is kept", running)

"""uvicorn's httptools protocol, with a bounded request head and body pieces handed over without
two more copies.

Body pieces: uvicorn (0.54+) gathers a request's body pieces in a bytearray and gives the app
`bytes(bytearray)`: two copies of every piece on top of uvloop's and httptools' own. For an upload,
almost every piece is read alone (uvicorn stops reading past 64 KiB until the app asks for more),
so this protocol starts each message's body as an empty `bytes`, to which `+=` of the first piece
is that piece itself, and `bytes()` of it too. A second piece arriving before the app asks turns
the body back into a bytearray, as uvicorn has it. Measured in W1 (BENCHMARKS.md): 10 % less
server CPU per GiB and ~12 % more throughput on uvicorn.

Head size: uvicorn's httptools protocol keeps every header line it is sent, without a limit, so one
connection could grow the server's memory without end. Here a request whose line and headers run
past `MAX_HEAD` bytes is answered 431 and the connection closed, as granian and h11 do. The bytes are
counted as they arrive, so the head may overshoot the limit by one read (at most 256 KiB) first.

Head time: uvicorn closes a connection idle between requests (`timeout_keep_alive`), but not one that
never sends a request, nor one that sends a head a byte at a time: such connections were held for
ever. Here a connection gets `HEAD_TIMEOUT` seconds from its opening to its first complete head, and
a later head as long from its first bytes (nginx's `client_header_timeout`); then a partial head is
answered 408 and the connection closed, an idle one closed.
"""

from __future__ import annotations

from typing import Any, Protocol

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

from tusserver.protocol.errors import HeadTimeoutError, HeadTooLargeError, TusError
from tusserver.protocol.model import TUS_VERSION
from tusserver.protocol.responses import error_response

__all__ = ["HEAD_TIMEOUT", "MAX_HEAD", "PieceProtocol"]

MAX_HEAD = 64 * 1024  # request line and headers; browsers send a few KiB, tus metadata rarely more
HEAD_TIMEOUT = 60.0  # seconds for a request line and headers to arrive (nginx's default)


class _Timer(Protocol):
    def cancel(self) -> None: ...


class PieceProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose body pieces reach the app as the very `bytes` httptools made, and
    whose request heads are bounded by `MAX_HEAD`."""

    head_timeout = HEAD_TIMEOUT
    # Class-level starting values: uvicorn's __init__ is left as it is.
    _head_bytes = 0  # received of the current request's head so far
    _heads = 0  # heads completed on this connection
    _in_body = False
    _head_timer: _Timer | None = None

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        in_head, heads = not self._in_body, self._heads
        super().data_received(data)
        # Only data that neither started in a body nor completed a head is wholly head; the rest
        # is counted as none, which lets a head overshoot the limit by at most one read.
        if in_head and heads == self._heads and not self.transport.is_closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._reject_head(HeadTooLargeError(f"the request line and headers exceed {MAX_HEAD // 1024} KiB"))
            elif self._head_timer is None:
                self._start_head_timer()

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._heads, self._head_bytes, self._in_body = self._heads + 1, 0, True
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self._in_body = False  # what comes next is the next request's head
        super().on_message_complete()

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        if self._head_bytes:  # a request is on its way, too slowly
            self._reject_head(HeadTimeoutError(f"the request line and headers took over {self.head_timeout:g} s"))
        else:
            self.transport.close()

    def _reject_head(self, error: TusError) -> None:
        self._stop_head_timer()
        response = error_response(error)
        headers = {**response.headers, "Tus-Resumable": TUS_VERSION, "Content-Length": str(len(response.body))}
        lines = [STATUS_LINE[response.status]]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
        self.transport.write(b"".join([*lines, b"Connection: close\r\n\r\n", response.body]))
        self.transport.close()

    def on_body(self, body: bytes) -> None:
        cycle = self.cycle
        gathered: object = cycle.body  # typed bytearray by uvicorn, but checked here
        # Only the types uvicorn 0.54+ uses are touched; anything else is left to uvicorn as it is.
        if type(gathered) is bytearray and not gathered:
            cycle.body = b""  # type: ignore[assignment]  # b"" += piece is the piece itself, no copy
        elif type(gathered) is bytes and gathered:
            cycle.body = bytearray(gathered)  # more pieces: gather them in place again
        super().on_body(body)

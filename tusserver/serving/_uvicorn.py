"""uvicorn's httptools protocol, with a bounded request head, body pieces handed over without two
more copies, tus errors past the connection limit, and large bodies spliced into files.

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
ever. Here a connection gets `head_timeout` seconds (`--header-timeout`) from its opening to its first
complete head, and a later head as long from its first bytes (nginx's `client_header_timeout`); then a
partial head is answered 408 and the connection closed, an idle one closed.

Connection limit: uvicorn answers a request on a connection past `--limit-concurrency` with a plain
503 of its own; here it is a tus error like the others: Tus-Resumable, an error code, Retry-After.
Before it comes to that, connections that no request is using are reclaimed, as nginx reclaims its
keep-alive connections when it runs short: when a connection opens or a head completes at the limit,
the connections idle longest (kept alive between requests, or still waiting for a head) are closed,
oldest first, so a thousand connections that sent one byte each no longer lock every new client out.
A connection inside a request is never reclaimed.

Errors before the app: a request that does not parse is answered `400 ERR_MALFORMED_REQUEST` (uvicorn
answers a plain text of its own), in the error table's form, as are 408 and 431.

Half-closed clients: a client may send its request and shut its side (`shutdown(SHUT_WR)`). uvicorn
then closes the connection, and the response is lost if it was not written yet. Here a request
received whole is answered, and the connection closed after it.

Splicing: a request whose Content-Length is at least `SPLICE_MIN` gets the `tusserver.splice` ASGI
extension (`tusserver.pipeline.body`), which moves its body into a file inside the kernel, or reads it
straight into a buffer of the app's, a store's part (`tusserver.serving._splice`). Once splicing starts,
reading stops on uvicorn's transport and the parser sees none of the rest of the body. When the body is
complete, the parser starts afresh for the next request; if it never completes (the app stopped, the client
left), the response closes the connection, because where the next request would start is unknown.

Closing: a connection closed while its request's body is still coming (a spliced body that ended
early, a 413 sent before the body was read to a `Connection: close` client, a malformed or slow head)
closes lingering, as nginx does: a FIN after the response, then what the client still sends is read
and dropped until it closes or `LINGER_TIMEOUT` passes, so that a client still sending gets the
response rather than a connection reset.
"""

from __future__ import annotations

import os
import weakref
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any, Protocol, cast

import httptools
from starlette.types import Receive, Scope, Send
from uvicorn.protocols.http.flow_control import service_unavailable
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol, RequestResponseCycle
from uvicorn.server import ServerState

from tusserver.pipeline.body import SPLICE_EXTENSION
from tusserver.pipeline.middleware import send_response
from tusserver.protocol.errors import (
    HeadTimeoutError,
    HeadTooLargeError,
    MalformedRequestError,
    ServiceUnavailableError,
    TusError,
)
from tusserver.protocol.model import TUS_VERSION
from tusserver.protocol.responses import TusResponse, error_response
from tusserver.serving._splice import SPLICE_AVAILABLE, Splicer

__all__ = ["HEAD_TIMEOUT", "LINGER_TIMEOUT", "MAX_HEAD", "SPLICE_MIN", "PieceProtocol"]

MAX_HEAD = 64 * 1024  # request line and headers; browsers send a few KiB, tus metadata rarely more
HEAD_TIMEOUT = 10.0  # seconds for a request line and headers to arrive (Settings.header_timeout says why)
LINGER_TIMEOUT = 5.0  # seconds a closing connection still reads what its client sends (nginx's lingering_timeout)
SPLICE_MIN = 1024 * 1024  # smaller bodies arrive in a few pieces; a pipe would cost more than it saves

# Per server (uvicorn's ServerState, which its connections share): the connections no request is
# using, in the order they became idle. A dict, so that adding, removing and finding the oldest cost O(1).
_IDLE: weakref.WeakKeyDictionary[ServerState, dict[PieceProtocol, None]] = weakref.WeakKeyDictionary()


class _Timer(Protocol):
    def cancel(self) -> None: ...


class PieceProtocol(HttpToolsProtocol):
    """HttpToolsProtocol whose body pieces reach the app as the very `bytes` httptools made, whose
    request heads are bounded by `MAX_HEAD` and `head_timeout`, whose idle connections make room for
    new ones at the connection limit, and whose large bodies can be spliced into files."""

    head_timeout = HEAD_TIMEOUT
    linger_timeout = LINGER_TIMEOUT
    # Class-level starting values: uvicorn's __init__ is left as it is.
    _idle: dict[PieceProtocol, None]  # this server's idle connections (`_IDLE`), set on connection_made
    _head_bytes = 0  # received of the current request's head so far
    _heads = 0  # heads completed on this connection
    _in_body = False
    _head_timer: _Timer | None = None
    _body_seen = 0  # body bytes of the current request that have left the socket
    _splicer: Splicer | None = None  # while a body is being spliced
    _unspliced: RequestResponseCycle | None = None  # a request that could not get a pipe
    _keep_alive = True  # while splicing: whether the connection stays open once the body is complete
    _lingering: _Timer | None = None  # while closing lingering: what arrives is dropped until it fires

    @classmethod
    def configured(cls, *, head_timeout: float) -> type[PieceProtocol]:
        """This protocol with its settings (uvicorn makes each connection's protocol from a class)."""
        return type(cls.__name__, (cls,), {"head_timeout": head_timeout})

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._idle = _IDLE.setdefault(self.server_state, {})
        self._idle[self] = None
        self._make_room()
        self._start_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._idle.pop(self, None)
        self._stop_head_timer()
        if self._lingering is not None:
            self._lingering.cancel()
        if self._splicer is not None:
            self._splicer.close()
        super().connection_lost(exc)

    def eof_received(self) -> bool | None:  # type: ignore[override]  # asyncio.Protocol allows a bool
        """The client shut its side. A request received whole is still answered (the connection closes
        after it); otherwise, as uvicorn does, the connection closes (returning None closes it)."""
        cycle = self.cycle
        if self._lingering is None and cycle is not None and not cycle.response_complete and not cycle.more_body:
            cycle.keep_alive = False  # the newest request: the connection closes once it is answered
            return True
        return None

    def shutdown(self) -> None:
        if self._splicer is not None:
            self._keep_alive = False  # the end of the body must not turn keep-alive back on
        super().shutdown()

    def data_received(self, data: bytes) -> None:
        if self._splicer is not None or self._lingering is not None:  # a body's rest the parser never saw
            return
        in_head, heads = not self._in_body, self._heads
        super().data_received(data)
        # Only data that neither started in a body nor completed a head is wholly head; the rest
        # is counted as none, which lets a head overshoot the limit by at most one read.
        if in_head and heads == self._heads and not self._closing():
            self._head_bytes += len(data)
            if self._head_bytes > MAX_HEAD:
                self._reject_head(HeadTooLargeError(f"the request line and headers exceed {MAX_HEAD // 1024} KiB"))
            elif self._head_timer is None:
                self._start_head_timer()

    def send_400_response(self, msg: str) -> None:
        """What uvicorn calls when httptools cannot parse the request: the error table's 400."""
        self._reject_head(MalformedRequestError())

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        if app is service_unavailable:  # uvicorn's answer past its connection limit
            app = _over_the_limit
        super()._start_asgi_task(cycle, app)

    def on_headers_complete(self) -> None:
        self._stop_head_timer()
        self._idle.pop(self, None)  # in use from now until its response is complete
        self._make_room()  # before uvicorn counts the connections
        self._heads, self._head_bytes, self._in_body, self._body_seen = self._heads + 1, 0, True, 0
        super().on_headers_complete()
        cycle = self.cycle
        if cycle is None or cycle.scope is not self.scope:  # a WebSocket upgrade: no cycle of this request
            return
        cycle.transport = cast(Any, _CycleTransport(self.transport, partial(self._close_after, cycle)))
        if SPLICE_AVAILABLE and self.scheme == "http":
            length = _body_length(self.headers)
            if length >= SPLICE_MIN:
                extensions = cast(dict[str, Any], self.scope).setdefault("extensions", {})
                extensions[SPLICE_EXTENSION] = {
                    "splice": partial(self._splice, cycle, length),
                    "read_into": partial(self._read_into, cycle, length),
                }

    def on_message_complete(self) -> None:
        self._in_body = False  # what comes next is the next request's head
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.cycle.response_complete and not self.transport.is_closing():  # no pipelined request started
            self._idle.pop(self, None)
            self._idle[self] = None  # idle from now: last in the order

    def _closing(self) -> bool:
        return self._lingering is not None or bool(self.transport.is_closing())

    def _make_room(self) -> None:
        """At the connection limit, close the connections idle longest until this one fits under it."""
        limit = self.limit_concurrency
        while limit is not None and len(self.connections) >= limit:
            oldest = next((connection for connection in self._idle if connection is not self), None)
            if oldest is None:  # every other connection is inside a request: uvicorn answers 503
                return
            oldest._reclaim()

    def _reclaim(self) -> None:
        """Close this idle connection to make room: at once, a partial head answered 503 first."""
        self._idle.pop(self, None)
        self.connections.discard(self)  # no longer counted; connection_lost comes on the next loop turn
        if self._head_bytes and not self._closing():  # a client in the middle of a head learns why
            self._write_error(_closing_error(ServiceUnavailableError("the server is at its connection limit")))
        self.transport.close()

    def _start_head_timer(self) -> None:
        self._head_timer = self.loop.call_later(self.head_timeout, self._head_timed_out)

    def _stop_head_timer(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._closing():
            return
        if self._head_bytes:  # a request is on its way, too slowly
            self._reject_head(HeadTimeoutError(f"the request line and headers took over {self.head_timeout:g} s"))
        else:
            self.transport.close()

    def _reject_head(self, error: TusError) -> None:
        """Answer a head the app never sees, and close: lingering, since the client may still be sending."""
        self._stop_head_timer()
        cycle = self.cycle
        if cycle is not None and not cycle.response_complete:  # a request still being answered: as a close
            cycle.disconnected = True  # would do it, its app sees a disconnect and its answer goes nowhere
            cycle.message_event.set()
            if cycle.response_started:  # its answer is half written: no room for another
                self.transport.close()
                return
        self._write_error(_closing_error(error))
        self._close_lingering()

    def _write_error(self, response: TusResponse) -> None:
        headers = {**response.headers, "Content-Length": str(len(response.body))}
        lines = [STATUS_LINE[response.status]]
        lines += [name + b": " + value + b"\r\n" for name, value in self.server_state.default_headers]
        lines += [f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items()]
        self.transport.write(b"".join([*lines, b"\r\n", response.body]))

    def on_body(self, body: bytes) -> None:
        self._body_seen += len(body)
        cycle = self.cycle
        gathered: object = cycle.body  # typed bytearray by uvicorn, but checked here
        # Only the types uvicorn 0.54+ uses are touched; anything else is left to uvicorn as it is.
        if type(gathered) is bytearray and not gathered:
            cycle.body = b""  # type: ignore[assignment]  # b"" += piece is the piece itself, no copy
        elif type(gathered) is bytes and gathered:
            cycle.body = bytearray(gathered)  # more pieces: gather them in place again
        super().on_body(body)

    async def _splice(self, cycle: RequestResponseCycle, length: int, fd: int, limit: int) -> tuple[int, bool]:
        """The `splice` of the `tusserver.splice` extension of one request (see `tusserver.pipeline.body.Splice`)."""
        splicer = await self._body_socket(cycle, pipe=True)
        if splicer is not None:
            return self._taken(cycle, length, await splicer.move(fd, min(limit, length - self._body_seen)))
        if cycle.disconnected:
            return 0, True
        if cycle.body:  # read and parsed before splicing started, or without a pipe
            return _write_gathered(cycle, fd, limit), bool(cycle.body) or cycle.more_body
        return 0, cycle.more_body

    async def _read_into(self, cycle: RequestResponseCycle, length: int, view: memoryview) -> tuple[int, bool]:
        """The `read_into` of the `tusserver.splice` extension (see `tusserver.pipeline.body.ReadInto`)."""
        reader = await self._body_socket(cycle, pipe=False)
        if reader is not None:
            return self._taken(cycle, length, await reader.read_into(view[: length - self._body_seen]))
        if cycle.disconnected:
            return 0, True
        if cycle.body:  # read and parsed before reading from the socket started, or without a descriptor
            return _copy_gathered(cycle, view), bool(cycle.body) or cycle.more_body
        return 0, cycle.more_body

    async def _body_socket(self, cycle: RequestResponseCycle, *, pipe: bool) -> Splicer | None:
        """The splicer that takes the rest of the body from the socket; None while uvicorn has gathered body
        bytes to hand over first, once the body is complete, or when no splicer can be made (then after
        waiting for uvicorn's next piece)."""
        if cycle.waiting_for_100_continue and not self.transport.is_closing():
            self.transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # as uvicorn's receive() does
            cycle.waiting_for_100_continue = False
        if cycle.body or not cycle.more_body or cycle.disconnected:
            return None
        splicer = self._splicer or self._start_splicing(cycle, pipe=pipe)
        if splicer is None:
            await self._next_piece(cycle)
        return splicer

    def _start_splicing(self, cycle: RequestResponseCycle, *, pipe: bool) -> Splicer | None:
        if self._unspliced is cycle:
            return None
        try:
            self._splicer = Splicer(self.transport.get_extra_info("socket").fileno(), pipe=pipe)
        except OSError:  # no descriptor or pipe to spare: this body comes in pieces, as uvicorn reads it
            self._unspliced = cycle
            return None
        self.flow.pause_reading()  # everything read so far has been parsed; the rest stays in the socket
        # Until the body is complete, the connection closes after the response (lingering: `_close_after`).
        self._keep_alive, cycle.keep_alive = cycle.keep_alive, False
        return self._splicer

    async def _next_piece(self, cycle: RequestResponseCycle) -> None:
        # As uvicorn's receive() waits. The event may be left set from pieces gathered earlier.
        cycle.message_event.clear()
        self.flow.resume_reading()
        await cycle.message_event.wait()

    def _taken(self, cycle: RequestResponseCycle, length: int, count: int) -> tuple[int, bool]:
        """After `count` body bytes left the socket: (count, whether more of the body is to come)."""
        if count == 0:
            self.transport.close()  # the client is gone; connection_lost tells the cycle
            return 0, True
        self._body_seen += count
        if self._body_seen < length:
            return count, True
        self._end_splicing(cycle)
        return count, False

    def _end_splicing(self, cycle: RequestResponseCycle) -> None:
        assert self._splicer is not None
        self._splicer.close()
        self._splicer = None
        self.parser = httptools.HttpRequestParser(self)  # the old one still expects the body
        self.parser.set_dangerous_leniencies(lenient_data_after_close=True)  # as uvicorn sets it
        cycle.keep_alive = self._keep_alive
        self.on_message_complete()  # reading resumes when the response is complete, as uvicorn does

    def _close_after(self, cycle: RequestResponseCycle) -> None:
        """How the connection closes after `cycle`'s response: lingering while its body is still coming."""
        if cycle.more_body and not cycle.disconnected:
            self._close_lingering()
        else:
            self.transport.close()

    def _close_lingering(self) -> None:
        """Close a connection whose client may still be sending: the response, a FIN, and the rest dropped.

        Closed at once, a socket with bytes unread answers the client with a reset, which can fail
        its sending, or reach it before the response does. Here the response is followed by a FIN, and
        what the client still sends is read and dropped until it closes (`eof_received` then closes the
        transport), for at most `linger_timeout` seconds.
        """
        if self._closing():
            return
        self._stop_head_timer()
        if self._splicer is not None:
            self._splicer.close()
            self._splicer = None
        if not self.transport.can_write_eof():  # TLS: no half-close
            self.transport.close()
            return
        self._lingering = self.loop.call_later(self.linger_timeout, self.transport.close)
        self.transport.write_eof()  # once the response is written
        self.flow.resume_reading()


class _CycleTransport:
    """The transport as a request's cycle sees it: `close` decides how (`PieceProtocol._close_after`)."""

    def __init__(self, transport: Any, close: Callable[[], None]) -> None:
        self._transport = transport
        self.close = close

    def write(self, data: bytes) -> None:
        self._transport.write(data)

    def is_closing(self) -> bool:
        return bool(self._transport.is_closing())


async def _over_the_limit(scope: Scope, receive: Receive, send: Send) -> None:
    """The answer to a request past uvicorn's connection limit (tus clients retry a 503)."""
    error = ServiceUnavailableError("the server is at its connection limit; retry later")
    await send_response(_closing_error(error), send)


def _closing_error(error: TusError) -> TusResponse:
    """A tus error response that the protocol sends itself, outside the app and its middleware (which
    add Tus-Resumable to the app's responses); the connection closes after it."""
    response = error_response(error)
    return replace(response, headers={**response.headers, "Tus-Resumable": TUS_VERSION, "Connection": "close"})


def _body_length(headers: list[tuple[bytes, bytes]]) -> int:
    """The Content-Length of a body that may be spliced, or -1 (none, or chunked)."""
    length = -1
    for name, value in headers:
        if name == b"content-length" and value.isdigit():
            length = int(value)
        elif name == b"transfer-encoding":
            return -1
    return length


def _copy_gathered(cycle: RequestResponseCycle, view: memoryview) -> int:
    """Copy as many of the body bytes the cycle has gathered as fit into `view`; keep the rest."""
    gathered = cycle.body
    count = min(len(view), len(gathered))
    view[:count] = memoryview(gathered)[:count]
    cycle.body = bytearray(gathered[count:])
    return count


def _write_gathered(cycle: RequestResponseCycle, fd: int, limit: int) -> int:
    """Write up to `limit` of the body bytes the cycle has gathered into `fd`; keep the rest."""
    gathered = cycle.body
    view = memoryview(gathered)[:limit]
    count = len(view)
    while view:
        view = view[os.write(fd, view) :]
    cycle.body = bytearray(gathered[count:])
    return count

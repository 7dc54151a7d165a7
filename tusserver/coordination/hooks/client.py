"""A lean HTTP/1.1 client for the HTTP hooks: POSTs to one URL over a pool of keep-alive connections.

Why not httpx: it cost 600-900 µs of CPU per hook request (BENCHMARKS.md, Hooks), most of it in its pool's
bookkeeping; a hook needs well under 100 µs. This one does what a hook request needs and no more: the request
is built as bytes and written at once, the answer parsed by httptools (llhttp: Content-Length, chunked, or
until the connection closes), on asyncio's protocols and transports, the cheapest I/O the server's event loop
(asyncio or uvloop) has. No redirects, no compression, no proxies, no HTTP/2.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from typing import cast

import httptools

__all__ = ["ConnectError", "HTTPClient", "HTTPError", "LocalProtocolError", "RemoteProtocolError", "Response", "Target"]

_UNSAFE_VALUE = re.compile(r"[\r\n\0]")  # would end the header early: a second header, or a request, smuggled in
_TOKEN = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


class HTTPError(Exception):
    """The exchange failed; the message says how, never with the URL."""


class ConnectError(HTTPError):
    """No connection: refused, unreachable, a name that does not resolve, a TLS handshake or certificate."""


class RemoteProtocolError(HTTPError):
    """The receiver answered something that is not HTTP/1.1, or closed the connection in the middle."""


class LocalProtocolError(HTTPError):
    """The request cannot be sent as HTTP: a header name or value that would break the request's framing."""


@dataclass(frozen=True, slots=True)
class Response:
    status: int
    body: bytes  # at most the client's `max_body` bytes
    truncated: bool  # the body went on past `max_body`: the connection was dropped


@dataclass(frozen=True, slots=True)
class Target:
    """Where the client connects and what it asks for: an http(s) URL taken apart."""

    tls: bool
    host: str  # as connected to and checked against the certificate: IDNA, no brackets
    port: int
    authority: str  # the Host header
    path: str  # the request target: path and query, percent-encoded
    authorization: str | None  # an Authorization header sent with every request


class HTTPClient:
    """POSTs to one URL over at most `connections` connections, idle ones reused last-in first-out.

    Args:
        target: the URL.
        timeout: seconds each `post` may take once it has a connection slot, from connecting to the last byte.
        max_body: the largest answer body read; past it the answer is `truncated`.
        headers: sent with every request, after Host.
        connections: requests in flight at once, and connections kept open; more wait for a slot.
    """

    def __init__(
        self,
        target: Target,
        *,
        timeout: float,
        max_body: int,
        headers: Iterable[tuple[str, str]] = (),
        connections: int = 16,
    ) -> None:
        self.target, self._timeout, self._max_body = target, timeout, max_body
        fixed = [("Host", target.authority), ("User-Agent", "tusserver"), *headers]
        if target.authorization is not None:
            fixed.append(("Authorization", target.authorization))
        self._head = f"POST {target.path} HTTP/1.1\r\n{_header_lines(fixed)}"
        self._slots = asyncio.Semaphore(connections)
        self._idle: list[_Connection] = []
        self._tls: ssl.SSLContext | None = None
        self._closed = False

    async def post(self, body: bytes, headers: Iterable[tuple[str, str]] = ()) -> Response:
        """Send `body` with `headers` (after the fixed ones); the answer's status and body.

        Raises:
            TimeoutError: no whole answer within the timeout.
            HTTPError: no connection, a malformed answer, or the connection lost in the middle.
        """
        head = f"{self._head}{_header_lines(headers)}Content-Length: {len(body)}\r\n\r\n"
        try:
            request = head.encode("latin-1") + body
        except UnicodeEncodeError:
            request = head.encode() + body  # as httpx did with a value outside Latin-1
        async with self._slots, asyncio.timeout(self._timeout):
            connection = self._pooled()
            if connection is not None:
                try:
                    return await self._exchange(connection, request)
                except RemoteProtocolError:
                    if connection.received:
                        raise
                    # Closed before any answer: the receiver closed it while it was idle, as it may at any time,
                    # and has not seen this request. Once more at once, on a new connection.
            return await self._exchange(await self._connect(), request)

    async def aclose(self) -> None:
        """Close the idle connections now, the others when their answer is in; `post` no longer pools."""
        self._closed = True
        idle, self._idle = self._idle, []
        for connection in idle:
            connection.abort()
        for connection in idle:
            await connection.lost

    def _pooled(self) -> _Connection | None:
        while self._idle:
            connection = self._idle.pop()
            if connection.usable:  # else closed by the receiver while idle
                return connection
        return None

    async def _exchange(self, connection: _Connection, request: bytes) -> Response:
        try:
            response = await connection.send(request, self._max_body)
        except BaseException:
            connection.abort()  # an answer may still be coming, or a timeout or cancellation cut in
            raise
        if connection.usable and not self._closed:
            self._idle.append(connection)
        else:
            connection.abort()
        return response

    async def _connect(self) -> _Connection:
        target = self.target
        if target.tls and self._tls is None:
            self._tls = ssl.create_default_context()  # reads SSL_CERT_FILE; checks the host name
        tls = self._tls if target.tls else None
        loop, name = asyncio.get_running_loop(), target.host if tls else None
        try:
            _, connection = await loop.create_connection(
                lambda: _Connection(loop), target.host, target.port, ssl=tls, server_hostname=name
            )
        except OSError as exc:  # ssl.SSLError is one
            raise ConnectError(str(exc) or type(exc).__name__) from None
        return connection


def _header_lines(headers: Iterable[tuple[str, str]]) -> str:
    lines = []
    for name, value in headers:
        if not _TOKEN.fullmatch(name) or _UNSAFE_VALUE.search(value):
            raise LocalProtocolError(f"header {name!r} cannot be sent: a name or value that is not HTTP")
        lines.append(f"{name}: {value}\r\n")
    return "".join(lines)


class _Stop(Exception):
    """Raised in a parser callback to stop parsing: the exchange is over (answer complete or over the cap)."""


class _Connection(asyncio.Protocol):
    """One connection: sends a request, parses its answer with httptools into a future."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._answer: asyncio.Future[Response] | None = None
        self.lost: asyncio.Future[None] = loop.create_future()
        self.usable = True  # may carry another exchange
        self._start(0)

    def _start(self, limit: int) -> None:
        self._limit, self.received = limit, False
        self._next_message()

    def _next_message(self) -> None:
        self._status, self._size, self._headers_done, self._framed = 0, 0, False, False
        self._chunks: list[bytes] = []

    def send(self, request: bytes, limit: int) -> asyncio.Future[Response]:
        assert self._transport is not None
        self._start(limit)
        self._answer = answer = self._loop.create_future()
        self._transport.write(request)
        return answer

    def abort(self) -> None:
        self.usable = False
        if self._transport is not None:
            self._transport.abort()

    # --- asyncio.Protocol ---

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)  # uvloop's is one, without the subclassing

    def data_received(self, data: bytes) -> None:
        answer = self._answer
        if answer is None or answer.done():  # bytes nobody asked for: the stream is out of step
            self.abort()
            return
        self.received = True
        try:
            self._parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            if not answer.done():
                answer.set_exception(RemoteProtocolError(f"malformed answer: {exc}"))
            self.abort()

    def eof_received(self) -> None:
        self.usable = False  # returning None closes the transport: connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.usable = False
        self.lost.set_result(None)
        answer = self._answer
        if answer is None or answer.done():
            return
        if self._headers_done and not self._framed and exc is None:  # a body that lasts until the close
            answer.set_result(Response(self._status, b"".join(self._chunks), truncated=False))
        elif not self.received:
            reason = f": {exc}" if exc else ""
            answer.set_exception(RemoteProtocolError(f"connection closed before any answer{reason}"))
        else:
            answer.set_exception(RemoteProtocolError("connection closed in the middle of the answer"))

    # --- httptools callbacks ---

    def on_message_begin(self) -> None:
        assert self._answer is not None
        if self._answer.done():  # a second answer to one request
            self.usable = False
            raise _Stop

    def on_header(self, name: bytes, value: bytes) -> None:
        if name.lower() in (b"content-length", b"transfer-encoding"):
            self._framed = True

    def on_headers_complete(self) -> None:
        self._status, self._headers_done = self._parser.get_status_code(), True

    def on_body(self, body: bytes) -> None:
        self._size += len(body)
        if self._size > self._limit:
            self._chunks.append(body[: len(body) - (self._size - self._limit)])
            self._finish(truncated=True)
            raise _Stop
        self._chunks.append(body)

    def on_message_complete(self) -> None:
        if 100 <= self._status < 200:  # an interim answer (100 Continue): the real one follows
            self._next_message()
            return
        self.usable = self.usable and self._parser.should_keep_alive()
        self._finish(truncated=False)

    def _finish(self, *, truncated: bool) -> None:
        if truncated:
            self.usable = False
        assert self._answer is not None
        self._answer.set_result(Response(self._status, b"".join(self._chunks), truncated))

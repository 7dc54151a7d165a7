"""PieceProtocol (tusserver/serving/_uvicorn.py) on uvicorn's real HTTP machinery, fed bytes as a socket would.

Body pieces: every test checks what the app receives: exact `bytes`, the pieces in order, nothing
lost or doubled, whichever way they arrive. Heads: one past MAX_HEAD gets a 431 and the connection
closes before any app runs; bodies and earlier requests on the connection do not count. A head that
takes longer than the head timeout gets a 408, a connection that sends nothing is closed; a request
that does not parse gets the error table's 400. Closing: a client that half-closes after its request
is answered; a connection closed while its client may still be sending closes lingering (a FIN
after the response). The connection limit: idle connections are closed to make room, oldest first.
"""

from __future__ import annotations

from typing import Any

import anyio
import anyio.lowlevel
import pytest
import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.server import ServerState

from tusserver.serving._uvicorn import HEAD_TIMEOUT, MAX_HEAD, PieceProtocol
from tusserver.serving.servers import _uvicorn_protocol
from tusserver.settings import Settings

pytestmark = pytest.mark.anyio


class FakeTransport:
    """Just enough of an asyncio transport for uvicorn's protocol; records what the server writes."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False
        self.eof = False  # write_eof was called: the server closes lingering
        self.closing = anyio.Event()  # set by close or write_eof: the server is done with the connection

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 1080)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True
        self.closing.set()

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.eof = True
        self.closing.set()

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class RecordingApp:
    """Reads the body message by message; `first_read` is set once the first message is in."""

    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.first_read = anyio.Event()
        self.done = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        more = True
        while more:
            message = await receive()
            self.messages.append(message)
            self.first_read.set()
            more = message.get("more_body", False)
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        self.done.set()


def connect(
    app: ASGIApp, *, server_state: ServerState | None = None, limit: int | None = None
) -> tuple[PieceProtocol, FakeTransport]:
    config = uvicorn.Config(app=app, lifespan="off", http=PieceProtocol, log_level="warning", limit_concurrency=limit)
    protocol = PieceProtocol(config=config, server_state=server_state or ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    return protocol, transport


def half_close(protocol: PieceProtocol, transport: FakeTransport) -> None:
    """The client shuts its side: as asyncio does, the transport closes unless eof_received returns true."""
    if not protocol.eof_received():
        transport.close()
        protocol.connection_lost(None)


def bodies(app: RecordingApp) -> list[tuple[bytes, bool]]:
    for message in app.messages:
        assert type(message["body"]) is bytes
    return [(message["body"], message["more_body"]) for message in app.messages]


def head(length: int) -> bytes:
    return b"PATCH /files/x HTTP/1.1\r\nHost: h\r\nContent-Length: %d\r\n\r\n" % length


async def test_the_app_gets_every_piece_as_bytes_in_order() -> None:
    app = RecordingApp()
    protocol, transport = connect(app)
    # Two pieces arrive before the app reads (they are gathered), the third after it read.
    protocol.data_received(head(9) + b"abc")
    protocol.data_received(b"def")
    await app.first_read.wait()
    protocol.data_received(b"ghi")
    await app.done.wait()
    assert bodies(app) == [(b"abcdef", True), (b"ghi", False)]
    assert transport.written.startswith(b"HTTP/1.1 204 ")


async def test_a_body_in_one_piece_arrives_whole() -> None:
    app = RecordingApp()
    protocol, transport = connect(app)
    data = bytes(range(256)) * 1024
    protocol.data_received(head(len(data)) + data)  # 256 KiB of body in the read that ends the head: no head bytes
    await app.done.wait()
    assert bodies(app) == [(data, False)]
    assert not transport.closed


async def test_chunked_pieces_in_one_read_are_gathered() -> None:
    app = RecordingApp()
    protocol, _ = connect(app)
    chunks = b"3\r\nabc\r\n2\r\nde\r\n4\r\nfghi\r\n0\r\n\r\n"
    protocol.data_received(b"PATCH /files/x HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + chunks)
    await app.done.wait()
    assert b"".join(body for body, _ in bodies(app)) == b"abcdefghi"
    assert bodies(app)[-1][1] is False


async def test_two_requests_on_one_connection_keep_their_bodies_apart() -> None:
    first, second = RecordingApp(), RecordingApp()
    protocol, _ = connect(first)
    protocol.data_received(head(3) + b"one")
    await first.done.wait()
    protocol.app = second  # the next request on the keep-alive connection goes to another recorder
    protocol.data_received(head(3) + b"two")
    await second.done.wait()
    assert bodies(first) == [(b"one", False)]
    assert bodies(second) == [(b"two", False)]


def test_the_cli_runs_uvicorn_with_piece_protocol_and_its_header_timeout() -> None:
    protocol = _uvicorn_protocol(Settings(header_timeout=3))
    assert isinstance(protocol, type)
    assert issubclass(protocol, PieceProtocol)
    assert protocol.head_timeout == 3


def assert_rejected(app: RecordingApp, transport: FakeTransport) -> None:
    assert transport.written.startswith(b"HTTP/1.1 431 ")
    assert b"\r\nConnection: close\r\n" in transport.written
    assert b"\r\nTus-Resumable: 1.0.0\r\n" in transport.written
    assert transport.written.endswith(b"\r\n\r\nERR_HEADERS_TOO_LARGE: the request line and headers exceed 64 KiB\n")
    assert transport.eof  # closed lingering: the client may still be sending its head
    assert app.messages == []  # no app ran


async def test_a_head_of_many_lines_past_the_limit_is_answered_431() -> None:
    app = RecordingApp()
    protocol, transport = connect(app)
    protocol.data_received(b"PATCH /files/x HTTP/1.1\r\nHost: h\r\n")
    line = b"X-Pad: " + b"a" * 1000 + b"\r\n"
    for _ in range(MAX_HEAD // len(line) + 1):
        assert not transport.closed
        protocol.data_received(line)
    assert_rejected(app, transport)


async def test_one_endless_header_value_is_answered_431() -> None:
    """httptools gathers a header's value until its line ends: the bytes count before that."""
    app = RecordingApp()
    protocol, transport = connect(app)
    protocol.data_received(b"PATCH /files/x HTTP/1.1\r\nX-Pad: ")
    for _ in range(MAX_HEAD // 4096 + 1):
        protocol.data_received(b"a" * 4096)
    assert_rejected(app, transport)


async def test_a_head_within_the_limit_is_served() -> None:
    app = RecordingApp()
    protocol, transport = connect(app)
    protocol.data_received(head(3).removesuffix(b"\r\n"))
    for i in range(MAX_HEAD // 1100):  # a line of padding per read
        protocol.data_received(b"X-Pad-%d: %s\r\n" % (i, b"a" * 1000))
    protocol.data_received(b"\r\nabc")
    await app.done.wait()
    assert bodies(app) == [(b"abc", False)]
    assert transport.written.startswith(b"HTTP/1.1 204 ")


async def test_a_body_does_not_count() -> None:
    app = RecordingApp()
    protocol, transport = connect(app)
    body = bytes(range(256)) * (MAX_HEAD // 128)
    protocol.data_received(head(len(body)))
    for start in range(0, len(body), 4096):
        protocol.data_received(body[start : start + 4096])
        await anyio.lowlevel.checkpoint()  # the app reads: uvicorn stops reading past 64 KiB until it does
    await app.done.wait()
    assert b"".join(piece for piece, _ in bodies(app)) == body
    assert not transport.closed


async def test_earlier_heads_on_the_connection_do_not_count() -> None:
    protocol, transport = connect(RecordingApp())
    requests = 2 * MAX_HEAD // 30
    for _ in range(requests):
        app = protocol.app = RecordingApp()
        protocol.data_received(head(1)[:30])  # the head in two reads, then its body
        protocol.data_received(head(1)[30:])
        protocol.data_received(b"x")
        await app.done.wait()
        assert bodies(app) == [(b"x", False)]
    assert transport.written.count(b"HTTP/1.1 204 ") == requests
    assert not transport.closed


@pytest.fixture
def short_head_timeout(monkeypatch: pytest.MonkeyPatch) -> float:
    timeout = 0.05
    monkeypatch.setattr(PieceProtocol, "head_timeout", timeout)
    return timeout


async def test_a_head_sent_too_slowly_is_answered_408(short_head_timeout: float) -> None:
    app = RecordingApp()
    protocol, transport = connect(app)
    protocol.data_received(b"PATCH /files/x HTTP/1.1\r\nHost: h\r\n")  # and then nothing more
    with anyio.fail_after(5):
        await transport.closing.wait()
    assert transport.written.startswith(b"HTTP/1.1 408 ")
    assert transport.written.endswith(b"\r\n\r\nERR_HEADERS_TIMEOUT: the request line and headers took over 0.05 s\n")
    assert app.messages == []


async def test_a_connection_that_sends_nothing_is_closed(short_head_timeout: float) -> None:
    _, transport = connect(RecordingApp())
    with anyio.fail_after(5):
        await transport.closing.wait()
    assert transport.written == b""


async def test_the_head_timer_runs_only_while_a_head_is_awaited() -> None:
    assert HEAD_TIMEOUT == 10  # shorter than nginx's 60 s (Settings.header_timeout says why)
    app = RecordingApp()
    protocol, _ = connect(app)
    assert protocol._head_timer is not None  # from the connection's opening
    protocol.data_received(head(3))
    assert protocol._head_timer is None  # the body has the read timeout of the app (BodyReader)
    protocol.data_received(b"abc")
    await app.done.wait()
    assert protocol._head_timer is None  # between requests, uvicorn's keep-alive timeout applies
    protocol.app = RecordingApp()
    protocol.data_received(b"PATCH /files/x HTTP/1.1\r\n")
    assert protocol._head_timer is not None  # the next head has begun


async def test_a_request_that_does_not_parse_gets_the_tables_400() -> None:
    app = RecordingApp()
    protocol, transport = connect(app)
    protocol.data_received(b"PATCH /files/x HTTP/1.1\r\nBad Header\r\n\r\n")
    assert transport.written.startswith(b"HTTP/1.1 400 ")
    assert b"\r\nTus-Resumable: 1.0.0\r\n" in transport.written
    assert transport.written.endswith(b"\r\n\r\nERR_MALFORMED_REQUEST: the request is not valid HTTP/1.1\n")
    assert transport.eof  # lingering: what the client still sends is read and dropped
    protocol.data_received(b"more of whatever it was")
    assert app.messages == []


class AnswerWhenTold:
    """Answers 204 without reading the body, once `go` is set (413 stands for any early answer)."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.go = anyio.Event()
        self.done = anyio.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.go.wait()
        await send({"type": "http.response.start", "status": self.status, "headers": [(b"content-length", b"0")]})
        await send({"type": "http.response.body", "body": b""})
        self.done.set()


async def test_a_request_sent_before_a_half_close_is_answered_then_the_connection_closes() -> None:
    app = AnswerWhenTold()
    protocol, transport = connect(app)
    protocol.data_received(b"GET /files/x HTTP/1.1\r\nHost: h\r\n\r\n")
    half_close(protocol, transport)  # shutdown(SHUT_WR) right after the request, before any answer
    assert not transport.closed
    app.go.set()
    await app.done.wait()
    assert transport.written.startswith(b"HTTP/1.1 204 ")
    assert b"\r\nconnection: close\r\n" in transport.written
    assert transport.closed
    # A body that will never be whole, and a connection between requests, close as before.
    unfinished_app = RecordingApp()
    unfinished, unfinished_transport = connect(unfinished_app)
    unfinished.data_received(head(10) + b"abc")
    half_close(unfinished, unfinished_transport)
    await unfinished_app.done.wait()
    assert unfinished_app.messages[-1] == {"type": "http.disconnect"}


async def test_an_early_answer_to_a_closing_client_closes_lingering() -> None:
    app = AnswerWhenTold(413)
    app.go.set()
    protocol, transport = connect(app)
    protocol.data_received(head(1 << 20).replace(b"Host: h", b"Host: h\r\nConnection: close") + b"a" * 1000)
    await app.done.wait()
    assert transport.written.startswith(b"HTTP/1.1 413 ")
    assert transport.eof  # a FIN after the response, not a reset for the body still on its way
    assert not transport.closed
    protocol.data_received(b"a" * 4096)  # read and dropped
    half_close(protocol, transport)  # the client is done: now the connection closes
    assert transport.closed


async def test_at_the_limit_the_connections_idle_longest_are_closed_first() -> None:
    state, limit = ServerState(), 4  # uvicorn's limit: 3 connections served, the 4th answered 503
    busy_app = AnswerWhenTold()
    busy, busy_transport = connect(busy_app, server_state=state, limit=limit)
    _, silent_transport = connect(RecordingApp(), server_state=state, limit=limit)
    partial, partial_transport = connect(RecordingApp(), server_state=state, limit=limit)
    busy.data_received(b"GET /a HTTP/1.1\r\nHost: h\r\n\r\n")  # inside a request: never reclaimed
    partial.data_received(b"G")  # one byte of a head
    connect(RecordingApp(), server_state=state, limit=limit)  # over the limit: the oldest idle one goes
    assert silent_transport.closed
    assert silent_transport.written == b""
    assert not partial_transport.closed
    newest_app = RecordingApp()
    newest, newest_transport = connect(newest_app, server_state=state, limit=limit)
    assert partial_transport.closed
    assert partial_transport.written.startswith(b"HTTP/1.1 503 ")
    assert b"ERR_SERVICE_UNAVAILABLE" in partial_transport.written
    newest.data_received(head(1) + b"x")
    await newest_app.done.wait()
    assert newest_transport.written.startswith(b"HTTP/1.1 204 ")
    assert not busy_transport.closed


async def test_a_connection_kept_alive_after_its_response_is_idle_from_then_on() -> None:
    state, limit = ServerState(), 3
    first_app = RecordingApp()
    first, first_transport = connect(first_app, server_state=state, limit=limit)
    _, second_transport = connect(RecordingApp(), server_state=state, limit=limit)
    first.data_received(head(1) + b"x")
    await first_app.done.wait()  # the first is idle again, but since after the second
    connect(RecordingApp(), server_state=state, limit=limit)
    assert second_transport.closed
    assert not first_transport.closed

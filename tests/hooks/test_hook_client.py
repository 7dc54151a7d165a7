"""The HTTP hooks' client (tusserver/coordination/hooks/client.py) against raw TCP servers on free loopback ports.

Each server is scripted byte for byte, to send what a well-behaved receiver would not: chunked answers cut
anywhere, answers past the cap, garbage, two answers to one request, a close at the worst moment. The server
records every connection and request, so each test checks what went over the wire (a reused connection, a
dropped one), and every wait is on an event of the server's or the client's, never a sleep. Each test runs on
asyncio and on uvloop (the server runs on either).
"""

from __future__ import annotations

import base64
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import pytest
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.tls import TLSListener

from tests.server_process import free_ports
from tests.tls import self_signed_certificate
from tusserver.coordination.hooks.client import (
    ConnectError,
    HTTPClient,
    LocalProtocolError,
    RemoteProtocolError,
    Response,
)
from tusserver.coordination.hooks.http import _checked_url

pytestmark = pytest.mark.anyio
BOUND = 5.0  # seconds any step may take here


@pytest.fixture(params=[False, True], ids=["asyncio", "uvloop"])
def anyio_backend(request: pytest.FixtureRequest) -> tuple[str, dict[str, Any]]:
    return "asyncio", {"use_uvloop": request.param}


def ok(body: bytes = b"{}", *extra: bytes) -> bytes:
    return b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n%s\r\n%s" % (len(body), b"".join(extra), body)


@dataclass
class Request:
    connection: int
    head: bytes
    body: bytes


@dataclass
class Say:
    data: bytes
    then_close: bool = False
    bytewise: bool = False  # one send per byte: the client's reads end anywhere


Script = Callable[[Request], Awaitable[Say | None]]  # None: close the connection without answering


async def answer_ok(request: Request) -> Say:
    return Say(ok())


@dataclass
class RawServer:
    """Reads HTTP/1.1 requests (Content-Length bodies) and answers what `script` returns."""

    script: Script = answer_ok
    requests: list[Request] = field(default_factory=list)
    connections: int = 0
    ended: dict[int, anyio.Event] = field(default_factory=dict)  # set once the client closed or dropped it
    url: str = ""

    async def handle(self, stream: SocketStream) -> None:
        number, self.connections = self.connections, self.connections + 1
        self.ended[number] = anyio.Event()
        buffer = b""
        try:
            while True:
                while b"\r\n\r\n" not in buffer:
                    buffer += await stream.receive()
                head, _, buffer = buffer.partition(b"\r\n\r\n")
                length = content_length(head)
                while len(buffer) < length:
                    buffer += await stream.receive()
                request = Request(number, head, buffer[:length])
                buffer = buffer[length:]
                self.requests.append(request)
                say = await self.script(request)
                if say is None:
                    break
                for piece in [say.data[i : i + 1] for i in range(len(say.data))] if say.bytewise else [say.data]:
                    await stream.send(piece)
                if say.then_close:
                    break
        except (anyio.EndOfStream, anyio.BrokenResourceError, ConnectionError, ssl.SSLError):
            pass
        finally:
            await stream.aclose()
            self.ended[number].set()

    async def client_closed(self, connection: int) -> None:
        with anyio.fail_after(BOUND):
            await self.ended[connection].wait()


def content_length(head: bytes) -> int:
    [value] = [line[15:] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")]
    return int(value)


@asynccontextmanager
async def running(server: RawServer, tls: ssl.SSLContext | None = None) -> AsyncIterator[RawServer]:
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1")
    port = listener.extra(SocketAttribute.local_port)
    served: Any = TLSListener(listener, tls, standard_compatible=False) if tls else listener
    server.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/hooks?token=s3cret"
    async with served, anyio.create_task_group() as group:
        group.start_soon(served.serve, server.handle)
        try:
            yield server
        finally:
            group.cancel_scope.cancel()


@pytest.fixture
async def server() -> AsyncIterator[RawServer]:
    async with running(RawServer()) as started:
        yield started


@asynccontextmanager
async def client_of(url: str, **options: Any) -> AsyncIterator[HTTPClient]:
    settings = {"timeout": BOUND, "max_body": 1000} | options
    client = HTTPClient(_checked_url(url)[0], headers=[("Content-Type", "application/json")], **settings)
    try:
        yield client
    finally:
        await client.aclose()


async def post(client: HTTPClient, body: bytes = b'{"Type": "post-finish"}') -> Response:
    with anyio.fail_after(BOUND):
        return await client.post(body, [("Idempotency-Key", "evt-1")])


# --- the request and keep-alive -------------------------------------------------------------------------------


async def test_the_request_is_plain_http_1_1_on_one_kept_alive_connection(server: RawServer) -> None:
    async with client_of(server.url) as client:
        for _ in range(3):
            assert await post(client) == Response(200, b"{}", truncated=False)
    assert server.connections == 1
    assert server.requests[0].head.split(b"\r\n") == [
        b"POST /hooks?token=s3cret HTTP/1.1", b"Host: " + server.url.split("/")[2].encode(), b"User-Agent: tusserver",
        b"Content-Type: application/json", b"Idempotency-Key: evt-1", b"Content-Length: 23",
    ]  # fmt: skip
    assert server.requests[0].body == b'{"Type": "post-finish"}'
    await server.client_closed(0)  # aclose closed the idle connection


async def test_url_credentials_are_sent_as_basic_auth(server: RawServer) -> None:
    async with client_of(server.url.replace("://", "://hook%40us:p%3Ass@")) as client:
        await post(client)
    assert b"Authorization: Basic " + base64.b64encode(b"hook@us:p:ss") in server.requests[0].head.split(b"\r\n")


async def test_the_idle_connection_answered_last_is_reused_first(server: RawServer) -> None:
    first_in, release_first = anyio.Event(), anyio.Event()

    async def hold_the_first(request: Request) -> Say:
        if not first_in.is_set():
            first_in.set()
            await release_first.wait()
        return Say(ok())

    server.script = hold_the_first
    async with client_of(server.url) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(post, client)  # held, on connection A
            with anyio.fail_after(BOUND):
                await first_in.wait()
            await post(client)  # on a second connection, B, idle from here on
            release_first.set()  # A comes back to the pool after B
        await post(client)
    assert [request.connection for request in server.requests] == [0, 1, 0]


async def test_requests_in_flight_and_connections_are_capped(server: RawServer) -> None:
    cap, in_flight, most = 4, 0, 0
    full = anyio.Event()

    async def held_until_full(request: Request) -> Say:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        if in_flight == cap:
            full.set()
        await full.wait()
        in_flight -= 1
        return Say(ok())

    server.script = held_until_full
    async with client_of(server.url, connections=cap) as client, anyio.create_task_group() as group:
        for _ in range(3 * cap):
            group.start_soon(post, client)
    assert (most, server.connections, len(server.requests)) == (cap, cap, 3 * cap)


async def test_a_header_that_would_split_the_request_is_refused(server: RawServer) -> None:
    async with client_of(server.url) as client:
        with pytest.raises(LocalProtocolError):
            await client.post(b"", [("Cookie", "a=1\r\nX-Smuggled: yes")])
    assert server.requests == []


# --- answers --------------------------------------------------------------------------------------------------


async def test_a_chunked_answer_cut_anywhere_is_read_whole_and_the_connection_kept(server: RawServer) -> None:
    wire = b'HTTP/1.1 201 Created\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"Sto\r\nc\r\npUpload": 1}\r\n0\r\n\r\n'

    async def dripped(request: Request) -> Say:
        return Say(wire, bytewise=True)

    server.script = dripped
    async with client_of(server.url) as client:
        assert await post(client) == Response(201, b'{"StopUpload": 1}', truncated=False)
        assert await post(client) == Response(201, b'{"StopUpload": 1}', truncated=False)
    assert server.connections == 1


async def test_an_answer_ending_with_the_connection_is_taken_and_not_reused(server: RawServer) -> None:
    async def until_close(request: Request) -> Say:
        return Say(b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n{}", then_close=True)

    server.script = until_close
    async with client_of(server.url) as client:
        assert await post(client) == Response(200, b"{}", truncated=False)
        assert await post(client) == Response(200, b"{}", truncated=False)
    assert server.connections == 2


async def test_an_interim_100_continue_is_skipped(server: RawServer) -> None:
    async def continued(request: Request) -> Say:
        return Say(b"HTTP/1.1 100 Continue\r\n\r\n" + ok(b"[]"))

    server.script = continued
    async with client_of(server.url) as client:
        assert await post(client) == Response(200, b"[]", truncated=False)


async def test_an_answer_at_the_cap_is_whole_one_past_it_is_cut_and_dropped(server: RawServer) -> None:
    sizes = iter([1000, 1001, 10])

    async def sized(request: Request) -> Say:
        return Say(ok(b"x" * next(sizes)))

    server.script = sized
    async with client_of(server.url, max_body=1000) as client:
        assert await post(client) == Response(200, b"x" * 1000, truncated=False)
        assert await post(client) == Response(200, b"x" * 1000, truncated=True)
        await server.client_closed(0)  # not read to its end: the connection is out of step, dropped
        assert await post(client) == Response(200, b"x" * 10, truncated=False)
    assert [request.connection for request in server.requests] == [0, 0, 1]


@pytest.mark.parametrize(
    "wire",
    [b"HELLO\r\n\r\n", b"HTTP/1.1 2OO OK\r\n\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"],
    ids=["not-http", "bad-status", "bad-length"],
)
async def test_garbage_is_a_protocol_error_and_the_connection_dropped(server: RawServer, wire: bytes) -> None:
    async def garbage(request: Request) -> Say:
        return Say(wire)

    server.script = garbage
    async with client_of(server.url) as client:
        with pytest.raises(RemoteProtocolError, match="malformed answer"):
            await post(client)
        await server.client_closed(0)


async def test_a_second_answer_to_one_request_drops_the_connection(server: RawServer) -> None:
    async def twice(request: Request) -> Say:
        return Say(ok() + ok())

    server.script = twice
    async with client_of(server.url) as client:
        assert await post(client) == Response(200, b"{}", truncated=False)
        await server.client_closed(0)
        await post(client)
    assert server.connections == 2


async def test_an_answer_cut_short_is_a_protocol_error(server: RawServer) -> None:
    async def short(request: Request) -> Say:
        return Say(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n{}", then_close=True)

    server.script = short
    async with client_of(server.url) as client:
        with pytest.raises(RemoteProtocolError, match="in the middle of the answer"):
            await post(client)
    assert len(server.requests) == 1  # some answer came: the request was handled, not sent again


# --- closed connections, timeouts -----------------------------------------------------------------------------


async def test_an_idle_connection_the_receiver_closed_is_not_used(server: RawServer) -> None:
    async def then_close(request: Request) -> Say:
        return Say(ok(), then_close=True)  # no Connection: close, as when a keep-alive timeout ends it

    server.script = then_close
    async with client_of(server.url) as client:
        await post(client)
        [idle] = client._idle
        with anyio.fail_after(BOUND):
            await idle.lost  # the client saw the close while the connection was idle
        await post(client)
    assert [request.connection for request in server.requests] == [0, 1]


async def test_a_request_crossing_the_receivers_close_is_sent_once_more_at_once(server: RawServer) -> None:
    async def close_second(request: Request) -> Say | None:
        return None if len(server.requests) == 2 else Say(ok())  # closed as if idle, the request unread

    server.script = close_second
    async with client_of(server.url) as client:
        await post(client)
        assert await post(client) == Response(200, b"{}", truncated=False)
    assert [request.connection for request in server.requests] == [0, 0, 1]


async def test_the_stale_retry_is_once_and_a_new_connection_closed_unanswered_fails(server: RawServer) -> None:
    async def close_all_but_first(request: Request) -> Say | None:
        return Say(ok()) if len(server.requests) == 1 else None

    server.script = close_all_but_first
    async with client_of(server.url) as client:
        await post(client)
        with pytest.raises(RemoteProtocolError, match="closed before any answer"):
            await post(client)
        with pytest.raises(RemoteProtocolError, match="closed before any answer"):
            await post(client)  # a new connection, closed unanswered: not tried again here
    assert [request.connection for request in server.requests] == [0, 0, 1, 2]


async def test_a_slow_answer_times_out_as_a_whole_and_the_connection_is_dropped(server: RawServer) -> None:
    async def byte_by_byte(request: Request) -> Say:
        return Say(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{")  # and the "}" never

    server.script = byte_by_byte
    async with client_of(server.url, timeout=0.3) as client:
        with anyio.fail_after(BOUND), pytest.raises(TimeoutError):
            await client.post(b"{}")
        await server.client_closed(0)


async def test_a_cancelled_request_frees_its_slot_and_drops_its_connection(server: RawServer) -> None:
    arrived, never = anyio.Event(), anyio.Event()

    async def hang_first(request: Request) -> Say:
        if request.connection == 0:
            arrived.set()
            await never.wait()
        return Say(ok())

    server.script = hang_first
    async with client_of(server.url, connections=1) as client:
        async with anyio.create_task_group() as group:
            group.start_soon(post, client)
            with anyio.fail_after(BOUND):
                await arrived.wait()
            group.cancel_scope.cancel()
        assert await post(client) == Response(200, b"{}", truncated=False)  # the one slot is free again
    assert [request.connection for request in server.requests] == [0, 1]  # the answer due on 0 never read


async def test_a_closed_port_is_a_connect_error() -> None:
    [port] = free_ports(1)
    async with client_of(f"http://127.0.0.1:{port}/") as client:
        with pytest.raises(ConnectError, match=r"111|refused"):
            await post(client)


# --- TLS ------------------------------------------------------------------------------------------------------


async def test_tls_is_verified_against_a_private_ca_and_the_host_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cert, key = self_signed_certificate(tmp_path)  # for IP 127.0.0.1 only
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    async with running(RawServer(), tls) as server:
        async with client_of(server.url) as client:
            with pytest.raises(ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
                await post(client)
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        async with client_of(server.url.replace("127.0.0.1", "localhost")) as client:
            with pytest.raises(ConnectError, match=r"CERTIFICATE_VERIFY_FAILED.*(mismatch|match)"):
                await post(client)
        async with client_of(server.url) as client:
            assert await post(client) == Response(200, b"{}", truncated=False)
            assert await post(client) == Response(200, b"{}", truncated=False)
        assert server.connections == 1  # kept alive (the refused handshakes never reach the handler)

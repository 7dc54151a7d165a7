"""PieceProtocol (tusserver/_uvicorn.py) on uvicorn's real HTTP machinery, fed bytes as a socket would.

The protocol only changes how body pieces are gathered, so every test checks what the app receives:
exact `bytes`, the pieces in order, nothing lost or doubled, whichever way they arrive.
"""

from __future__ import annotations

from typing import Any

import anyio
import pytest
import uvicorn
from starlette.types import Message, Receive, Scope, Send
from uvicorn.server import ServerState

from tusserver._uvicorn import PieceProtocol
from tusserver.servers import _uvicorn_protocol

pytestmark = pytest.mark.anyio


class FakeTransport:
    """Just enough of an asyncio transport for uvicorn's protocol; records what the server writes."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 1080)}.get(name, default)

    def write(self, data: bytes) -> None:
        self.written += data

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

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


def connect(app: RecordingApp) -> tuple[PieceProtocol, FakeTransport]:
    config = uvicorn.Config(app=app, lifespan="off", http=PieceProtocol, log_level="warning")
    protocol = PieceProtocol(config=config, server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)  # type: ignore[arg-type]  # a duck-typed transport
    return protocol, transport


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
    protocol, _ = connect(app)
    data = bytes(range(256)) * 1024
    protocol.data_received(head(len(data)) + data)
    await app.done.wait()
    assert bodies(app) == [(data, False)]


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


def test_the_cli_runs_uvicorn_with_piece_protocol() -> None:
    assert _uvicorn_protocol() is PieceProtocol

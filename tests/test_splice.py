"""Large bodies spliced into files, or read straight into buffers, on uvicorn (tusserver/serving/_uvicorn.py,
tusserver/serving/_splice.py, `BodyReader.splice_into` and `BodyReader.read_into`), on a real uvicorn server in
this process, over real sockets.

The app splices each request's body into a file of its own (or reads it into a buffer, writing each filled
buffer to the file: every test runs both ways) and records how it ended. Each test
checks the bytes stored against the bytes sent, how the body ended, and what became of the
connection: kept alive when the body was complete (the parser starts afresh), closed after the
response when it was not (where the next request would start is unknown). Where a test sends the
body only once the app is waiting for it, the bytes can only have come through the kernel's path:
nothing was read and parsed before.
"""

from __future__ import annotations

import asyncio  # noqa: TID251  # a loop callback outside any task, as uvicorn calls connection_lost
import contextvars
import errno
import hashlib
import mmap
import os
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import anyio
import pytest
import uvicorn
import xxhash
from anyio.abc import SocketStream
from starlette.types import ASGIApp, Receive, Scope, Send

from tusserver.pipeline.body import BodyReader, read_into_of, splice_of
from tusserver.protocol.rules import BodyEnd
from tusserver.serving import _uvicorn
from tusserver.serving._splice import BATCH, Splicer
from tusserver.serving._uvicorn import SPLICE_MIN, PieceProtocol

pytestmark = pytest.mark.anyio

BIG = 3 * SPLICE_MIN + 12345  # several steps, the last one short
READ_BUFFER = 128 * 1024  # read_into's buffer: a step per buffer, as a splice step is (a divisor of SPLICE_MIN)
SERVERS: dict[int, uvicorn.Server] = {}  # by port, while `serving`


@dataclass
class Outcome:
    spliced: int  # bytes splice_into moved
    stored: bytes
    end: BodyEnd | None
    error: str | None


class SplicingApp:
    """Splices each body into `directory/<n>` (or /dev/full for /full) and answers 204, or 500 if writing failed.

    With `way` "read_into", each body the server offers `read_into` for is read into a buffer of `buffer_size`
    bytes instead, each filled buffer written to the file; `spliced` then counts what read_into took.
    """

    way = "splice"  # set for every test by the `way` fixture
    buffer_size = READ_BUFFER

    def __init__(self, directory: Path, *, limit: int | None = None, read_timeout: float = 30.0) -> None:
        self.directory = directory
        self.limit = limit
        self.read_timeout = read_timeout
        self.outcomes: list[Outcome] = []
        self.tapped: list[bool] = []  # whether each body's tap hashed exactly the bytes stored
        self.readers: list[BodyReader] = []
        self.waiting = anyio.Event()  # set when a request's first splice step is about to wait for bytes
        self.done = anyio.Event()
        self._awaited: tuple[int, anyio.Event] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        reader = BodyReader(
            receive,
            limit=self.limit,
            read_timeout=self.read_timeout,
            splice=splice_of(scope),
            read_into=read_into_of(scope),
        )
        self.readers.append(reader)
        hasher = hashlib.sha256()  # on a worker thread: the path of the slow algorithms
        reader.tap(hasher, offload=True)
        path = Path("/dev/full") if scope["path"] == "/full" else self.directory / str(len(self.readers))
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)  # readable: the tap hashes spliced bytes
        spliced, error = 0, None
        try:
            if self.way == "splice":
                spliced = await reader.splice_into(fd, 0, self._before_write)
            elif read_into_of(scope) is not None:  # offered as splicing is (without it, see test_body.py)
                spliced = await self._read_into(reader, fd)
            async for chunk in reader:
                os.write(fd, chunk)
        except OSError as exc:
            error = exc.strerror
        finally:
            os.close(fd)
        stored = b"" if path.name == "full" else path.read_bytes()
        self.outcomes.append(Outcome(spliced, stored, reader.end, error))
        self.tapped.append(hasher.digest() == hashlib.sha256(stored).digest())
        await send({"type": "http.response.start", "status": 500 if error else 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})
        self.done.set()

    async def _read_into(self, reader: BodyReader, fd: int) -> int:
        buffer, total = memoryview(bytearray(self.buffer_size)), 0
        while True:
            self._before_write(total, min(len(buffer), SPLICE_MIN))
            count = await reader.read_into(buffer)
            if count == 0:
                return total
            total += count
            written = buffer[:count]
            while written:
                written = written[os.write(fd, written) :]

    async def spliced(self, count: int) -> None:
        """Return once a step starts with `count` bytes moved before it."""
        await self.expect(count).wait()

    def expect(self, count: int) -> anyio.Event:
        """An event set when a step starts with `count` bytes moved before it."""
        self._awaited = (count, anyio.Event())
        return self._awaited[1]

    def _before_write(self, position: int, size: int) -> None:
        assert size <= SPLICE_MIN
        self.waiting.set()
        if self._awaited is not None and position >= self._awaited[0]:
            self._awaited[1].set()


@pytest.fixture(autouse=True, params=["splice", "read_into"])
def way(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the body spliced into a file and read into buffers."""
    monkeypatch.setattr(SplicingApp, "way", request.param)
    return str(request.param)


@asynccontextmanager
async def serving(app: ASGIApp) -> AsyncIterator[int]:
    """A uvicorn server with PieceProtocol running `app` on a free port of 127.0.0.1."""
    config = uvicorn.Config(app=app, http=PieceProtocol, lifespan="off", log_level="warning")
    server = uvicorn.Server(config)
    with socket.create_server(("127.0.0.1", 0)) as listener, anyio.fail_after(30):
        port = listener.getsockname()[1]
        SERVERS[port] = server
        async with anyio.create_task_group() as group:
            group.start_soon(server.serve, [listener])
            try:
                yield port
            finally:
                server.should_exit = True
                del SERVERS[port]


def head(length: int, *, target: str = "/upload", extra: str = "") -> bytes:
    return f"PATCH {target} HTTP/1.1\r\nHost: h\r\nContent-Length: {length}\r\n{extra}\r\n".encode()


async def read_responses(stream: SocketStream, count: int) -> list[bytes]:
    """The heads of `count` responses without bodies (204 and 500 here carry none)."""
    data = b""
    while data.count(b"\r\n\r\n") < count:
        data += await stream.receive()
    return data.split(b"\r\n\r\n")[:count]


async def send_once_splicing(app: SplicingApp, stream: SocketStream, data: bytes, *, target: str = "/upload") -> None:
    """Send the head of a BIG body, wait until the app's first step waits for it, then send `data`."""
    await stream.send(head(BIG, target=target))
    await app.waiting.wait()
    await stream.send(data)


async def closing_response(stream: SocketStream) -> bytes:
    """The next response, which must say that the connection closes, and close it."""
    [response] = await read_responses(stream, 1)
    assert b"connection: close" in response
    assert await closed_by_server(stream)
    return response


async def closed_by_server(stream: SocketStream) -> bool:
    try:
        await stream.receive()
    except (anyio.EndOfStream, anyio.BrokenResourceError):
        return True
    return False


async def test_a_large_body_moves_through_the_kernel_and_the_connection_stays_open(tmp_path: Path) -> None:
    await large_body_then_a_small_one(tmp_path)


async def large_body_then_a_small_one(tmp_path: Path) -> None:
    """A large body, spliced, then a small one on the same connection; each body's tap must equal what was stored."""
    app = SplicingApp(tmp_path)
    body = os.urandom(BIG)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, body)
        [response] = await read_responses(stream, 1)
        assert response.startswith(b"HTTP/1.1 204 ")
        assert b"connection: close" not in response
        # The same connection serves the next request: the parser did not expect the body any more.
        await stream.send(head(3, target="/small") + b"abc")
        [response] = await read_responses(stream, 1)
        assert response.startswith(b"HTTP/1.1 204 ")
    assert app.outcomes[0] == Outcome(BIG, body, BodyEnd.COMPLETE, None)
    assert app.outcomes[1] == Outcome(0, b"abc", BodyEnd.COMPLETE, None)  # small bodies are not offered splicing
    assert app.tapped == [True, True]


async def test_a_tapped_body_is_still_spliced_and_hashed_as_stored(tmp_path: Path) -> None:
    """A body whose bytes must be hashed (a declared digest, an Upload-Checksum) keeps the kernel's path: what a
    splice moved is hashed from the file, what read_into read from the buffer, in order, across several calls
    (`most` cuts the splice as a checkpoint does), and with a second tap hashed on the event loop."""
    body = os.urandom(BIG)
    fd = os.open(tmp_path / "file", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        first, second = hashlib.sha256(), xxhash.xxh3_128()
        outcome: dict[str, int] = {}

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            reader = BodyReader(
                receive, limit=None, read_timeout=30.0, splice=splice_of(scope), read_into=read_into_of(scope)
            )
            reader.tap(first, offload=True)
            reader.tap(second, offload=False)
            if SplicingApp.way == "splice":
                while moved := await reader.splice_into(fd, 0, lambda _position, _size: None, most=SPLICE_MIN + 7):
                    outcome["calls"] = outcome.get("calls", 0) + 1
                    outcome["moved"] = outcome.get("moved", 0) + moved
            else:
                buffer = memoryview(bytearray(SPLICE_MIN + 7))
                while count := await reader.read_into(buffer):
                    os.write(fd, buffer[:count])
                    outcome["calls"] = outcome.get("calls", 0) + 1
                    outcome["moved"] = outcome.get("moved", 0) + count
            await send({"type": "http.response.start", "status": 204, "headers": []})
            await send({"type": "http.response.body", "body": b""})

        async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(head(BIG) + body)
            [response] = await read_responses(stream, 1)
    finally:
        os.close(fd)
    assert response.startswith(b"HTTP/1.1 204 ")
    assert outcome == {"calls": 4, "moved": BIG}  # every byte came the fast way, in several calls
    assert (tmp_path / "file").read_bytes() == body
    assert first.digest() == hashlib.sha256(body).digest()
    assert second.digest() == xxhash.xxh3_128(body).digest()


async def test_requests_sent_right_after_spliced_bodies_are_parsed_from_their_first_byte(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path)
    bodies = [os.urandom(BIG), os.urandom(SPLICE_MIN), b"tail"]
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        # One stream of three requests, as a pipelining client sends it: each head follows the last body byte.
        await stream.send(b"".join(head(len(body)) + body for body in bodies))
        responses = await read_responses(stream, 3)
    assert [response.split(b"\r\n")[0] for response in responses] == [b"HTTP/1.1 204 No Content"] * 3
    assert [(outcome.stored, outcome.end) for outcome in app.outcomes] == [(body, BodyEnd.COMPLETE) for body in bodies]
    assert [outcome.spliced for outcome in app.outcomes] == [BIG, SPLICE_MIN, 0]


async def test_a_buffer_larger_than_the_body_takes_the_body_and_leaves_the_next_request(tmp_path: Path) -> None:
    # One read_into call then spans many socket reads, and must stop at the body's last byte.
    app = SplicingApp(tmp_path)
    app.buffer_size = 2 * BIG
    bodies = [os.urandom(BIG), b"next"]
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, bodies[0] + head(4) + bodies[1])
        responses = await read_responses(stream, 2)
    assert [response.split(b"\r\n")[0] for response in responses] == [b"HTTP/1.1 204 No Content"] * 2
    assert [(outcome.stored, outcome.end) for outcome in app.outcomes] == [(body, BodyEnd.COMPLETE) for body in bodies]


async def test_expect_100_continue_is_answered_before_the_body_is_spliced(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path)
    body = os.urandom(BIG)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head(BIG, extra="Expect: 100-continue\r\n"))
        [interim] = await read_responses(stream, 1)
        assert interim == b"HTTP/1.1 100 Continue"
        await stream.send(body)
        [response] = await read_responses(stream, 1)
        assert response.startswith(b"HTTP/1.1 204 ")
    assert app.outcomes == [Outcome(BIG, body, BodyEnd.COMPLETE, None)]


async def test_a_tapped_body_is_hashed_from_reads_where_files_cannot_be_mapped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On a file system without mmap, what a splice moved is read back to be hashed, a window at a time."""

    def no_mapping(*args: object, **kwargs: object) -> None:
        raise OSError(errno.ENODEV, "no mmap here")

    monkeypatch.setattr(mmap, "mmap", no_mapping)
    await large_body_then_a_small_one(tmp_path)


async def test_a_client_that_leaves_mid_body_keeps_every_byte_it_sent(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path)
    sent = os.urandom(SPLICE_MIN + 4321)
    async with serving(app) as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await send_once_splicing(app, stream, sent)
        await app.done.wait()
    assert app.outcomes == [Outcome(len(sent), sent, BodyEnd.DISCONNECTED, None)]
    assert app.tapped == [True]


async def test_a_body_past_the_limit_stops_there_and_the_connection_closes(tmp_path: Path) -> None:
    limit = 2 * SPLICE_MIN + 1
    app = SplicingApp(tmp_path, limit=limit)
    body = os.urandom(BIG)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, body)
        await closing_response(stream)  # the rest of the body is still on its way
    assert app.outcomes == [Outcome(limit, body[:limit], BodyEnd.LIMIT_EXCEEDED, None)]


async def test_a_client_still_sending_after_the_body_ended_gets_the_response_and_a_clean_close(
    tmp_path: Path,
) -> None:
    # Closed at once, a socket with bytes unread sends a reset: the client's next send or read fails.
    limit = SPLICE_MIN + 1
    app = SplicingApp(tmp_path, limit=limit)
    body = os.urandom(BIG)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, body[: limit + 1000])
        [response] = await read_responses(stream, 1)
        assert b"connection: close" in response
        await stream.send(body[limit + 1000 :])  # read and dropped by the server, not refused
        await stream.send_eof()
        with pytest.raises(anyio.EndOfStream):
            await stream.receive()
    assert app.outcomes == [Outcome(limit, body[:limit], BodyEnd.LIMIT_EXCEEDED, None)]


async def test_a_client_that_never_closes_is_closed_after_the_linger_timeout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(PieceProtocol, "linger_timeout", 0.3)
    closed = anyio.Event()
    connection_lost = PieceProtocol.connection_lost

    def observed(protocol: PieceProtocol, exc: Exception | None) -> None:
        connection_lost(protocol, exc)
        closed.set()

    monkeypatch.setattr(PieceProtocol, "connection_lost", observed)
    app = SplicingApp(tmp_path, read_timeout=0.2)
    sent = os.urandom(SPLICE_MIN + 99)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, sent)  # then nothing more: the read timeout ends the body
        await read_responses(stream, 1)
        await stream.send(b"late bytes")
        with anyio.fail_after(3):  # well before uvicorn's keep-alive timeout (5 s) would close it
            await closed.wait()  # the client keeps its side open; the server closes its own
    assert app.outcomes == [Outcome(len(sent), sent, BodyEnd.TIMEOUT, None)]


async def test_a_stalled_body_times_out_and_the_connection_closes(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path, read_timeout=0.3)
    sent = os.urandom(SPLICE_MIN + 99)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, sent)  # then nothing more, with the connection open
        await closing_response(stream)
    assert app.outcomes == [Outcome(len(sent), sent, BodyEnd.TIMEOUT, None)]


async def test_the_read_timeout_counts_from_the_last_bytes_not_from_the_start_of_the_body(tmp_path: Path) -> None:
    # One cancel scope times the whole spliced body; its deadline must move on with every step.
    app = SplicingApp(tmp_path, read_timeout=1.0)
    parts = [os.urandom(SPLICE_MIN // 2) for _ in range(4)]
    body = b"".join(parts)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head(len(body)))
        for sent, part in enumerate(parts, start=1):
            moved = app.expect(sent * len(part))
            await stream.send(part)
            if sent < len(parts):
                await moved.wait()
                await anyio.sleep(0.4)  # a pause shorter than the timeout; all of them longer
        [response] = await read_responses(stream, 1)
        assert response.startswith(b"HTTP/1.1 204 ")
    assert app.outcomes == [Outcome(len(body), body, BodyEnd.COMPLETE, None)]


async def test_stop_ends_a_body_waiting_for_bytes(tmp_path: Path) -> None:
    # What a lock-release request does to the PATCH holding the lock (tusserver/coordination/locking.py).
    app = SplicingApp(tmp_path)
    sent = os.urandom(2 * SPLICE_MIN)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, sent)
        await app.spliced(len(sent))  # the server has moved what was sent; its next step waits
        app.readers[0].stop()
        await closing_response(stream)
    assert app.outcomes == [Outcome(len(sent), sent, BodyEnd.INTERRUPTED, None)]


async def test_close_from_a_callback_outside_any_task_wakes_a_waiting_move(tmp_path: Path) -> None:
    """uvicorn calls connection_lost, and so `Splicer.close`, from a loop callback, not a task: the waiting
    `move` must still wake (and return 0) at once, and close must not raise there."""
    client, server_side = socket.socketpair()
    with client, server_side:
        server_side.setblocking(False)
        splicer = Splicer(server_side.fileno())
        fd = os.open(tmp_path / "body", os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            loop = asyncio.get_running_loop()
            moving = loop.create_task(splicer.move(fd, SPLICE_MIN))
            await asyncio.sleep(0)  # the move waits for bytes that do not come
            # A callback in a context of its own, as uvicorn's connection_lost runs: nothing of the waiting task's.
            loop.call_soon(splicer.close, context=contextvars.Context())
            with anyio.fail_after(5):
                assert await moving == 0
        finally:
            os.close(fd)


@contextmanager
def tcp_pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    """A connected client socket and the server's side of it (non-blocking, as uvicorn keeps it)."""
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server_side, _ = listener.accept()
    with client, server_side:
        server_side.setblocking(False)
        yield client, server_side


def rcvlowat(sock: socket.socket) -> int:
    return sock.getsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT)


@contextmanager
def reading_from(sock: socket.socket) -> Iterator[Splicer]:
    """A splicer without a pipe on `sock`, closed afterwards (again: closing twice is allowed)."""
    splicer = Splicer(sock.fileno(), pipe=False)
    try:
        yield splicer
    finally:
        splicer.close()


@pytest.mark.parametrize("size", [BATCH // 2, 4 * BATCH])
async def test_read_into_waits_for_a_batch_and_gives_the_socket_back_as_it_found_it(size: int) -> None:
    """While `read_into` waits, the socket wakes it only once a batch (or the whole view) is there; `close` sets
    that back, because uvicorn reads the next request's head from the same socket."""
    with tcp_pair() as (client, server_side), reading_from(server_side) as splicer:
        loop, view = asyncio.get_running_loop(), memoryview(bytearray(size))
        reading = loop.create_task(splicer.read_into(view))
        await asyncio.sleep(0)  # it waits: nothing was sent
        assert rcvlowat(server_side) == min(size, BATCH)
        client.setblocking(False)  # sent beside the reading: more than the socket buffers may hold
        sending = loop.create_task(loop.sock_sendall(client, sent := os.urandom(size)))
        with anyio.fail_after(5):
            received = await reading
            while received < size:
                received += await splicer.read_into(view[received:])
            await sending
        assert view.tobytes() == sent
        splicer.close()
        assert rcvlowat(server_side) == 1


async def test_read_into_takes_a_slow_clients_few_bytes_without_waiting_for_a_batch() -> None:
    with tcp_pair() as (client, server_side), reading_from(server_side) as splicer:
        view = memoryview(bytearray(4 * BATCH))
        reading = asyncio.get_running_loop().create_task(splicer.read_into(view))
        await asyncio.sleep(0)  # it waits for a batch
        client.sendall(b"x" * 100)
        with anyio.fail_after(5):  # the socket alone would not wake it for 100 bytes
            assert await reading == 100
        assert view[:100] == b"x" * 100


async def test_a_shutdown_during_a_spliced_body_closes_the_connection_after_it(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path)
    body = os.urandom(BIG)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head(BIG))
        await app.waiting.wait()
        for connection in SERVERS[port].server_state.connections:
            connection.shutdown()  # what uvicorn does to each connection on SIGTERM
        await stream.send(body)
        response = await closing_response(stream)  # the complete body did not turn keep-alive back on
        assert response.startswith(b"HTTP/1.1 204 ")
    assert app.outcomes == [Outcome(BIG, body, BodyEnd.COMPLETE, None)]


async def test_small_and_chunked_bodies_arrive_as_pieces(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path)
    small = os.urandom(SPLICE_MIN - 1)
    chunked = os.urandom(SPLICE_MIN + 1)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head(len(small)) + small)
        await read_responses(stream, 1)
        chunked_head = b"PATCH /upload HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n"
        await stream.send(chunked_head + b"%x\r\n" % len(chunked) + chunked + b"\r\n0\r\n\r\n")
        await read_responses(stream, 1)
    assert app.outcomes == [
        Outcome(0, small, BodyEnd.COMPLETE, None),
        Outcome(0, chunked, BodyEnd.COMPLETE, None),
    ]


async def test_a_failed_write_fails_the_request_and_closes_the_connection(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path)
    async with serving(app) as port:
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await send_once_splicing(app, stream, os.urandom(SPLICE_MIN), target="/full")
            response = await closing_response(stream)
            assert response.startswith(b"HTTP/1.1 500 ")
        # The server goes on serving.
        async with await anyio.connect_tcp("127.0.0.1", port) as stream:
            await stream.send(head(3) + b"abc")
            [response] = await read_responses(stream, 1)
            assert response.startswith(b"HTTP/1.1 204 ")
    assert app.outcomes[0].error is not None
    assert app.outcomes[1] == Outcome(0, b"abc", BodyEnd.COMPLETE, None)


@pytest.fixture
def no_pipes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every attempt to make a pipe fails, as when the process is out of descriptors."""

    def fail(sock: int, *, pipe: bool = True) -> None:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(_uvicorn, "Splicer", fail)


@pytest.mark.usefixtures("no_pipes")
async def test_without_a_pipe_the_body_comes_in_pieces_and_the_connection_stays_open(tmp_path: Path) -> None:
    app = SplicingApp(tmp_path)
    body = os.urandom(BIG)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await send_once_splicing(app, stream, body + head(3) + b"abc")
        responses = await read_responses(stream, 2)
    assert [response.split(b"\r\n")[0] for response in responses] == [b"HTTP/1.1 204 No Content"] * 2
    assert app.outcomes == [Outcome(BIG, body, BodyEnd.COMPLETE, None), Outcome(0, b"abc", BodyEnd.COMPLETE, None)]


@pytest.mark.usefixtures("no_pipes")
async def test_without_a_pipe_a_body_past_the_limit_stops_there(tmp_path: Path) -> None:
    limit = SPLICE_MIN + 1
    app = SplicingApp(tmp_path, limit=limit)
    body = os.urandom(BIG)
    async with serving(app) as port, await anyio.connect_tcp("127.0.0.1", port) as stream:
        await stream.send(head(BIG) + body)
        [response] = await read_responses(stream, 1)
        assert response.startswith(b"HTTP/1.1 204 ")
    assert app.outcomes == [Outcome(limit, body[:limit], BodyEnd.LIMIT_EXCEEDED, None)]

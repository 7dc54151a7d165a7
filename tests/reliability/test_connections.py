"""Issue 19, defects 6 and 8: what the HTTP layer does with idle, slow, malformed and half-closed connections,
on real `tusserver` processes (uvicorn, the default server) over real sockets.

- Idle connections never lock new clients out: at `--limit-concurrency`, the connections idle longest (kept
  alive, or still without a complete head) are closed to make room, oldest first.
- `--header-timeout` (TUSSERVER_HEADER_TIMEOUT) bounds the wait for a request head; `--min-body-rate` bounds
  how slowly a body may trickle in, ending it as a read timeout does (`500 ERR_READ_TIMEOUT`, progress kept).
- A request that does not parse gets the error table's `400 ERR_MALFORMED_REQUEST`; a request sent before
  the client half-closes is answered; a `413` sent before the body was read reaches a `Connection: close`
  client whole (the server closes lingering), not as a reset.

Every wait is bounded; none hides a race: each test sends what makes the outcome certain, then polls it.
"""

from __future__ import annotations

import contextlib
import os
import resource
import select
import socket
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Protocol

import pytest

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    TUS,
    MiB,
    RawResponse,
    ServerProcess,
    connect,
    create_upload,
    head_offset,
    launch,
    patch,
    raw_request,
    read_response,
    target_of,
)

pytestmark = pytest.mark.e2e

DEFAULT_LIMIT = 1024  # Settings.limit_concurrency
OPTIONS = raw_request("OPTIONS", "/files/", TUS)


class Start(Protocol):
    def __call__(self, *flags: str, env: Mapping[str, str] | None = None) -> ServerProcess: ...


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Start]:
    """`start(*flags, env=...)`: a running uvicorn `tusserver`, stopped after the test."""
    servers: list[ServerProcess] = []

    def run(*flags: str, env: Mapping[str, str] | None = None) -> ServerProcess:
        server = launch(tmp_path / f"server{len(servers)}", *flags, env=env)
        servers.append(server)
        server.wait_ready()
        return server

    yield run
    for server in servers:
        assert server.stop() == 0, server.log()


@pytest.fixture
def many_descriptors() -> None:
    """Room in this process for over a thousand client sockets."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * DEFAULT_LIMIT:
        if hard != resource.RLIM_INFINITY and hard < 4 * DEFAULT_LIMIT:
            pytest.skip(f"needs {4 * DEFAULT_LIMIT} open files; the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (4 * DEFAULT_LIMIT, hard))


def readable_within(sock: socket.socket, seconds: float) -> bool:
    poller = select.poll()  # not select(): descriptors past 1023 here
    poller.register(sock, select.POLLIN)
    return bool(poller.poll(seconds * 1000))


def options(server: ServerProcess, sock: socket.socket | None = None) -> RawResponse:
    with contextlib.ExitStack() as stack:
        sock = sock or stack.enter_context(connect(server))
        sock.sendall(OPTIONS)
        response = read_response(sock)
    assert response is not None
    return response


def assert_closed_after(sock: socket.socket, status: int, code: bytes) -> None:
    response = read_response(sock)
    assert response is not None
    assert (response.status, response.headers["tus-resumable"]) == (status, "1.0.0")
    assert response.body.startswith(code + b": ")
    assert read_response(sock) is None  # then the server closed the connection


# --- defect 6: idle connections ----------------------------------------------------------------------------------


@pytest.mark.usefixtures("many_descriptors")
def test_connections_that_sent_one_byte_each_do_not_lock_a_new_client_out(start: Start) -> None:
    server = start()
    with contextlib.ExitStack() as stack:
        idle = [stack.enter_context(connect(server)) for _ in range(DEFAULT_LIMIT + 1)]
        for sock in idle:
            sock.sendall(b"O")  # the first byte of a head, and then nothing
        # The server accepts connections in order, so when it reads this one's head, all of those are open.
        fresh = options(server)
        assert fresh.status == 200
        # Room was made by closing the oldest (answered 503 if the server had read its byte); the newest is open.
        answer = read_response(idle[0])
        assert answer is None or answer.body.startswith(b"ERR_SERVICE_UNAVAILABLE: ")
        assert read_response(idle[0]) is None
        assert not readable_within(idle[-1], 0)


def test_connections_kept_alive_between_requests_make_room_oldest_first(start: Start) -> None:
    limit = 4
    server = start("--limit-concurrency", str(limit))
    with contextlib.ExitStack() as stack:
        kept = [stack.enter_context(connect(server)) for _ in range(limit)]
        for sock in kept:
            assert options(server, sock).status == 200  # then idle, kept alive
        assert options(server).status == 200
        assert read_response(kept[0]) is None  # closed, without an answer: nothing was asked
        assert options(server, kept[-1]).status == 200  # the most recently used is still served


def test_a_head_that_does_not_come_in_time_gets_408_after_the_header_timeout(start: Start) -> None:
    server = start(env={"TUSSERVER_HEADER_TIMEOUT": "0.5"})
    with connect(server) as slow, connect(server) as silent:
        slow.sendall(b"OPTIONS /files/ HTTP/1.1\r\n")
        started = time.monotonic()
        assert readable_within(slow, 5.0)
        assert_closed_after(slow, 408, b"ERR_HEADERS_TIMEOUT")
        assert time.monotonic() - started < 4.0  # far from the default (10 s)
        assert readable_within(silent, 5.0)
        assert silent.recv(1) == b""  # a connection that sent nothing is closed without an answer


@pytest.mark.parametrize("length", [100_000, 2 * MiB], ids=["pieces", "spliced"])
def test_a_body_slower_than_the_minimum_rate_ends_as_a_read_timeout_and_keeps_its_bytes(
    start: Start, length: int
) -> None:
    server = start("--read-timeout", "2", "--min-body-rate", "1000")
    location = create_upload(server, length)
    headers = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": str(length)}
    with connect(server) as sock:
        sock.sendall(raw_request("PATCH", target_of(location), headers))
        sent, deadline = 0, time.monotonic() + 10.0  # 100 bytes/s: 10 % of the rate; never 2 s without a byte
        while not readable_within(sock, 0.1):
            assert time.monotonic() < deadline, "the slow body was never ended"
            sock.sendall(b"x" * 10)
            sent += 10
        response = read_response(sock)
    assert response is not None
    assert response.status == 500
    assert response.body.startswith(b"ERR_READ_TIMEOUT: ")
    assert 0 < head_offset(location) <= sent  # what arrived is kept, as after a read timeout


# --- defect 8: answers from the HTTP layer -------------------------------------------------------------------------


def test_a_request_that_does_not_parse_gets_the_tables_400(start: Start) -> None:
    server = start()
    with connect(server) as sock:
        sock.sendall(b"PATCH /files/x HTTP/1.1\r\nHost: h\r\nNo colon here\r\n\r\n")
        assert_closed_after(sock, 400, b"ERR_MALFORMED_REQUEST")


def test_a_download_requested_before_the_client_half_closes_is_answered(start: Start) -> None:
    server = start()
    data = os.urandom(3 * MiB)
    location = create_upload(server, len(data))
    assert patch(location, 0, data).status_code == 204
    with connect(server) as sock:
        sock.sendall(raw_request("GET", target_of(location), TUS))
        sock.shutdown(socket.SHUT_WR)  # the client sends nothing more, and waits for the answer
        response = read_response(sock)
        assert response is not None
        assert (response.status, response.body == data) == (200, True)
        assert read_response(sock) is None


def test_a_413_before_the_body_reaches_a_closing_client_as_an_answer_not_a_reset(start: Start) -> None:
    server = start("--max-size", "1K")
    body = b"\0" * (32 * MiB)  # more than the sockets' buffers hold: the server must read it or reset
    headers = TUS | {"Upload-Length": str(len(body)), "Content-Type": "application/offset+octet-stream"}
    request = raw_request("POST", "/files/", headers | {"Content-Length": str(len(body)), "Connection": "close"})
    with connect(server) as sock:
        sock.settimeout(IO_TIMEOUT)
        sock.sendall(request + body)  # ConnectionResetError if the server closed with the body unread
        assert_closed_after(sock, 413, b"ERR_MAX_SIZE_EXCEEDED")

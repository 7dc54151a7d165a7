"""--limit-concurrency bounds the connections served at once, so memory stays bounded however many clients
connect. On uvicorn, connections that no request is using are closed to make room (tests/reliability/
test_connections.py); when every connection is inside a request, a request on one more is answered with a tus 503
(ERR_SERVICE_UNAVAILABLE, which tus clients retry; tusserver/serving/_uvicorn.py replaces uvicorn's plain one). granian
does not accept the connection until one closes."""

from __future__ import annotations

import contextlib
import select
import socket

import pytest

from tests.e2e.helpers import TUS, RawResponse, ServerProcess, connect, raw_request, read_response, wait_until

pytestmark = pytest.mark.e2e

OPTIONS = raw_request("OPTIONS", "/files/", TUS)
LIMIT = 2
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"


def options_response(sock: socket.socket) -> RawResponse:
    sock.sendall(OPTIONS)
    response = read_response(sock)
    assert response is not None
    return response


def fresh_options_status(server: ServerProcess) -> int:
    with connect(server) as sock:
        return options_response(sock).status


def answered_within(sock: socket.socket, seconds: float) -> bool:
    readable, _, _ = select.select([sock], [], [], seconds)
    return bool(readable)


def start_unfinished_upload(sock: socket.socket) -> None:
    """A creation-with-upload POST whose body never comes: once the server asks for the body (100 Continue),
    the request is in flight and its connection busy until the read timeout."""
    headers = TUS | {"Upload-Length": "10", "Content-Type": "application/offset+octet-stream"}
    sock.sendall(raw_request("POST", "/files/", headers | {"Content-Length": "10", "Expect": "100-continue"}))
    received = b""
    while len(received) < len(CONTINUE) and (piece := sock.recv(len(CONTINUE) - len(received))):
        received += piece
    assert received == CONTINUE


@pytest.mark.parametrize("server", [("--limit-concurrency", str(LIMIT))], indirect=True)
def test_connections_past_the_limit_are_not_served(server: ServerProcess, asgi_server: str) -> None:
    with contextlib.ExitStack() as sockets:
        held = [sockets.enter_context(connect(server)) for _ in range(LIMIT)]
        for sock in held:
            start_unfinished_upload(sock)
        extra = sockets.enter_context(connect(server))  # only now: uvicorn counts what is open when a request comes
        if asgi_server == "uvicorn":
            refused = options_response(extra)
            # A tus error like any other: tus clients retry a 503.
            assert refused.status == 503
            assert refused.headers["tus-resumable"] == "1.0.0"
            assert refused.headers["retry-after"] == "1"
            assert refused.body.startswith(b"ERR_SERVICE_UNAVAILABLE: ")
            for sock in held:
                sock.close()
            # Once the server has seen the others close, a new connection is served again.
            wait_until(lambda: fresh_options_status(server) == 200, what="a request under the limit to be served")
        else:
            extra.sendall(OPTIONS)
            # No answer of any kind while the limit's connections stay open: granian has not accepted it.
            assert not answered_within(extra, 1.0)
            held[0].close()
            response = read_response(extra)
            assert response is not None
            assert response.status == 200

"""PROTOCOL.md item 26: a client that disconnects mid-body keeps every byte the server received.

Raw sockets: a PATCH announces Content-Length N, sends N/2 bytes and closes. The PATCH's access-log
line (written when its handler has returned) says the server is done with it; HEAD then shows the
offset, and a PATCH from there completes the upload byte for byte.
"""

from __future__ import annotations

import os

import pytest

from tests.e2e.helpers import (
    PATCH_HEADERS,
    KiB,
    MiB,
    ServerProcess,
    connect,
    create_upload,
    head_offset,
    patch,
    raw_request,
    stored_size,
    target_of,
    wait_for_log,
    wait_until,
)

pytestmark = pytest.mark.e2e

SERVER_VARIANTS = [pytest.param((), id="default"), pytest.param(("--fsync", "true"), id="fsync")]


def send_half_and_close(server: ServerProcess, location: str, data: bytes, *, wait_until_read: bool) -> None:
    """PATCH announcing len(data) bytes, send the first half, close; return once the server has finished it."""
    headers = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": str(len(data))}
    half = len(data) // 2
    with connect(server) as sock:
        sock.sendall(raw_request("PATCH", target_of(location), headers) + data[:half])
        if wait_until_read:
            wait_until(lambda: stored_size(server, location) == half, what="the server to store the sent half")
    wait_for_log(server, f'"PATCH {target_of(location)}"')


@pytest.mark.parametrize("server", SERVER_VARIANTS, indirect=True)
def test_disconnect_keeps_every_byte_the_server_read(server: ServerProcess) -> None:
    location = create_upload(server, 1 * MiB)
    send_half_and_close(server, location, os.urandom(1 * MiB), wait_until_read=True)
    assert head_offset(location) == 512 * KiB


@pytest.mark.parametrize("server", SERVER_VARIANTS, indirect=True)
def test_disconnect_right_after_sending_keeps_the_sent_bytes(server: ServerProcess) -> None:
    # The half (32 KiB) reaches the server together with the FIN, before the handler first reads the body.
    location = create_upload(server, 64 * KiB)
    send_half_and_close(server, location, os.urandom(64 * KiB), wait_until_read=False)
    assert head_offset(location) == 32 * KiB


def test_patch_after_disconnect_completes_upload_byte_exact(server: ServerProcess) -> None:
    data = os.urandom(1 * MiB + 7)
    location = create_upload(server, len(data))
    send_half_and_close(server, location, data, wait_until_read=True)
    offset = head_offset(location)
    response = patch(location, offset, data[offset:])
    assert (response.status_code, response.headers["Upload-Offset"]) == (204, str(len(data)))
    assert server.stored_path(location).read_bytes() == data

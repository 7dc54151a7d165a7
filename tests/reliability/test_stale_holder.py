"""Issue 19, defect 1: a holder frozen past its lock's TTL never corrupts the upload.

Two real `tusserver` processes share Redis (state and locks) and the storage (one data directory, or one S3
bucket on SeaweedFS). Instance A takes a PATCH of the "stale" client's bytes and is frozen with SIGSTOP while
it writes (in production: a VM pause, swapping, a hung NFS write) with more bytes queued on its socket. Its
lock lapses (`--lock-ttl 1`); the client resumes on instance B from the offset B reports and finishes with
other bytes. Then A wakes (SIGCONT) and goes on with what its socket holds. The finished upload must hold
exactly what was acknowledged: the stale bytes A had recorded, then B's; A's late writes change nothing, and
A answers without a 500 or a traceback.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    TUS,
    MiB,
    ServerProcess,
    connect,
    create_upload,
    finish_from_head,
    head_offset,
    launch,
    patch,
    raw_request,
    read_response,
    stored_size,
    target_of,
    upload_id,
    wait_until,
)
from tests.e2e.test_s3_e2e import Bucket
from tests.redis_server import RedisServer
from tests.s3_server import aws_environment

pytestmark = pytest.mark.e2e


@dataclass
class Setup:
    """A storage for the pair: its flags, how far A must have written before it is frozen, and what it stored."""

    flags: tuple[str, ...]
    size: int
    frozen_after: int  # bytes A receives before the freeze
    written: Callable[[ServerProcess, str], bool]  # A has written (a file's bytes, an S3 part)
    stored: Callable[[ServerProcess, str], bytes]  # the finished upload's bytes, read from the storage itself


@pytest.fixture(params=["local", "s3"])
def setup(request: pytest.FixtureRequest) -> Iterator[Setup]:
    if request.param == "local":  # a body of 1 MiB or more is spliced from the socket into the file
        yield Setup((), 4 * MiB, 2 * MiB, lambda a, loc: stored_size(a, loc) >= MiB, read_local)
        return
    bucket: Bucket = request.getfixturevalue("s3_bucket")
    # A fills and uploads part 1 (under a part number it reserved) before the freeze.
    yield Setup(bucket.flags("--s3-part-size", "5M"), 12 * MiB, 6 * MiB, part_uploaded(bucket), stored_in(bucket))


def read_local(server: ServerProcess, location: str) -> bytes:
    return server.stored_path(location).read_bytes()


def part_uploaded(bucket: Bucket) -> Callable[[ServerProcess, str], bool]:
    def written(_: ServerProcess, location: str) -> bool:
        return bool(bucket.uploaded_parts(location, bucket.multipart_upload_id(location)))

    return written


def stored_in(bucket: Bucket) -> Callable[[ServerProcess, str], bytes]:
    return lambda _, location: bucket.read(location)


@pytest.fixture
def pair(setup: Setup, tmp_path: Path, redis_server: RedisServer) -> Iterator[tuple[ServerProcess, ServerProcess]]:
    """Instances A and B: one Redis key prefix, one data directory, locks that lapse after a second."""
    shared = tmp_path / "shared-data"
    flags = ("--redis-url", redis_server.url, "--redis-prefix", f"stale{os.getpid()}{time.monotonic_ns()}:",
             "--data-dir", str(shared), "--lock-ttl", "1", "--lock-timeout", "5", *setup.flags)  # fmt: skip
    servers = [replace(launch(tmp_path / name, *flags, env=aws_environment()), data_dir=shared) for name in "ab"]
    try:
        for server in servers:
            server.wait_ready()
        yield servers[0], servers[1]
    finally:
        for server in servers:
            if server.process.poll() is None:
                os.kill(server.pid, signal.SIGCONT)
            server.stop()


def queue_bytes(sock: socket.socket, data: bytes) -> int:
    """Put as much of `data` into the socket's buffers as fits without waiting; returns how much went."""
    sock.setblocking(False)
    sent = 0
    try:
        while sent < len(data):
            sent += sock.send(data[sent : sent + 64 * 1024])
    except BlockingIOError:
        pass
    finally:
        sock.settimeout(IO_TIMEOUT)
    return sent


def test_frozen_holder_never_touches_what_the_next_holder_acknowledged(
    setup: Setup, pair: tuple[ServerProcess, ServerProcess]
) -> None:
    a, b = pair
    stale, fresh = os.urandom(setup.size), os.urandom(setup.size)
    location = create_upload(a, setup.size)
    on_b = b.url + upload_id(location)
    with connect(a) as sock:
        head = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": str(setup.size)}
        sock.sendall(raw_request("PATCH", target_of(location), head) + stale[: setup.frozen_after])
        wait_until(lambda: setup.written(a, location), what="instance A to write the stale bytes", timeout=20)
        os.kill(a.pid, signal.SIGSTOP)
        try:
            queued = setup.frozen_after + queue_bytes(sock, stale[setup.frozen_after :])
            offset = head_offset(on_b)  # B waits until A's lock lapses; A recorded at most what it received
            assert offset <= setup.frozen_after
            expected = stale[:offset] + fresh[offset:]
            # The client resumes on B and gets most of the rest acknowledged (across part boundaries on S3).
            middle = offset + (setup.size - offset) * 3 // 4
            assert patch(on_b, offset, expected[offset:middle]).status_code == 204
        finally:
            os.kill(a.pid, signal.SIGCONT)
        # A wakes with stale bytes on its socket; send it the rest of its body, so it writes all it can (it may
        # stop reading and close once it finds its lock gone: fine).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(stale[queued:])
        answer = read_response(sock)  # A is done with the upload once it has answered
    assert answer is None or answer.status in {400, 409, 423, 503}, answer
    assert head_offset(on_b) == middle
    finish_from_head(on_b, expected)
    response = requests.get(on_b, headers=TUS, timeout=IO_TIMEOUT)
    assert response.status_code == 200
    assert response.content == expected
    assert setup.stored(a, location) == expected
    for server in pair:
        assert "Traceback" not in server.log()

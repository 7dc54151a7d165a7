"""PROTOCOL.md item 28: two writers on one upload never interleave, and HEAD's offset is always accepted.

The server's rule: a request that wants a busy upload asks the holder to let go; a PATCH holding the
lock stores what it read and answers 400 ERR_UPLOAD_INTERRUPTED (tusd v2), and a waiter that cannot
get the lock in time answers 423. Any of 204 / 409 / 400 ERR_UPLOAD_INTERRUPTED / 423 is acceptable;
bytes from two requests mixed in the file, or an offset that the next PATCH refuses, is not.
"""

from __future__ import annotations

import os
import socket
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.helpers import (
    PATCH_HEADERS,
    KiB,
    MiB,
    ServerProcess,
    check_race_outcome,
    connect,
    create_upload,
    finish_from_head,
    head_offset,
    race_patches,
    random_file,
    raw_request,
    read_response,
    send_all,
    stored_size,
    target_of,
    tool,
    wait_until,
)

pytestmark = pytest.mark.e2e

SIZE = 1 * MiB


def patch_request(location: str, offset: int = 0) -> bytes:
    headers = PATCH_HEADERS | {"Upload-Offset": str(offset), "Content-Length": str(SIZE - offset)}
    return raw_request("PATCH", target_of(location), headers)


def test_second_patch_interrupts_first_without_mixing_bytes(server: ServerProcess) -> None:
    first_data, second_data = os.urandom(SIZE), os.urandom(SIZE)
    location = create_upload(server, SIZE)
    with connect(server) as first:
        first.sendall(patch_request(location) + first_data[: 256 * KiB])
        # The first PATCH provably holds the lock once its bytes are on disk.
        wait_until(lambda: stored_size(server, location) == 256 * KiB, what="the first PATCH to store its bytes")
        with connect(server) as second:
            send_all(second, patch_request(location) + second_data)
            second_response = read_response(second)
        first_response = read_response(first)
    check_race_outcome(first_response)
    check_race_outcome(second_response)
    offset = head_offset(location)
    assert offset >= 256 * KiB  # what the interrupted PATCH stored stays stored
    assert server.stored_path(location).read_bytes() == first_data[:offset]
    finish_from_head(location, first_data)
    assert server.stored_path(location).read_bytes() == first_data


def test_racing_patches_store_one_writers_bytes(server: ServerProcess) -> None:
    datas = [os.urandom(SIZE), os.urandom(SIZE)]
    location = create_upload(server, SIZE)
    winner = race_patches([server, server], location, datas)
    finish_from_head(location, winner)
    assert server.stored_path(location).read_bytes() == winner


def test_head_during_stalled_patch_answers_promptly_with_stored_offset(server: ServerProcess) -> None:
    # PROTOCOL.md §3.13: a half-open PATCH must not keep the upload locked until the read timeout.
    data = os.urandom(SIZE)
    location = create_upload(server, SIZE)
    with connect(server) as stalled:
        stalled.sendall(patch_request(location) + data[: 100 * KiB])
        wait_until(lambda: stored_size(server, location) == 100 * KiB, what="the stalled PATCH to store its bytes")
        started = time.monotonic()
        assert head_offset(location) == 100 * KiB
        assert time.monotonic() - started < 5  # well below --lock-timeout (10 s) and --read-timeout (60 s)
        check_race_outcome(read_response(stalled))
    finish_from_head(location, data)
    assert server.stored_path(location).read_bytes() == data


def test_curl_still_sending_when_its_patch_is_interrupted_gets_the_answer(
    server: ServerProcess, tmp_path: Path
) -> None:
    # A real client mid-body (spliced on uvicorn) when another request takes the upload: it must read
    # the interrupted answer, not a broken connection (curl stops sending when an error answer comes).
    size = 16 * MiB
    source = random_file(tmp_path / "source.bin", size)
    location = create_upload(server, size)
    headers = PATCH_HEADERS | {"Upload-Offset": "0", "Expect": ""}
    command = [tool("curl"), "-sS", "--max-time", "60", "-X", "PATCH", "--limit-rate", "4M", "-T", str(source)]
    command += [arg for name, value in headers.items() for arg in ("-H", f"{name}: {value}")]
    command += ["-o", str(tmp_path / "answer"), "-w", "%{http_code}", location]
    with subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as first:
        wait_until(lambda: stored_size(server, location) >= 2 * MiB, what="curl's PATCH to store 2 MiB")
        with connect(server) as second:  # wants the upload: the first PATCH lets go
            send_all(second, patch_request(location, 0))
            second.shutdown(socket.SHUT_WR)
            read_response(second)
        out, err = first.communicate(timeout=60)
    assert (first.returncode, out, err) == (0, "400", "")
    assert (tmp_path / "answer").read_bytes().startswith(b"ERR_UPLOAD_INTERRUPTED")
    offset = head_offset(location)
    assert server.stored_path(location).read_bytes() == source.read_bytes()[:offset]

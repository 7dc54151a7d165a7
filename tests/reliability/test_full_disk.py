"""Issue 19, defect 3: a full disk answers 507 ERR_STORAGE_FULL, keeps what it can, and lets DELETE free space.

A real `tusserver` (local files, SQLite state) on a small tmpfs as its data directory, which one upload fills.
Mounting needs root (or password-less sudo), as the test command has for its packages.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from collections.abc import Iterator
from dataclasses import replace
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
    head_offset,
    launch,
    patch,
    raw_request,
    read_response,
    send_all,
    target_of,
    upload_id,
)

pytestmark = pytest.mark.e2e

DISK = 24 * MiB


def _as_root(*command: str) -> None:
    sudo = [] if os.geteuid() == 0 else ["sudo", "-n"]
    subprocess.run([*sudo, *command], check=True, capture_output=True, timeout=30)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A server whose data directory is a tmpfs of DISK bytes."""
    disk = tmp_path / "disk"
    disk.mkdir()
    _as_root("mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(disk))
    try:
        flags = ("--server", "uvicorn", "--data-dir", str(disk / "data"))  # the later --data-dir wins
        started = replace(launch(tmp_path / "server", *flags), data_dir=disk / "data")
        try:
            started.wait_ready()
            yield started
        finally:
            started.stop()
            assert "Traceback" not in started.log(), started.log()
    finally:
        _as_root("umount", "-l", str(disk))


def fill(path: Path) -> None:
    """Write to `path` until its file system is full."""
    with path.open("wb", buffering=0) as file, contextlib.suppress(OSError):
        while True:
            file.write(b"\0" * 65536)


def data_files(server: ServerProcess) -> set[str]:
    return {path.name for path in (server.data_dir / "uploads").iterdir()}


def fill_disk(server: ServerProcess) -> tuple[str, bytes, int]:
    """An upload larger than the disk, PATCHed in one go: 507 with Retry-After once the disk is full."""
    data = os.urandom(DISK + 4 * MiB)
    location = create_upload(server, len(data))
    with connect(server) as sock:
        head = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": str(len(data))}
        send_all(sock, raw_request("PATCH", target_of(location), head) + data)
        answer = read_response(sock)
    assert answer is not None
    assert answer.status == 507, answer
    assert answer.body.startswith(b"ERR_STORAGE_FULL: "), answer
    assert answer.headers["retry-after"].isdigit()
    offset = head_offset(location)
    return location, data, offset


def test_full_disk_keeps_what_was_written_and_answers_507(server: ServerProcess) -> None:
    location, data, offset = fill_disk(server)
    # Bytes written before the disk filled up are recorded (all but the last MiB, given back to the record).
    assert DISK // 2 < offset < DISK
    assert server.stored_path(location).read_bytes()[:offset] == data[:offset]
    # Something else takes the space given back: creating is a 507 too, never a 500, and leaves no data file.
    fill(server.data_dir.parent / "filler")
    before = data_files(server)
    response = requests.post(server.url, headers=TUS | {"Upload-Length": str(MiB)}, timeout=IO_TIMEOUT)
    assert response.status_code == 507, response.text
    assert response.text.startswith("ERR_STORAGE_FULL: ")
    assert data_files(server) == before
    # A PATCH that cannot even be recorded is a 507 as well; the recorded offset stays.
    response = patch(location, offset, b"x" * 1000)
    assert response.status_code == 507, response.text
    assert head_offset(location) == offset


def test_delete_frees_space_on_a_full_disk(server: ServerProcess) -> None:
    location, _, _ = fill_disk(server)
    response = requests.delete(location, headers=TUS, timeout=IO_TIMEOUT)
    assert response.status_code == 204, response.text
    assert upload_id(location) not in data_files(server)
    assert requests.head(location, headers=TUS, timeout=IO_TIMEOUT).status_code in {404, 410}
    # With the space back, a new upload goes through whole.
    data = os.urandom(4 * MiB)
    again = create_upload(server, len(data))
    assert patch(again, 0, data).status_code == 204
    assert requests.get(again, headers=TUS, timeout=IO_TIMEOUT).content == data

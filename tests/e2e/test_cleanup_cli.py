"""`tusserver cleanup`: removes expired uploads (data and state) from a data directory, reports them, and keeps
finished ones (PROTOCOL.md items 57-59).

The expiry is stored when an upload is created, from the creating server's `--expiration`. These tests create
uploads through a real server with a 1 s lifetime and then wait, in real time, until that server itself answers
410 for the upload: the one place where the e2e tests wait for the clock on purpose (bounded, polled).
"""

from __future__ import annotations

import os
import subprocess
import time
from email.utils import parsedate_to_datetime
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    TUS,
    ServerProcess,
    StartServer,
    clean_environ,
    create_upload,
    patch,
    server_command,
    upload_id,
    wait_until,
)

pytestmark = pytest.mark.e2e


def run_cleanup(data_dir: Path) -> subprocess.CompletedProcess[str]:
    """Run `tusserver cleanup --data-dir D` to completion."""
    return subprocess.run(
        [*server_command(), "cleanup", "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_environ(),
        check=False,
    )


def head_status(location: str) -> int:
    return requests.head(location, headers=TUS, timeout=IO_TIMEOUT).status_code


NOTHING_REMOVED = ["removed 0 expired upload(s)", "removed 0 item(s) no upload record names"]


def expired_and_finished(server: ServerProcess) -> tuple[str, str]:
    """An unfinished upload that has expired and a finished one, created at the same time; stops the server."""
    expired, finished = create_upload(server, 10), create_upload(server, 5)
    assert patch(expired, 0, b"hello").status_code == 204
    assert patch(finished, 0, b"hello").status_code == 204
    wait_until(lambda: head_status(expired) == 410, what="the upload to expire (1 s)", timeout=5, interval=0.05)
    assert head_status(finished) == 200
    assert server.stop() == 0  # the CLI gets the data directory to itself
    return expired, finished


def test_upload_expires_header_follows_configured_lifetime(start_server: StartServer) -> None:
    """PROTOCOL.md item 58: `--expiration 1` puts Upload-Expires about one second ahead of the server's Date."""
    server = start_server("--expiration", "1")
    response = requests.post(server.url, headers=TUS | {"Upload-Length": "10"}, timeout=IO_TIMEOUT)
    lifetime = parsedate_to_datetime(response.headers["Upload-Expires"]) - parsedate_to_datetime(
        response.headers["Date"]
    )
    assert 0 <= lifetime.total_seconds() <= 2


def test_cleanup_removes_expired_upload_and_reports_it(start_server: StartServer) -> None:
    server = start_server("--expiration", "1")
    expired, _ = expired_and_finished(server)
    done = run_cleanup(server.data_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "removed 1 expired upload(s)",
        upload_id(expired),
        "removed 0 item(s) no upload record names",
    ]
    assert not server.stored_path(expired).exists()


def test_cleanup_keeps_finished_upload(start_server: StartServer) -> None:
    server = start_server("--expiration", "1")
    _, finished = expired_and_finished(server)
    assert run_cleanup(server.data_dir).returncode == 0
    assert server.stored_path(finished).read_bytes() == b"hello"


def test_cleaned_up_upload_is_unknown_to_a_restarted_server(start_server: StartServer) -> None:
    """PROTOCOL.md item 59: 404 after cleanup; the finished upload still answers."""
    server = start_server("--expiration", "1")
    expired, finished = expired_and_finished(server)
    assert run_cleanup(server.data_dir).returncode == 0
    again = start_server("--data-dir", str(server.data_dir))
    assert head_status(expired.replace(server.origin, again.origin)) == 404
    assert head_status(finished.replace(server.origin, again.origin)) == 200


def test_second_cleanup_removes_nothing(start_server: StartServer) -> None:
    server = start_server("--expiration", "1")
    expired_and_finished(server)
    assert run_cleanup(server.data_dir).returncode == 0
    done = run_cleanup(server.data_dir)
    assert (done.returncode, done.stdout.splitlines()) == (0, NOTHING_REMOVED)


def test_cleanup_of_an_empty_data_directory_removes_nothing(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    done = run_cleanup(tmp_path / "data")
    assert (done.returncode, done.stdout.splitlines()) == (0, NOTHING_REMOVED)


def test_cleanup_of_a_data_directory_that_does_not_exist_is_an_error(tmp_path: Path) -> None:
    """Issue 23: a mistyped --data-dir is said, in one line, not taken for a new, empty store."""
    done = run_cleanup(tmp_path / "data")
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [
        f"tusserver: the data directory {tmp_path / 'data'} does not exist: nothing to clean up "
        "(give the server's --data-dir / TUSSERVER_DATA_DIR)"
    ]
    assert not (tmp_path / "data").exists()


def test_cleanup_removes_data_no_record_names_once_it_is_a_day_old(start_server: StartServer) -> None:
    """Issue 19, defect 3: a crash between creating an upload's file and its record, or a writer that crashed
    in a segment of its own, leaves data no record names; cleanup removes it once nothing touched it for a
    day (younger data may belong to a request still running), and keeps every upload's own."""
    server = start_server()
    kept = create_upload(server, 5)
    assert patch(kept, 0, b"hello").status_code == 204
    assert server.stop() == 0
    uploads, day_ago = server.data_dir / "uploads", time.time() - 86400 - 60
    orphan, young = uploads / ("a" * 32), uploads / ("b" * 32)
    segment = uploads / f"{upload_id(kept)}.segments" / "0-0123456789abcdef"
    segment.parent.mkdir()
    for path in (orphan, young, segment):
        path.write_bytes(b"left behind")
    for path in (orphan, segment, server.stored_path(kept)):
        os.utime(path, (day_ago, day_ago))
    done = run_cleanup(server.data_dir)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[:2] == ["removed 0 expired upload(s)", "removed 2 item(s) no upload record names"]
    assert not orphan.exists()
    assert not segment.exists()
    assert young.exists()
    assert server.stored_path(kept).read_bytes() == b"hello"


def test_server_with_cleanup_interval_removes_expired_upload_itself(start_server: StartServer) -> None:
    """`--cleanup-interval` runs the sweep in the server (its ASGI lifespan): 410 once expired, then 404."""
    server = start_server("--expiration", "1", "--cleanup-interval", "0.2")
    location = create_upload(server, 10)
    wait_until(lambda: head_status(location) == 404, what="the sweep to remove the upload", timeout=10, interval=0.05)
    assert not server.stored_path(location).exists()

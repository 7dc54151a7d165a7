"""Hostile requests over a real socket: each gets a 4xx answer, and nothing is written outside the data dir.

uvicorn's httptools parser answers a malformed request (a NUL in the request line or a header) itself
with 400 and closes; everything else reaches the app, which must answer 4xx, never 5xx.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    TUS,
    KiB,
    MiB,
    ServerProcess,
    create_upload,
    files_under,
    raw_exchange,
    raw_request,
    target_of,
)

pytestmark = pytest.mark.e2e

HELLO = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": "5"}

# Each case builds the request from the target (path) of a fresh upload of 10 bytes.
CASES: dict[str, Callable[[str], bytes]] = {
    "nul_in_request_line": lambda _: raw_request("HEAD", b"/files/\x00abc", TUS),
    "nul_in_header_value": lambda _: raw_request("POST", "/files/", TUS | {"Upload-Length": "1\x00"}),
    "percent_00_as_upload_id": lambda _: raw_request("PATCH", "/files/%00", HELLO, b"hello"),
    "percent_00_after_upload_id": lambda upload: raw_request("PATCH", upload + "%00", HELLO, b"hello"),
    "dot_dot_segments": lambda _: raw_request("PATCH", "/files/../../etc/passwd", HELLO, b"hello"),
    "encoded_dot_dot_segments": lambda _: raw_request("PATCH", "/files/%2e%2e%2f%2e%2e%2fetc", HELLO, b"hello"),
    "encoded_dot_dot_head": lambda _: raw_request("HEAD", "/files/%2e%2e%2f%2e%2e%2fetc%2fpasswd", TUS),
    "upload_length_of_100_kb": lambda _: raw_request("POST", "/files/", TUS | {"Upload-Length": "9" * 100 * KiB}),
    "upload_offset_of_100_kb": lambda upload: raw_request("PATCH", upload, HELLO | {"Upload-Offset": "1" * 100 * KiB}),
    "upload_metadata_of_1_mb": lambda _: raw_request(
        "POST", "/files/", TUS | {"Upload-Length": "5", "Upload-Metadata": "name " + "QUFB" * (MiB // 4)}
    ),
    "non_numeric_upload_offset": lambda upload: raw_request("PATCH", upload, HELLO | {"Upload-Offset": "abc"}),
    "negative_upload_offset": lambda upload: raw_request("PATCH", upload, HELLO | {"Upload-Offset": "-1"}),
    "exponent_upload_offset": lambda upload: raw_request("PATCH", upload, HELLO | {"Upload-Offset": "0e0"}),
}


@pytest.fixture
def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server  # each case checks only what changed during it


def outside_data_dir(server: ServerProcess) -> dict[Path, int]:
    """Modification times of the files a path traversal could reach: the server's cwd (minus data and log)."""
    files = files_under(server.data_dir.parent, excluding=server.data_dir) - {server.stderr_path}
    return {path: path.stat().st_mtime_ns for path in [*files, Path("/etc/passwd")]}


@pytest.mark.parametrize("build", CASES.values(), ids=CASES.keys())
def test_bad_request_gets_4xx_and_writes_nothing(server: ServerProcess, build: Callable[[str], bytes]) -> None:
    upload = create_upload(server, 10)
    uploads_before = set((server.data_dir / "uploads").iterdir())
    outside_before = outside_data_dir(server)
    request = build(target_of(upload))
    response = raw_exchange(server, request, head=request.startswith(b"HEAD"))
    assert response is not None, "the server closed the connection without an answer"
    assert 400 <= response.status < 500, response
    assert set((server.data_dir / "uploads").iterdir()) == uploads_before
    assert outside_data_dir(server) == outside_before
    assert requests.head(upload, headers=TUS, timeout=IO_TIMEOUT).headers["Upload-Offset"] == "0"

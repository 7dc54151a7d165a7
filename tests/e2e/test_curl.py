"""curl by hand (PERF.md: `-T` streams the file, `Expect:` avoids waiting for 100-continue)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.e2e.helpers import MiB, ServerProcess, random_file, sha256_file, tool

pytestmark = pytest.mark.e2e

SIZE = 2 * MiB + 123
OOS = "Content-Type: application/offset+octet-stream"


@pytest.fixture
def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server  # these tests touch only their own uploads


def curl(*args: str) -> tuple[int, dict[str, str]]:
    """Run curl with Tus-Resumable and an empty Expect; returns the final status and its headers."""
    command = [tool("curl"), "-sS", "--max-time", "30", "-o", "/dev/null", "-D", "-", "-H", "Tus-Resumable: 1.0.0"]
    done = subprocess.run([*command, "-H", "Expect:", *args], capture_output=True, text=True, timeout=60, check=True)
    status_line, *lines = done.stdout.strip().splitlines()
    headers = {name.strip().lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    return int(status_line.split()[1]), headers


def test_curl_upload_in_two_patches_with_head_between(server: ServerProcess, tmp_path: Path) -> None:
    source = random_file(tmp_path / "source.bin", SIZE)
    half = SIZE // 2
    (tmp_path / "first").write_bytes(source.read_bytes()[:half])
    (tmp_path / "rest").write_bytes(source.read_bytes()[half:])
    status, created = curl("-X", "POST", "-H", f"Upload-Length: {SIZE}", server.url)
    assert status == 201
    url = created["location"]
    status, patched = curl("-X", "PATCH", "-H", OOS, "-H", "Upload-Offset: 0", "-T", str(tmp_path / "first"), url)
    assert (status, patched["upload-offset"]) == (204, str(half))
    status, head = curl("-I", url)
    assert (status, head["upload-offset"], head["upload-length"]) == (200, str(half), str(SIZE))
    status, done = curl("-X", "PATCH", "-H", OOS, "-H", f"Upload-Offset: {half}", "-T", str(tmp_path / "rest"), url)
    assert (status, done["upload-offset"]) == (204, str(SIZE))
    assert sha256_file(server.stored_path(url)) == sha256_file(source)

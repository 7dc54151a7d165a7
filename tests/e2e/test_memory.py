"""Bounded memory: a 1 GiB upload in one PATCH streams through the server without being buffered."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.helpers import GiB, MiB, RssSampler, ServerProcess, create_upload, peak_rss_hwm, tool

pytestmark = pytest.mark.e2e

RSS_LIMIT = 150 * MiB


@pytest.fixture
def zeros(tmp_path: Path) -> Iterator[Path]:
    """A sparse 1 GiB file of zeros (costs no disk until read)."""
    path = tmp_path / "zeros.bin"
    with path.open("wb") as file:
        file.truncate(GiB)
    yield path
    path.unlink()


def test_one_gib_patch_keeps_server_rss_bounded(server: ServerProcess, zeros: Path) -> None:
    location = create_upload(server, GiB)
    headers = ["-H", "Tus-Resumable: 1.0.0", "-H", "Content-Type: application/offset+octet-stream"]
    command = [tool("curl"), "-sS", "--max-time", "60", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Expect:"]
    with RssSampler(server.pid) as sampler:
        done = subprocess.run(
            [*command, *headers, "-H", "Upload-Offset: 0", "-X", "PATCH", "-T", str(zeros), location],
            capture_output=True, text=True, timeout=90, check=True,
        )  # fmt: skip
    stored = server.stored_path(location)
    try:
        assert done.stdout == "204"
        assert stored.stat().st_size == GiB
        assert sampler.samples > 10
        assert sampler.peak < RSS_LIMIT, f"peak RSS {sampler.peak / MiB:.0f} MiB"
        assert peak_rss_hwm(server.pid) < RSS_LIMIT  # the kernel's peak, between samples too
    finally:
        stored.unlink(missing_ok=True)

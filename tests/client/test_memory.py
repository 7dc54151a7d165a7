"""The client streams: its peak memory for a 512 MiB upload is that of an 8 MiB one (issue 25: bounded memory
whatever the file size). The files are sparse: the kernel generates their zeros, nothing is stored locally."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.e2e.helpers import ServerProcess, clean_environ

MiB = 1024 * 1024
DRIVER = """
import resource, sys
from tusserver.client import TusClient
with TusClient() as client:
    client.upload(sys.argv[1], sys.argv[2])
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)
"""


def peak_mb(source: Path, url: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", DRIVER, str(source), url],
        capture_output=True, text=True, timeout=120, env=clean_environ(), check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return int(done.stdout)


def sparse(path: Path, size: int) -> Path:
    with path.open("wb") as file:
        file.truncate(size)
    return path


def test_peak_memory_does_not_grow_with_the_file(tus_server: ServerProcess, tmp_path: Path) -> None:
    small = peak_mb(sparse(tmp_path / "small.bin", 8 * MiB), tus_server.url)
    large = peak_mb(sparse(tmp_path / "large.bin", 512 * MiB), tus_server.url)
    assert large - small < 16, (small, large)
    for path in tus_server.data_dir.joinpath("uploads").iterdir():
        if path.is_file() and path.stat().st_size == 512 * MiB:
            path.unlink()  # the module's server keeps running: give the disk back now

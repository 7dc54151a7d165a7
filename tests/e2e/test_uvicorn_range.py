"""Issue 23: tusserver depends on a broad uvicorn range. PieceProtocol runs on the uvicorn versions its tests pass on;
any other uvicorn serves with its own protocol, after one warning. Both paths serve a real upload with a resume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import requests
import uvicorn

from tests.e2e.helpers import IO_TIMEOUT, TUS, ServerProcess, create_upload, head_offset, launch, patch
from tusserver.serving.servers import PIECE_PROTOCOL_UVICORN, UVICORN_VERSION_VARIABLE, piece_protocol_fits

pytestmark = pytest.mark.e2e

OLDEST_UVICORN = "0.30.6"  # the lowest the pyproject allows (uvicorn>=0.30), its last patch release
FALLBACK = "serving with uvicorn's own HTTP protocol"


@pytest.mark.parametrize(
    ("version", "fits"),
    [("0.55.0", True), ("0.54.1", True), ("0.56.0", False), ("0.30.6", False), ("1.0.0", False), ("0.55", True)],
)
def test_piece_protocol_runs_only_on_the_tested_minor_versions(version: str, fits: bool) -> None:
    assert piece_protocol_fits(version) is fits


def test_the_installed_uvicorn_is_one_piece_protocol_is_tested_on() -> None:
    """The test environment runs the fast path; a newer uvicorn released since must be tested before it is added."""
    assert piece_protocol_fits(uvicorn.__version__), (uvicorn.__version__, PIECE_PROTOCOL_UVICORN)


def upload_with_a_resume(server: ServerProcess) -> None:
    data = bytes(range(256)) * 40
    location = create_upload(server, len(data))
    assert patch(location, 0, data[:4000]).status_code == 204
    assert head_offset(location) == 4000  # the client asks where to go on
    assert patch(location, 4000, data[4000:]).status_code == 204
    assert requests.get(location, headers=TUS, timeout=IO_TIMEOUT).content == data


def serve(tmp_path: Path, env: dict[str, str]) -> ServerProcess:
    server = launch(tmp_path / "server", env=env)
    server.wait_ready()
    return server


def test_the_tested_uvicorn_serves_with_piece_protocol_and_no_warning(tmp_path: Path) -> None:
    server = serve(tmp_path, {})
    try:
        upload_with_a_resume(server)
    finally:
        assert server.stop() == 0
    assert FALLBACK not in server.log()


def test_another_uvicorn_version_falls_back_with_one_warning(tmp_path: Path) -> None:
    """As on a uvicorn released after this tusserver: the version check decides (forced here)."""
    server = serve(tmp_path, {UVICORN_VERSION_VARIABLE: "0.99.0"})
    try:
        upload_with_a_resume(server)
    finally:
        assert server.stop() == 0
    warnings = [line for line in server.log().splitlines() if FALLBACK in line]
    assert len(warnings) == 1
    assert "WARNING" in warnings[0]
    assert "uvicorn 0.99.0" in warnings[0]


def test_the_oldest_uvicorn_the_range_allows_serves_through_the_fallback(tmp_path: Path) -> None:
    """A real other uvicorn, installed beside this environment and put first on the path (as an app's pin would)."""
    target = tmp_path / "uvicorn-old"
    install = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target", str(target)]
    done = subprocess.run(
        [*install, f"uvicorn=={OLDEST_UVICORN}"], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    server = serve(tmp_path, {"PYTHONPATH": str(target)})
    try:
        upload_with_a_resume(server)
    finally:
        assert server.stop() == 0
    assert [line for line in server.log().splitlines() if FALLBACK in line and OLDEST_UVICORN in line]

"""tus-js-client (Node) against the real server: chunked upload, and an aborted upload resumed by URL."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.helpers import MiB, ServerProcess, random_file, sha256_file, tool

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
CHUNK = 1 * MiB
SIZE = 8 * MiB


def run_node(server: ServerProcess, source: Path, mode: str, *upload_url: str) -> dict[str, Any]:
    """Run js/upload.mjs; returns its JSON report (see the script's header)."""
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    command = [tool("node"), "upload.mjs", server.url, str(source), str(CHUNK), mode, *upload_url]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"node exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


@pytest.fixture
def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server  # these tests touch only their own uploads


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return random_file(tmp_path / "source.bin", SIZE)


def test_tus_js_client_chunked_upload_stores_exact_bytes(server: ServerProcess, source: Path) -> None:
    report = run_node(server, source, "full")
    assert report["done"]
    patches = [request for request in report["requests"] if request["method"] == "PATCH"]
    assert [request["offset"] for request in patches] == [str(offset) for offset in range(0, SIZE, CHUNK)]
    assert sha256_file(server.stored_path(report["url"])) == sha256_file(source)


def test_tus_js_client_resumes_aborted_upload_with_head(server: ServerProcess, source: Path) -> None:
    aborted = run_node(server, source, "interrupt")
    assert aborted["aborted"]
    assert aborted["acknowledged"] >= CHUNK
    resumed = run_node(server, source, "resume", aborted["url"])
    head, first_patch = resumed["requests"][:2]
    assert (head["method"], head["status"]) == ("HEAD", 200)
    # PROTOCOL.md item 90: the client continues at the offset HEAD gave, never from 0.
    assert first_patch["method"] == "PATCH"
    assert first_patch["offset"] == head["responseOffset"]
    assert int(first_patch["offset"]) >= aborted["acknowledged"]
    assert sha256_file(server.stored_path(aborted["url"])) == sha256_file(source)

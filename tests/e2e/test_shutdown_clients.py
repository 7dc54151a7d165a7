"""SIGTERM mid-PATCH with real tus clients (issue 23 item 3), on uvicorn and on granian: tuspy and tus-js-client
(Node) upload through a proxy that slows the body down, so that the server is stopped in the middle of the PATCH;
the server keeps what arrived and exits 0; each client then resumes on the restarted server (same port, same data)
and the stored file is the source, byte-exact."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tusclient.client import TusClient

from tests.e2e.helpers import (
    STOP_TIMEOUT,
    MiB,
    ServerProcess,
    launch,
    random_file,
    sha256_file,
    tool,
    upload_id,
    wait_until,
)
from tests.reliability.faultproxy import FaultProxy
from tests.server_process import free_ports

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
SIZE = 24 * MiB  # one PATCH; through the slowed proxy (~10 MiB/s) it lasts longer than the stop takes
STOP_AT = 2 * MiB  # stored when SIGTERM is sent
DELAY = 0.1  # seconds the proxy holds each 64 KiB piece (it buffers 1 MiB a connection)


class Instances:
    """The server on one port and one data directory, started again after each stop (a restart)."""

    def __init__(self, root: Path, asgi_server: str) -> None:
        self.root = root
        self.asgi_server = asgi_server
        self.port = free_ports(1)[0]
        self.data_dir = root / "data"
        self.started: list[ServerProcess] = []

    def start(self) -> ServerProcess:
        flags = ["--port", str(self.port), "--data-dir", str(self.data_dir), "--shutdown-timeout", "1"]
        flags += ["--server", self.asgi_server]
        server = launch(self.root / f"run{len(self.started)}", *flags)
        server.port, server.data_dir = self.port, self.data_dir  # the flags after launch's own win
        self.started.append(server)
        server.wait_ready()
        return server

    def stored(self) -> list[Path]:
        uploads = self.data_dir / "uploads"
        return [path for path in uploads.iterdir() if path.is_file()] if uploads.exists() else []

    def stop_mid_patch(self, server: ServerProcess) -> None:
        """SIGTERM once the PATCH has stored `STOP_AT` bytes; the server must exit 0 with the PATCH cut."""
        wait_until(
            lambda: any(path.stat().st_size >= STOP_AT for path in self.stored()), what="the PATCH to be under way"
        )
        server.process.send_signal(signal.SIGTERM)
        assert server.process.wait(STOP_TIMEOUT) == 0, server.log()
        assert "ending 1 request(s) as disconnects" in server.log()  # it was cut, not finished
        (path,) = self.stored()
        assert STOP_AT <= path.stat().st_size < SIZE


@pytest.fixture
def instances(tmp_path: Path, asgi_server: str) -> Iterator[Instances]:
    made = Instances(tmp_path, asgi_server)
    yield made
    for server in made.started:
        server.stop()


@pytest.fixture
def proxy(instances: Instances) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", instances.port)) as started:
        started.latency(DELAY)
        yield started


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return random_file(tmp_path / "source.bin", SIZE)


def in_thread(run: Callable[[], None]) -> Callable[[], BaseException | None]:
    """Start `run` in a thread; the returned call joins it and gives what it raised."""
    raised: list[BaseException] = []

    def target() -> None:
        try:
            run()
        except BaseException as exc:  # handed to the test
            raised.append(exc)

    thread = threading.Thread(target=target, daemon=True)
    thread.start()

    def join() -> BaseException | None:
        thread.join(STOP_TIMEOUT)
        assert not thread.is_alive(), "the client did not notice the stop"
        return raised[0] if raised else None

    return join


def test_tuspy_resumes_after_sigterm_mid_patch(instances: Instances, proxy: FaultProxy, source: Path) -> None:
    server = instances.start()
    endpoint = proxy.endpoint + "/files/"
    with source.open("rb") as stream:  # tuspy leaves a file it opened itself open
        uploader = TusClient(endpoint).uploader(file_stream=stream, chunk_size=SIZE, retries=0)
        join = in_thread(uploader.upload)
        instances.stop_mid_patch(server)
        assert join() is not None  # tuspy saw the connection end (no retries: the test resumes it)
    url = uploader.url
    assert url is not None

    proxy.heal()
    instances.start()
    with source.open("rb") as stream:
        resumed = TusClient(endpoint).uploader(file_stream=stream, url=url, chunk_size=SIZE)
        assert resumed.offset > 0  # tuspy asked the restarted server with HEAD: it goes on from there
        resumed.upload()
    assert sha256_file(instances.data_dir / "uploads" / upload_id(url)) == sha256_file(source)


def run_node(endpoint: str, source: Path, mode: str, *upload_url: str) -> subprocess.Popen[str]:
    """Start js/upload.mjs (one PATCH of the whole file); its JSON report comes on stdout."""
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    command = [tool("node"), "upload.mjs", endpoint, str(source), str(SIZE), mode, *upload_url]
    return subprocess.Popen(command, cwd=JS_DIR, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def report_of(node: subprocess.Popen[str]) -> tuple[int, dict[str, Any]]:
    out, err = node.communicate(timeout=30)
    assert out.strip(), f"node printed no report:\n{err}"
    report: dict[str, Any] = json.loads(out)
    return node.returncode, report


def test_tus_js_client_resumes_after_sigterm_mid_patch(instances: Instances, proxy: FaultProxy, source: Path) -> None:
    server = instances.start()
    endpoint = proxy.endpoint + "/files/"
    node = run_node(endpoint, source, "full")
    try:
        instances.stop_mid_patch(server)
        code, cut = report_of(node)
    finally:
        if node.poll() is None:
            node.kill()
    assert (code, "error" in cut) == (1, True), cut  # no retries in the script: the test resumes it

    proxy.heal()
    instances.start()
    code, resumed = report_of(run_node(endpoint, source, "resume", cut["url"]))
    assert (code, resumed.get("done")) == (0, True), resumed
    head, first_patch = resumed["requests"][:2]
    assert (head["method"], head["status"]) == ("HEAD", 200)
    assert first_patch["offset"] == head["responseOffset"] != "0"  # on from what the stopped server recorded
    assert sha256_file(instances.data_dir / "uploads" / upload_id(cut["url"])) == sha256_file(source)

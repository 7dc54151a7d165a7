"""Fixtures of the client's tests: a real tusserver process and a real @tus/server (Node) for each module, a
recording proxy in front of either, and the `tusserver upload/download` command run as a user runs it."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path

import pytest
import requests

from tests.client.proxy import TusProxy
from tests.e2e.helpers import ServerProcess, clean_environ, launch, server_command, tool
from tests.server_process import ServerProcess as ProcessBase
from tests.server_process import free_ports

BENCH_NODE = Path(__file__).resolve().parents[2] / "bench" / "node"
CLI_TIMEOUT = 60.0

RunCli = Callable[..., subprocess.CompletedProcess[str]]
StartCli = Callable[..., subprocess.Popen[str]]
MakeProxy = Callable[[str], TusProxy]


class TusNodeServer(ProcessBase):
    """@tus/server 2.x with @tus/file-store (bench/node/server.mjs): no concatenation, no checksum, no Range."""

    name = "tus-node"

    @property
    def url(self) -> str:
        return f"{self.endpoint}/files/"

    def start(self) -> None:
        assert (BENCH_NODE / "node_modules" / "@tus" / "server").is_dir(), "run bench/setup.sh (npm ci in bench/node)"
        self.port = free_ports(1)[0]
        (self.directory / "files").mkdir(parents=True, exist_ok=True)
        command = [tool("node"), str(BENCH_NODE / "server.mjs"), "--port", str(self.port), "--dir", "files"]
        self._spawn(command, self._ready, timeout=20)

    def _ready(self) -> bool:
        try:
            return requests.options(self.url, timeout=1).status_code in {200, 204}
        except requests.ConnectionError:
            return False


@pytest.fixture(scope="module")
def tus_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One tusserver (uvicorn, local files) per module; tests only touch their own uploads."""
    server = launch(tmp_path_factory.mktemp("tusserver"), "--server", "uvicorn")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def node_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TusNodeServer]:
    server = TusNodeServer(tmp_path_factory.mktemp("tus-node"))
    try:
        server.start()
        yield server
    finally:
        server.stop()


@pytest.fixture
def make_proxy() -> Iterator[MakeProxy]:
    """`make_proxy(origin)`: a recording proxy in front of a server, stopped after the test."""
    proxies: list[TusProxy] = []

    def make(origin: str) -> TusProxy:
        host, port = origin.removeprefix("http://").split(":")
        proxy = TusProxy((host, int(port))).start()
        proxies.append(proxy)
        return proxy

    yield make
    for proxy in proxies:
        proxy.stop()


@pytest.fixture
def store(tmp_path: Path) -> Path:
    """The resume store of the test's CLI runs (never the user's own)."""
    return tmp_path / "store.sqlite3"


def _environ(store: Path, env: Mapping[str, str] | None) -> dict[str, str]:
    return clean_environ({"TUSSERVER_CLIENT_STORE": str(store), **(env or {})})


@pytest.fixture
def run_cli(store: Path, tmp_path: Path) -> RunCli:
    """`run_cli("upload", file, url, ...)`: the installed `tusserver` command, run to its end in tmp_path."""

    def run(
        *args: str | Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*server_command(), *map(str, args)],
            capture_output=True,
            text=True,
            timeout=CLI_TIMEOUT,
            env=_environ(store, env),
            cwd=cwd or tmp_path,
            check=False,
        )

    return run


@pytest.fixture
def start_cli(store: Path, tmp_path: Path) -> Iterator[StartCli]:
    """`start_cli("upload", ...)`: the command in the background, to interrupt; killed after the test."""
    started: list[subprocess.Popen[str]] = []

    def start(*args: str | Path) -> subprocess.Popen[str]:
        process = subprocess.Popen(
            [*server_command(), *map(str, args)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=_environ(store, None),
            cwd=tmp_path,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=10)

"""The real server as a subprocess on 127.0.0.1 (one per test, or one per module), its stderr shown on failure."""

from __future__ import annotations

from collections.abc import Generator, Iterator, Mapping
from pathlib import Path

import pytest

from tests.e2e.helpers import ServerProcess, StartServer, launch

SERVERS = pytest.StashKey[list[ServerProcess]]()
# Every e2e test runs on each ASGI server the README offers.
ASGI_SERVERS = ["uvicorn", "granian"]


@pytest.fixture(params=ASGI_SERVERS)
def asgi_server(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def start_server(request: pytest.FixtureRequest, tmp_path: Path, asgi_server: str) -> Iterator[StartServer]:
    """`start_server(*flags, env=..., base_path=..., config_by_env=...)`: a running server, stopped after the test."""
    started = request.node.stash.setdefault(SERVERS, [])

    def start(
        *args: str, env: Mapping[str, str] | None = None, base_path: str = "/files/", config_by_env: bool = False
    ) -> ServerProcess:
        workdir = tmp_path / f"server{len(started)}"
        args = ("--server", asgi_server, *args)
        server = launch(workdir, *args, env=env, base_path=base_path, config_by_env=config_by_env)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(request: pytest.FixtureRequest, start_server: StartServer) -> ServerProcess:
    """A server with default settings; parametrize indirectly with a tuple of extra flags."""
    flags: tuple[str, ...] = getattr(request, "param", ())
    return start_server(*flags)


@pytest.fixture(scope="module", params=ASGI_SERVERS)
def module_server(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    server = launch(tmp_path_factory.mktemp("server"), "--server", request.param)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture
def shared_server(request: pytest.FixtureRequest, module_server: ServerProcess) -> ServerProcess:
    """One server for the whole module, for tests that only touch their own uploads (saves a start-up each)."""
    request.node.stash.setdefault(SERVERS, []).append(module_server)
    return module_server


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    if report.failed:
        for server in item.stash.get(SERVERS, []):
            report.sections.append((f"tusserver (pid {server.pid}) stderr", server.log()))
    return report

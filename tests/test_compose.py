"""Issue 23: examples/compose.yaml parses, and each service's command runs on this machine as written: hosts and
ports become free loopback ports, images become the programs they run (redis-server, moto_server, this tusserver,
nginx). Then a file goes up through the proxy with a resume, its requests spread over both instances."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

from tests.e2e.helpers import IO_TIMEOUT, TUS, clean_environ, patch, server_command, tool, wait_until
from tests.server_process import free_ports

pytestmark = pytest.mark.e2e
EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
DOCKERFILE = Path(__file__).resolve().parent.parent / "Dockerfile"


def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((EXAMPLES / "compose.yaml").read_text())
    return loaded


def test_compose_file_has_two_instances_behind_a_proxy_redis_with_aof_and_s3() -> None:
    services = compose()["services"]
    assert set(services) == {"redis", "s3", "bucket", "tus1", "tus2", "proxy"}
    assert services["tus1"] == services["tus2"]
    assert services["tus1"]["environment"]["TUSSERVER_REDIS_URL"] == "redis://redis:6379/0"
    assert "--appendonly" in services["redis"]["command"]
    assert services["proxy"]["image"].startswith("nginx")


def test_dockerfile_carries_the_extras_runs_unprivileged_and_checks_readiness() -> None:
    text = DOCKERFILE.read_text()
    assert 'pip install --no-cache-dir ".[s3,redis,azure]"' in text
    assert "\nUSER 10001\n" in text
    assert "HEALTHCHECK" in text
    assert "/readyz" in text
    ignored = (DOCKERFILE.parent / ".dockerignore").read_text().split()
    assert ignored[ignored.index("*") :][:6] == ["*", "!pyproject.toml", "!README.md", "!LICENSE", "!tusserver",
                                                   "!storage_backends"]  # fmt: skip


class Services:
    """The compose services as local processes; `port[name]` where each listens."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.port = dict(zip(["redis", "s3", "tus1", "tus2", "proxy"], free_ports(5), strict=True))
        self.processes: list[subprocess.Popen[bytes]] = []

    def local(self, text: str) -> str:
        """A compose address (redis:6379, s3:5000, tus1:8080) as the local one."""
        for host, port in [("redis", 6379), ("s3", 5000), ("tus1", 8080), ("tus2", 8080)]:
            text = text.replace(f"{host}:{port}", f"127.0.0.1:{self.port[host]}")
        return text

    def start(self, name: str, command: list[str], env: dict[str, str] | None = None) -> None:
        with (self.root / f"{name}.log").open("wb") as log:
            self.processes.append(
                subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=clean_environ(env), cwd=self.root)
            )

    def log(self, name: str) -> str:
        return (self.root / f"{name}.log").read_text(errors="replace")

    def answers(self, port: int) -> bool:
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
        except requests.ConnectionError:
            return False
        return True

    def stop(self) -> None:
        for process in reversed(self.processes):
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    try:
        yield running
    finally:
        running.stop()


def test_every_service_command_runs_and_the_proxy_spreads_an_upload(services: Services, tmp_path: Path) -> None:
    spec = compose()["services"]
    port = services.port
    # redis: its command, with a local port and directory in place of the volume.
    redis = [tool(spec["redis"]["command"][0]), *spec["redis"]["command"][1:]]
    redis[redis.index("/data")] = str(tmp_path)
    services.start("redis", [*redis, "--bind", "127.0.0.1", "--port", str(port["redis"])])
    # s3: moto_server as the image runs it.
    s3 = [str(Path(sys.executable).with_name("moto_server")), *spec["s3"]["command"][1:]]
    s3 = [{"0.0.0.0": "127.0.0.1", "5000": str(port["s3"])}.get(part, part) for part in s3]
    services.start("s3", s3)
    wait_until(lambda: services.answers(port["s3"]), what="moto_server", timeout=30)
    # bucket: the one-shot step, with this interpreter for the image's python.
    bucket = [sys.executable, *[services.local(part) for part in spec["bucket"]["command"][1:]]]
    done = subprocess.run(bucket, capture_output=True, text=True, timeout=60, check=False)
    assert (done.returncode, done.stdout) == (0, "bucket uploads ready\n"), done.stderr
    # tus1, tus2: the image's command and environment (its ENV: host, port, data directory).
    for name in ("tus1", "tus2"):
        environment = {key: services.local(str(value)) for key, value in spec[name]["environment"].items()}
        environment |= {"TUSSERVER_HOST": "127.0.0.1", "TUSSERVER_PORT": str(port[name]),
                        "TUSSERVER_DATA_DIR": str(tmp_path / name)}  # fmt: skip
        assert spec[name]["command"] == ["tusserver"]
        services.start(name, server_command(), environment)
    for name in ("tus1", "tus2"):
        wait_until(lambda name=name: services.answers(port[name]), what=name, timeout=30)  # type: ignore[misc]
    # proxy: nginx with the mounted configuration, its addresses made local.
    config = services.local((EXAMPLES / "compose-nginx.conf").read_text())
    config = config.replace("listen 8080;", f"listen 127.0.0.1:{port['proxy']};")
    config = config.replace("/tmp/", f"{tmp_path}/nginx-")
    (tmp_path / "nginx.conf").write_text(config)
    proxy = spec["proxy"]["command"]
    proxy = [tool("nginx"), *proxy[1:]]
    proxy[proxy.index("/etc/nginx/tusserver.conf")] = str(tmp_path / "nginx.conf")
    services.start("proxy", [*proxy, "-p", str(tmp_path)])
    wait_until(lambda: services.answers(port["proxy"]), what="nginx", timeout=30)

    endpoint = f"http://127.0.0.1:{port['proxy']}/files/"
    data = os.urandom(300_000)
    created = requests.post(endpoint, headers=TUS | {"Upload-Length": str(len(data))}, timeout=IO_TIMEOUT)
    assert created.status_code == 201, created.text
    location = created.headers["Location"]
    assert location.startswith(endpoint)  # X-Forwarded-Host from nginx: the client is sent back to the proxy
    assert patch(location, 0, data[:100_000]).status_code == 204
    offsets = {requests.head(location, headers=TUS, timeout=IO_TIMEOUT).headers["Upload-Offset"] for _ in range(4)}
    assert offsets == {"100000"}  # whichever instance answers
    assert patch(location, 100_000, data[100_000:]).status_code == 204
    assert requests.get(location, timeout=IO_TIMEOUT).content == data
    for name in ("tus1", "tus2"):  # round robin: both served requests of this upload
        assert location.rsplit("/", 1)[1] in services.log(name), name
    assert shutil.which("nginx")

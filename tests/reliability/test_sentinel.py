"""Issue 19: Redis Sentinel URLs (`redis+sentinel://`), with a real master, replica and sentinels.

Each failover test starts a master, a replica of it and two sentinels (redis-server in sentinel mode) on
free ports, runs a `tusserver` process on `redis+sentinel://<both sentinels>/tus-master/0`, and fails the
master over in the middle of an upload: by `SENTINEL FAILOVER`, or by killing the master. The upload
then completes byte-exact, and its record lives on the new master.

Redis replicates asynchronously, so writes the old master acknowledged in its last milliseconds may be
missing on the new one (README, "Redis Sentinel"). The tests wait for the replica to catch up before the
failover where a lost write would change the outcome (the creation), and otherwise accept what a tus
client accepts: an offset that moved back (the client resends), 409, 423 or 503 with Retry-After.
"""

from __future__ import annotations

import json
import random
import re
import shlex
import shutil
import socket
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, TypeVar

import pytest
import redis
import requests

from storage_backends.base import StorageRef
from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    MiB,
    ServerProcess,
    connect,
    create_upload,
    launch,
    patch,
    raw_request,
    read_response,
    send_all,
    target_of,
    upload_id,
    wait_until,
)
from tests.reliability.test_faults import assert_downloads_as, check_retryable, check_unavailable, resume_until_complete
from tests.server_process import ServerProcess as ServiceProcess
from tests.server_process import free_ports
from tusserver import Settings, create_app
from tusserver.context import utcnow
from tusserver.coordination.redis_client import MASTER_CHECK_INTERVAL
from tusserver.coordination.redis_url import SENTINEL_PORT, SentinelURL, check_redis_url
from tusserver.protocol.model import UploadInfo

SERVICE = "tus-master"
LENGTH = 4 * MiB + 7
FAILOVER_TIMEOUT = 15.0


# --- the URL --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis+sentinel://10.0.0.1:26380,10.0.0.2/mymaster",
         SentinelURL(sentinels=(("10.0.0.1", 26380), ("10.0.0.2", SENTINEL_PORT)), service_name="mymaster")),
        ("redis+sentinel://u%40x:p%3Aw@h:1/svc/3?socket_timeout=2&sentinel_password=s",
         SentinelURL(sentinels=(("h", 1),), service_name="svc", db=3, username="u@x", password="p:w",
                     sentinel_password="s", options={"socket_timeout": "2"})),
        ("rediss+sentinel://[::1]:5000,[fe80::1]/svc/",
         SentinelURL(sentinels=(("::1", 5000), ("fe80::1", SENTINEL_PORT)), service_name="svc", tls=True)),
        ("REDIS+SENTINEL://:secret@h/svc", SentinelURL(sentinels=(("h", SENTINEL_PORT),), service_name="svc",
                                                         password="secret")),
    ],
    ids=["two-sentinels", "credentials-db-options", "tls-ipv6", "password-only"],
)  # fmt: skip
def test_sentinel_url_parses(url: str, expected: SentinelURL) -> None:
    """README "Redis Sentinel": the hosts are the sentinels (26379 by default), the path names the master
    and the db; userinfo is the master's, `sentinel_*` options the sentinels'."""
    assert SentinelURL.parse(url) == expected


@pytest.mark.parametrize(
    "url",
    ["redis+sentinel://h:1", "redis+sentinel://h:1/", "redis+sentinel://h:1/svc/x", "redis+sentinel://h:1/a/1/2",
     "redis+sentinel://h:99999/svc", "redis+sentinel://h:1,,h:2/svc", "redis+sentinel://[::1/svc", "http://h/0",
     "sentinel://h/svc", "localhost:6379"],
)  # fmt: skip
def test_bad_redis_urls_are_refused_by_the_settings(url: str) -> None:
    """A malformed URL stops the start-up with its reason (a settings error), not a traceback later."""
    with pytest.raises(ValueError, match=r"URL|sentinel|port|database|scheme"):
        check_redis_url(url)
    with pytest.raises(ValueError, match="redis_url"):
        Settings(redis_url=url)


# --- a replicated Redis with sentinels --------------------------------------------------------------------------


@dataclass
class RedisNode(ServiceProcess):
    """A redis-server (AOF, fsync always), a replica of `primary` when that is set."""

    name: ClassVar[str] = "redis"
    primary: int | None = None

    def start(self) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed (run .ci/test, which installs it)"
        self.port = self.port or free_ports(1)[0]
        command = [executable, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
                   "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no",
                   "--repl-diskless-sync-delay", "0"]  # fmt: skip  # a replica syncs at once, not after 5 s
        if self.primary is not None:
            command += ["--replicaof", "127.0.0.1", str(self.primary)]
        self._spawn(command, lambda: _answers_ping(self.port), timeout=10)


@dataclass
class SentinelNode(ServiceProcess):
    """A sentinel (`redis-server <conf> --sentinel`) watching the master at `primary` as SERVICE."""

    name: ClassVar[str] = "sentinel"
    primary: int = 0

    def start(self) -> None:
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed (run .ci/test, which installs it)"
        self.port = self.port or free_ports(1)[0]
        config = self.directory / "sentinel.conf"  # a sentinel rewrites its configuration file
        config.write_text(
            f"port {self.port}\nbind 127.0.0.1\ndir {self.directory}\n"
            f"sentinel monitor {SERVICE} 127.0.0.1 {self.primary} 1\n"
            f"sentinel down-after-milliseconds {SERVICE} 500\nsentinel failover-timeout {SERVICE} 5000\n"
        )
        self._spawn([executable, str(config), "--sentinel"], lambda: _answers_ping(self.port), timeout=10)


@dataclass
class SentinelCluster:
    master: RedisNode
    replica: RedisNode
    sentinels: list[SentinelNode]

    @property
    def url(self) -> str:
        hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in self.sentinels)
        return f"redis+sentinel://{hosts}/{SERVICE}/0"

    def sentinel(self) -> redis.Redis:
        return redis.Redis(port=self.sentinels[0].port, decode_responses=True, socket_timeout=2)

    def master_port(self) -> int:
        with self.sentinel() as client:
            _, port = client.sentinel_get_master_addr_by_name(SERVICE)
        return int(port)


Node = TypeVar("Node", RedisNode, SentinelNode)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[SentinelCluster]:
    nodes: list[RedisNode | SentinelNode] = []

    def started(node: Node) -> Node:
        node.directory.mkdir()
        nodes.append(node)
        node.start()
        return node

    try:
        master = started(RedisNode(tmp_path / "master"))
        replica = started(RedisNode(tmp_path / "replica", primary=master.port))
        wait_until(lambda: _replica_online(master.port), what="the replica in sync", timeout=10)
        # Started once the replica is up, so the sentinels' first INFO finds it (else after 10 s).
        sentinels = [started(SentinelNode(tmp_path / f"sentinel{n}", primary=master.port)) for n in range(2)]
        cluster = SentinelCluster(master, replica, sentinels)
        wait_until(lambda: _sentinels_ready(cluster), what="the sentinels to know the replica", timeout=10)
        yield cluster
    finally:
        for node in reversed(nodes):
            node.stop()


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def _replica_online(port: int) -> bool:
    with redis.Redis(port=port, socket_timeout=2) as client:
        info = client.info("replication")
    return bool(info.get("connected_slaves") == 1 and info.get("slave0", {}).get("state") == "online")


def _sentinels_ready(cluster: SentinelCluster) -> bool:
    for node in cluster.sentinels:
        with redis.Redis(port=node.port, decode_responses=True, socket_timeout=2) as client:
            replicas = client.sentinel_slaves(SERVICE)
        if not any(entry["port"] == cluster.replica.port and not entry["is_sdown"] for entry in replicas):
            return False
    return True


def replica_caught_up(cluster: SentinelCluster) -> bool:
    """The replica has every write the master acknowledged so far."""
    with redis.Redis(port=cluster.master.port, socket_timeout=2) as client:
        info = client.info("replication")
    return bool(info.get("slave0", {}).get("offset") == info["master_repl_offset"])


def failed_over(cluster: SentinelCluster) -> bool:
    """The sentinels name the former replica, and it acts as the master."""
    if cluster.master_port() != cluster.replica.port:
        return False
    with redis.Redis(port=cluster.replica.port, socket_timeout=2) as client:
        return bool(client.info("replication")["role"] == "master")


def start_server(cluster: SentinelCluster, tmp_path: Path) -> tuple[ServerProcess, str]:
    prefix = f"sentinel-{uuid.uuid4().hex}:"
    url = cluster.url + "?socket_timeout=1&socket_connect_timeout=1"
    flags = ["--redis-url", url, "--redis-prefix", prefix, "--lock-ttl", "2", "--lock-timeout", "3"]
    server = launch(tmp_path / "tusserver", *flags)
    server.wait_ready()
    return server, prefix


def recorded_offset(port: int, prefix: str, location: str) -> int | None:
    """The offset of the upload's record on the Redis node at `port`."""
    with redis.Redis(port=port, decode_responses=True, socket_timeout=2) as client:
        value = client.get(f"{prefix}upload:{upload_id(location)}")
    return None if value is None else int(json.loads(value)["offset"])


def resume_until_complete_on(port: int, prefix: str, location: str, data: bytes) -> None:
    """Resume (as a tus client would) until the record on the new master says complete.

    A former master still up after a failover takes writes until the server notices the new master
    (it asks the sentinels every MASTER_CHECK_INTERVAL); they are lost when that node becomes a replica,
    and HEAD then shows the offset the new master has: the client resends from there. Until then a HEAD
    may say complete and the next GET (on the new master) 409: the download is checked once the new master
    holds the complete record.
    """
    deadline = time.monotonic() + MASTER_CHECK_INTERVAL + 4
    while recorded_offset(port, prefix, location) != len(data):
        assert time.monotonic() < deadline, "the server still writes to the former master"
        resume_until_complete(location, data, download=False)
        time.sleep(0.05)  # a client's back-off between two looks at the upload
    served = lambda: requests.get(location, timeout=IO_TIMEOUT).status_code == 200  # noqa: E731
    wait_until(served, what="the server to read the upload from the new master", timeout=MASTER_CHECK_INTERVAL + 4)
    assert_downloads_as(location, data)


# --- the README's line -------------------------------------------------------------------------------------------

README = Path(__file__).parents[2] / "README.md"


def readme_sentinel_command() -> list[str]:
    """README "Redis Sentinel"'s command, as words."""
    section = README.read_text().split("\n### Redis Sentinel\n", 1)[1]
    block = section.split("```sh\n", 1)[1].split("```", 1)[0]
    return shlex.split(block)


def test_readme_sentinel_line_runs_with_this_machines_sentinels(cluster: SentinelCluster, tmp_path: Path) -> None:
    """The README's line with its sentinels' addresses and master name replaced by the cluster's (its `...`: the
    other flags): the server finds the master through the sentinels and records an upload there."""
    command = readme_sentinel_command()
    assert (command[:2], command[3:]) == (["tusserver", "--redis-url"], ["..."]), command
    hosts = ",".join(f"127.0.0.1:{sentinel.port}" for sentinel in cluster.sentinels)
    url = re.sub(r"//[^/]+/mymaster/", f"//{hosts}/{SERVICE}/", command[2])
    assert url == f"redis+sentinel://{hosts}/{SERVICE}/0"
    prefix = f"readme-{uuid.uuid4().hex}:"
    server = launch(tmp_path / "tusserver", "--redis-url", url, "--redis-prefix", prefix)
    try:
        server.wait_ready()
        data = random.Random(22).randbytes(MiB + 3)
        location = create_upload(server, len(data))
        assert patch(location, 0, data).status_code == 204
        assert recorded_offset(cluster.master_port(), prefix, location) == len(data)
    finally:
        server.stop()


# --- failovers mid-upload ---------------------------------------------------------------------------------------


def test_sentinel_failover_mid_patch_then_the_upload_completes(cluster: SentinelCluster, tmp_path: Path) -> None:
    """README "Redis Sentinel": `SENTINEL FAILOVER` while a PATCH is half-sent. The PATCH ends as a tus client
    expects (a success or a retryable answer), the server follows the new master, the upload completes
    byte-exact and its record is on the new master."""
    server, prefix = start_server(cluster, tmp_path)
    try:
        data = random.Random(19).randbytes(LENGTH)
        location = create_upload(server, len(data))
        assert patch(location, 0, data[:MiB]).status_code == 204
        wait_until(lambda: replica_caught_up(cluster), what="the replica to catch up", timeout=10)
        headers = PATCH_HEADERS | {"Upload-Offset": str(MiB), "Content-Length": str(len(data) - MiB)}
        half = (len(data) + MiB) // 2
        with connect(server) as sock:
            assert send_all(sock, raw_request("PATCH", target_of(location), headers) + data[MiB:half])
            with cluster.sentinel() as sentinel:
                assert sentinel.execute_command("SENTINEL", "FAILOVER", SERVICE)
            wait_until(lambda: failed_over(cluster), what="the failover", timeout=FAILOVER_TIMEOUT)
            send_all(sock, data[half:])
            answer = read_response(sock)
        assert answer is not None, "the PATCH got no answer"
        assert answer.status in {204, 409, 423, 503} or answer.body.startswith(b"ERR_UPLOAD_INTERRUPTED"), answer
        assert answer.status != 503 or answer.headers.get("retry-after") == "1", answer
        resume_until_complete_on(cluster.replica.port, prefix, location, data)
    finally:
        server.stop()


def test_master_killed_mid_upload_sentinels_fail_over_and_the_upload_completes(
    cluster: SentinelCluster, tmp_path: Path
) -> None:
    """The master dies (kill -9) between two PATCHes: requests get 503 with Retry-After (or succeed) while the
    sentinels promote the replica, then the upload completes byte-exact on the new master."""
    server, prefix = start_server(cluster, tmp_path)
    try:
        data = random.Random(20).randbytes(LENGTH)
        location = create_upload(server, len(data))
        assert patch(location, 0, data[:MiB]).status_code == 204
        wait_until(lambda: replica_caught_up(cluster), what="the replica to catch up", timeout=10)
        cluster.master.kill()
        check_retryable(patch(location, MiB, data[MiB : 2 * MiB]))
        wait_until(lambda: failed_over(cluster), what="the sentinels' failover", timeout=FAILOVER_TIMEOUT)
        resume_until_complete_on(cluster.replica.port, prefix, location, data)
    finally:
        server.stop()


def test_a_master_that_refuses_writes_without_replicas_is_a_503(cluster: SentinelCluster, tmp_path: Path) -> None:
    """README "Redis Sentinel": with `min-replicas-to-write`, a master that lost its replicas (as a former
    master soon does) answers NOREPLICAS; the server answers 503 with Retry-After, not a 500, and the upload
    completes once the master takes writes again."""
    server, _ = start_server(cluster, tmp_path)
    try:
        data = random.Random(21).randbytes(LENGTH)
        location = create_upload(server, len(data))
        assert patch(location, 0, data[:MiB]).status_code == 204
        with redis.Redis(port=cluster.master.port, socket_timeout=2) as master:
            master.config_set("min-replicas-max-lag", 1)
            master.config_set("min-replicas-to-write", 1)
            cluster.replica.kill()
            wait_until(lambda: refuses_writes(master), what="the master to refuse writes", timeout=10)
            check_unavailable(patch(location, MiB, data[MiB:]))
            master.config_set("min-replicas-to-write", 0)
        resume_until_complete(location, data)
    finally:
        server.stop()


def refuses_writes(client: redis.Redis) -> bool:
    try:
        client.set("probe", "1")
    except redis.ResponseError as exc:
        return str(exc).startswith("NOREPLICAS")
    return False


@pytest.mark.anyio
async def test_the_app_builds_and_closes_a_sentinel_client(cluster: SentinelCluster, tmp_path: Path) -> None:
    """In-process: `create_app` with a Sentinel URL reaches the master through the sentinels, and closing
    the app closes every connection (warnings are errors here: an unclosed socket would fail the test)."""
    app = create_app(Settings(data_dir=tmp_path / "data", redis_url=cluster.url, redis_prefix="inproc:"))
    try:
        ref = StorageRef(backend="file", key="x")
        await app.state.tus.state.create(UploadInfo(id="sentinel-check", length=1, storage=ref, created_at=utcnow()))
        with redis.Redis(port=cluster.master.port, decode_responses=True) as direct:
            assert direct.exists("inproc:upload:sentinel-check") == 1
    finally:
        await app.state.tus.aclose()

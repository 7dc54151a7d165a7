"""Issue 6: N stateless tusserver instances behind a load balancer, Redis holding state and locks.

Each test runs 3 `tusserver` processes (uvicorn) sharing one Redis (one key prefix per cluster) and one
data directory. Clients reach them through `RoundRobinProxy` (each request on its own connection, to the
next instance), or talk to one instance directly with raw sockets to crash it mid-PATCH. Every finished
file is compared with its source by SHA-256 (or byte for byte). Instances run with `--lock-ttl 1` so a
killed instance's lock frees itself within a second, and `--lock-timeout 5` so waiting for it is allowed.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests
from tusclient.client import TusClient

from tests.e2e.conftest import SERVERS
from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    TUS,
    KiB,
    MiB,
    RawResponse,
    ServerProcess,
    check_race_outcome,
    connect,
    finish_from_head,
    head_offset,
    launch,
    patch,
    race_patches,
    random_file,
    raw_request,
    read_response,
    send_all,
    sha256_file,
    stored_size,
    target_of,
    tool,
    upload_id,
    wait_for_log,
    wait_until,
)
from tests.e2e.proxy import RoundRobinProxy
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
INSTANCES = 3
SIZE = 1 * MiB


@dataclass
class Cluster:
    """Instances sharing one Redis and one data directory (each `ServerProcess.data_dir` is the shared one)."""

    instances: list[ServerProcess]

    def url_on(self, index: int, location: str) -> str:
        """The upload at `location`, addressed to instance `index`."""
        return self.instances[index].url + upload_id(location)

    def create(self, index: int, length: int) -> str:
        headers = TUS | {"Upload-Length": str(length)}
        response = requests.post(self.instances[index].url, headers=headers, timeout=IO_TIMEOUT)
        assert response.status_code == 201, response.text
        return self.url_on(index, response.headers["Location"])

    def stored(self, location: str) -> Path:
        return self.instances[0].stored_path(location)


def start_cluster(workdir: Path, redis_url: str, count: int = INSTANCES) -> Cluster:
    """Start `count` instances on one Redis (a fresh key prefix) and one data directory; wait until all answer."""
    shared, prefix = workdir / "shared-data", f"cluster{secrets.token_hex(4)}:"
    flags = ["--server", "uvicorn", "--redis-url", redis_url, "--redis-prefix", prefix, "--data-dir", str(shared),
             "--lock-ttl", "1", "--lock-timeout", "5"]  # fmt: skip
    # The later --data-dir wins over the one `launch` passes.
    started = [launch(workdir / f"instance{index}", *flags) for index in range(count)]
    cluster = Cluster([dataclasses.replace(server, data_dir=shared) for server in started])
    try:
        for server in cluster.instances:
            server.wait_ready()
    except AssertionError:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: Cluster) -> None:
    for server in cluster.instances:
        server.stop()


@pytest.fixture
def cluster(request: pytest.FixtureRequest, tmp_path: Path, redis_server: RedisServer) -> Iterator[Cluster]:
    """Three instances on the session's Redis; their logs are shown when a test fails."""
    started = start_cluster(tmp_path, redis_server.url)
    request.node.stash.setdefault(SERVERS, []).extend(started.instances)
    yield started
    stop_cluster(started)


@pytest.fixture
def proxy(cluster: Cluster) -> Iterator[RoundRobinProxy]:
    with RoundRobinProxy([("127.0.0.1", server.port) for server in cluster.instances]) as started:
        yield started


@pytest.fixture
def own_redis_cluster(request: pytest.FixtureRequest, tmp_path: Path, own_redis: RedisServer) -> Iterator[Cluster]:
    started = start_cluster(tmp_path, own_redis.url)
    request.node.stash.setdefault(SERVERS, []).extend(started.instances)
    yield started
    stop_cluster(started)


def wait_for_patches_on_every_instance(cluster: Cluster, location: str) -> None:
    """Each instance's access log shows a successful PATCH of the upload (lines are written after the response)."""
    for server in cluster.instances:
        wait_for_log(server, f'"PATCH {target_of(location)}" 204')


# --- whole uploads through the round-robin proxy ------------------------------------------------------------------


def test_tuspy_upload_spread_over_instances_stores_exact_bytes(
    cluster: Cluster, proxy: RoundRobinProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "source.bin", 3 * MiB)
    with source.open("rb") as stream:
        uploader = TusClient(proxy.origin + "/files/").uploader(file_stream=stream, chunk_size=256 * KiB)
        uploader.upload()
    location: object = uploader.url  # typed as None by tuspy
    assert isinstance(location, str)
    assert sha256_file(cluster.stored(location)) == sha256_file(source)
    wait_for_patches_on_every_instance(cluster, location)


def test_tus_js_client_upload_spread_over_instances_stores_exact_bytes(
    cluster: Cluster, proxy: RoundRobinProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "source.bin", 3 * MiB)
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    command = [tool("node"), "upload.mjs", proxy.origin + "/files/", str(source), str(512 * KiB), "full"]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"node exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    assert sha256_file(cluster.stored(report["url"])) == sha256_file(source)
    wait_for_patches_on_every_instance(cluster, report["url"])


# --- crashes and races, one instance at a time over raw sockets -----------------------------------------------------


def patch_head(location: str, offset: int, length: int) -> bytes:
    headers = PATCH_HEADERS | {"Upload-Offset": str(offset), "Content-Length": str(length)}
    return raw_request("PATCH", target_of(location), headers)


def test_sigkilled_instance_mid_patch_upload_resumes_on_another(cluster: Cluster) -> None:
    data, half = os.urandom(SIZE), SIZE // 2
    location = cluster.create(0, SIZE)
    victim = cluster.instances[0]
    with connect(victim) as sock:
        sock.sendall(patch_head(location, 0, SIZE) + data[:half])
        wait_until(lambda: stored_size(victim, location) == half, what="the PATCH to store its bytes")
        victim.process.kill()  # SIGKILL while it holds the lock, before it records the offset
        victim.process.wait(10)
    # Instance 1 waits for the dead holder's lock to expire (--lock-ttl 1); it never saw an unrecorded offset.
    offset = head_offset(cluster.url_on(1, location))
    assert offset <= half
    finish_from_head(cluster.url_on(2, location), data)
    assert cluster.stored(location).read_bytes() == data


def test_patch_on_other_instance_interrupts_first_without_mixing_bytes(cluster: Cluster) -> None:
    first_data, second_data = os.urandom(SIZE), os.urandom(SIZE)
    location = cluster.create(0, SIZE)
    with connect(cluster.instances[0]) as first:
        first.sendall(patch_head(location, 0, SIZE) + first_data[: 256 * KiB])
        # The first PATCH provably holds the lock once its bytes are on disk.
        wait_until(lambda: stored_size(cluster.instances[0], location) == 256 * KiB, what="the first PATCH's bytes")
        with connect(cluster.instances[1]) as second:
            send_all(second, patch_head(location, 0, SIZE) + second_data)
            check_race_outcome(read_response(second))
        check_race_outcome(read_response(first))
    offset = head_offset(cluster.url_on(2, location))
    assert offset >= 256 * KiB  # what the interrupted PATCH stored stays stored
    assert cluster.stored(location).read_bytes() == first_data[:offset]
    finish_from_head(cluster.url_on(2, location), first_data)
    assert cluster.stored(location).read_bytes() == first_data


def test_racing_patches_on_two_instances_store_one_writers_bytes(cluster: Cluster) -> None:
    datas = [os.urandom(SIZE), os.urandom(SIZE)]
    location = cluster.create(0, SIZE)
    winner = race_patches(cluster.instances[:2], location, datas)
    finish_from_head(cluster.url_on(2, location), winner)
    assert cluster.stored(location).read_bytes() == winner


# --- Redis outages ------------------------------------------------------------------------------------------------


def check_unavailable(response: requests.Response | RawResponse | None) -> None:
    """503 with Retry-After: never a 500, never an answer made up from local state."""
    assert response is not None, "the server closed the connection without an answer"
    status = response.status_code if isinstance(response, requests.Response) else response.status
    assert status == 503, response
    assert "retry-after" in {name.lower() for name in response.headers}, response


def test_redis_outage_between_patches_answers_503_then_upload_resumes(
    own_redis_cluster: Cluster, own_redis: RedisServer
) -> None:
    cluster, data = own_redis_cluster, os.urandom(SIZE)
    location = cluster.create(0, SIZE)
    assert patch(location, 0, data[: SIZE // 2]).status_code == 204
    own_redis.kill()
    check_unavailable(requests.head(cluster.url_on(1, location), headers=TUS, timeout=IO_TIMEOUT))
    check_unavailable(patch(cluster.url_on(2, location), SIZE // 2, data[SIZE // 2 :]))
    own_redis.start()  # same port and directory: the AOF brings the records back
    assert head_offset(cluster.url_on(1, location)) == SIZE // 2
    finish_from_head(cluster.url_on(2, location), data)
    assert sha256_file(cluster.stored(location)) == hashlib.sha256(data).hexdigest()


def test_redis_killed_mid_patch_answers_503_then_upload_resumes(
    own_redis_cluster: Cluster, own_redis: RedisServer
) -> None:
    cluster, data, quarter = own_redis_cluster, os.urandom(SIZE), SIZE // 4
    location = cluster.create(0, SIZE)
    assert patch(location, 0, data[:quarter]).status_code == 204
    with connect(cluster.instances[0]) as sock:
        sock.sendall(patch_head(location, quarter, SIZE - quarter) + data[quarter : 2 * quarter])
        wait_until(lambda: stored_size(cluster.instances[0], location) == 2 * quarter, what="the PATCH's bytes")
        own_redis.kill()  # the holder can no longer renew its lock: it stops reading and cannot record
        check_unavailable(read_response(sock))
    own_redis.start()
    assert quarter <= head_offset(cluster.url_on(1, location)) <= 2 * quarter
    finish_from_head(cluster.url_on(2, location), data)
    assert sha256_file(cluster.stored(location)) == hashlib.sha256(data).hexdigest()

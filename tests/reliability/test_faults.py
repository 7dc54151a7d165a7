"""Issue 19: faults between the server and its stores, injected by `FaultProxy` on real processes.

A `tusserver` process stores bytes on S3 (SeaweedFS) through one proxy, another on Azure Blob (Azurite)
through another; a third keeps state and locks in Redis through a third. For each fault (latency,
connection resets, bursts of 5xx answers, a black hole that accepts connections and never answers) the
clients see a success or `503` with `Retry-After`, never another error; a request that met the fault lets
go of its upload (the next request is not locked out); and once the fault ends the upload completes, byte
for byte what the client sent. The servers run with short deadlines (`--storage-timeout 1`, Redis
`socket_timeout=0.5`) so the whole file stays under a minute.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from tests.azure_server import Azurite
from tests.e2e.helpers import IO_TIMEOUT, TUS, KiB, MiB, ServerProcess, create_upload, launch, patch
from tests.redis_server import RedisServer
from tests.reliability.faultproxy import FaultProxy, FaultStats
from tests.s3_server import SeaweedS3, aws_environment

LENGTH = 6 * MiB + 123  # two 5 MiB parts on S3: the fault meets a full part or a tail
FIRST = 1 * MiB
SMALL = 256 * KiB
RECOVERY = 20.0  # seconds a resume may take once the fault ends (a Redis lock's TTL, retries)
RETRYABLE = {409, 423, 503}  # what a client retries (tus-js-client: 5xx, 409, 423)


def seeded_bytes(seed: int, length: int = LENGTH) -> bytes:
    return random.Random(seed).randbytes(length)


# --- servers behind proxies --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def s3_proxy(seaweedfs: SeaweedS3) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", seaweedfs.port), http=True) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def s3_server(
    s3_proxy: FaultProxy, seaweedfs_bucket: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    flags = ["--storage", "s3", "--s3-bucket", seaweedfs_bucket, "--s3-prefix", f"{uuid.uuid4().hex}/",
             "--s3-endpoint", s3_proxy.endpoint, "--s3-part-size", "5M", "--storage-timeout", "1",
             "--lock-timeout", "2"]  # fmt: skip
    server = launch(tmp_path_factory.mktemp("s3-server"), *flags, env=aws_environment())
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def azure_proxy(azurite: Azurite) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", azurite.port), http=True) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def azure_server(
    azure_proxy: FaultProxy, azurite: Azurite, azurite_container: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    through_proxy = azurite.connection_string.replace(azurite.endpoint, azure_proxy.endpoint)
    flags = ["--storage", "azure", "--azure-connection-string", through_proxy, "--azure-container", azurite_container,
             "--azure-prefix", f"{uuid.uuid4().hex}/", "--azure-block-size", "1M", "--storage-timeout", "1",
             "--lock-timeout", "2"]  # fmt: skip
    server = launch(tmp_path_factory.mktemp("azure-server"), *flags)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def redis_proxy(redis_server: RedisServer) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", redis_server.port)) as proxy:
        yield proxy


@pytest.fixture(scope="module")
def redis_backed_server(redis_proxy: FaultProxy, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    url = f"redis://127.0.0.1:{redis_proxy.port}/0?socket_timeout=0.5&socket_connect_timeout=0.5"
    flags = ["--redis-url", url, "--redis-prefix", f"faults-{uuid.uuid4().hex}:", "--lock-ttl", "2",
             "--lock-timeout", "2"]  # fmt: skip
    server = launch(tmp_path_factory.mktemp("redis-server"), *flags)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def healed(proxy: FaultProxy, server: ServerProcess) -> Iterator[tuple[FaultProxy, ServerProcess]]:
    """A test's proxy and server: the proxy without faults and with fresh counts, healed again after the test."""
    proxy.heal()
    proxy.stats = FaultStats()
    yield proxy, server
    proxy.heal()


@pytest.fixture
def s3(s3_proxy: FaultProxy, s3_server: ServerProcess) -> Iterator[tuple[FaultProxy, ServerProcess]]:
    yield from healed(s3_proxy, s3_server)


@pytest.fixture
def azure(azure_proxy: FaultProxy, azure_server: ServerProcess) -> Iterator[tuple[FaultProxy, ServerProcess]]:
    yield from healed(azure_proxy, azure_server)


@pytest.fixture
def redis(redis_proxy: FaultProxy, redis_backed_server: ServerProcess) -> Iterator[tuple[FaultProxy, ServerProcess]]:
    yield from healed(redis_proxy, redis_backed_server)


# --- what a client sees ------------------------------------------------------------------------------------------


def check_unavailable(response: requests.Response) -> None:
    """A temporary failure as the error table words it: 503, Retry-After, ERR_SERVICE_UNAVAILABLE."""
    assert response.status_code == 503, (response.status_code, response.text)
    assert response.headers.get("Retry-After") == "1", response.headers
    if response.request.method != "HEAD":
        assert response.text.startswith("ERR_SERVICE_UNAVAILABLE:"), response.text


def check_retryable(response: requests.Response) -> None:
    """Any answer during or after a fault: a success, or one that a tus client retries (503 with
    Retry-After); never a 500."""
    if response.status_code == 503:
        check_unavailable(response)
    else:
        assert response.status_code in {200, 204} | RETRYABLE, (response.status_code, response.text)


def patch_during_fault(location: str, offset: int, data: bytes) -> None:
    """A PATCH that meets the fault ends with 503 and Retry-After, and in bounded time."""
    started = time.monotonic()
    check_unavailable(patch(location, offset, data))
    assert time.monotonic() - started < IO_TIMEOUT


def resume_until_complete(location: str, data: bytes, *, within: float = RECOVERY, download: bool = True) -> None:
    """What a tus client does: HEAD for the offset, PATCH the rest, retry what is retryable; then (with
    `download`) the download must be the bytes sent."""
    deadline = time.monotonic() + within
    while True:
        assert time.monotonic() < deadline, f"the upload did not complete within {within} s"
        head = requests.head(location, headers=TUS, timeout=IO_TIMEOUT)
        check_retryable(head)
        if head.status_code == 200:
            offset = int(head.headers["Upload-Offset"])
            assert offset <= len(data)
            if offset == len(data):
                break
            answer = patch(location, offset, data[offset:])
            check_retryable(answer)
            if answer.status_code == 204:
                continue
        time.sleep(0.05)  # a client's back-off before it retries (tus-js-client waits longer)
    if download:
        assert_downloads_as(location, data)


def assert_downloads_as(location: str, data: bytes) -> None:
    answer = requests.get(location, timeout=IO_TIMEOUT)
    assert answer.status_code == 200
    assert answer.content == data, "the finished upload differs from what was sent"


def free_head(location: str, offset: int) -> None:
    """The upload is not held by the request that met the fault: HEAD answers at once, not 423."""
    started = time.monotonic()
    head = requests.head(location, headers=TUS, timeout=IO_TIMEOUT)
    assert head.status_code == 200, head.status_code
    assert int(head.headers["Upload-Offset"]) == offset
    assert time.monotonic() - started < 1.0


# --- S3 ----------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("offset", [0, FIRST], ids=["first-patch", "mid-upload"])
def test_s3_black_hole_ends_in_503_frees_the_upload_and_completes_after(
    s3: tuple[FaultProxy, ServerProcess], offset: int
) -> None:
    """Defect 4: S3 accepts connections and never answers. The PATCH gets 503 within its deadline (botocore's
    `Expect: 100-continue` wait included), the lock is released (HEAD answers, a second PATCH gets 503, not
    423), and once S3 answers again the upload completes byte-exact."""
    proxy, server = s3
    data = seeded_bytes(offset)
    location = create_upload(server, len(data))
    if offset:
        assert patch(location, 0, data[:offset]).status_code == 204
    proxy.black_hole()
    patch_during_fault(location, offset, data[offset : offset + SMALL])
    free_head(location, offset)
    patch_during_fault(location, offset, data[offset : offset + SMALL])
    assert proxy.stats.swallowed > 0
    proxy.heal()
    resume_until_complete(location, data)


def test_s3_resets_end_in_503_and_the_upload_completes_after(s3: tuple[FaultProxy, ServerProcess]) -> None:
    """Every connection to S3 is reset after 512 KiB (a full part's upload is cut mid-body, and so is
    botocore's every retry): 503, then the upload completes byte-exact."""
    proxy, server = s3
    data = seeded_bytes(2)
    location = create_upload(server, len(data))
    proxy.resets(after=SMALL * 2)
    patch_during_fault(location, 0, data)
    assert proxy.stats.resets > 0
    proxy.heal()
    resume_until_complete(location, data)


def test_s3_5xx_burst_ends_in_503_and_the_upload_completes_after(s3: tuple[FaultProxy, ServerProcess]) -> None:
    """S3 answers every request 503 ServiceUnavailable: the client gets 503 with Retry-After, not a 500; then
    the upload completes byte-exact."""
    proxy, server = s3
    data = seeded_bytes(3)
    location = create_upload(server, len(data))
    assert patch(location, 0, data[:FIRST]).status_code == 204
    proxy.errors(503)
    patch_during_fault(location, FIRST, data[FIRST:])
    free_head(location, FIRST)
    proxy.heal()
    resume_until_complete(location, data)


def test_s3_single_5xx_is_retried_and_the_client_never_sees_it(s3: tuple[FaultProxy, ServerProcess]) -> None:
    """One 503 from S3 is retried by the server itself: the PATCH succeeds."""
    proxy, server = s3
    data = seeded_bytes(4, 2 * SMALL)
    location = create_upload(server, len(data))
    proxy.errors(503, count=1)
    answer = patch(location, 0, data)
    assert answer.status_code == 204, answer.text
    assert proxy.stats.canned_responses > 0
    resume_until_complete(location, data)


def test_s3_latency_slows_the_upload_but_it_completes(s3: tuple[FaultProxy, ServerProcess]) -> None:
    """Every chunk to and from S3 waits 10 ms: the upload, a part and a tail, completes byte-exact under the
    latency (each answer a success or 503 with Retry-After)."""
    proxy, server = s3
    data = seeded_bytes(5)
    location = create_upload(server, len(data))
    proxy.latency(0.01)
    resume_until_complete(location, data)
    assert proxy.stats.delayed_chunks > 0


# --- Azure Blob --------------------------------------------------------------------------------------------------


def test_azure_server_busy_ends_in_503_and_the_upload_completes_after(
    azure: tuple[FaultProxy, ServerProcess],
) -> None:
    """Issue 22: Azure throttles (503 ServerBusy on every request): the client gets 503 with Retry-After, not a
    500 with an SDK traceback; once Azure answers, the upload completes byte-exact."""
    proxy, server = azure
    data = seeded_bytes(9)
    location = create_upload(server, len(data))
    assert patch(location, 0, data[:FIRST]).status_code == 204
    proxy.errors(503, code="ServerBusy")
    patch_during_fault(location, FIRST, data[FIRST:])
    free_head(location, FIRST)
    proxy.heal()
    resume_until_complete(location, data)
    assert "Traceback" not in server.log()


def test_azure_single_server_busy_is_retried_and_the_client_never_sees_it(
    azure: tuple[FaultProxy, ServerProcess],
) -> None:
    proxy, server = azure
    data = seeded_bytes(10, 2 * SMALL)
    location = create_upload(server, len(data))
    proxy.errors(503, count=1, code="ServerBusy")
    answer = patch(location, 0, data)
    assert answer.status_code == 204, answer.text
    assert proxy.stats.canned_responses > 0
    resume_until_complete(location, data)


@pytest.mark.parametrize("offset", [0, FIRST], ids=["first-patch", "mid-upload"])
def test_azure_black_hole_ends_in_503_frees_the_upload_and_completes_after(
    azure: tuple[FaultProxy, ServerProcess], offset: int
) -> None:
    """Azure accepts connections and never answers: a timeout, 503 within the call's deadline; the lock is
    released, and once Azure answers again the upload completes byte-exact."""
    proxy, server = azure
    data = seeded_bytes(11 + offset)
    location = create_upload(server, len(data))
    if offset:
        assert patch(location, 0, data[:offset]).status_code == 204
    proxy.black_hole()
    patch_during_fault(location, offset, data[offset : offset + SMALL])
    free_head(location, offset)
    assert proxy.stats.swallowed > 0
    proxy.heal()
    resume_until_complete(location, data)


# --- Redis -------------------------------------------------------------------------------------------------------


def test_redis_black_hole_ends_in_503_and_the_upload_completes_after(
    redis: tuple[FaultProxy, ServerProcess],
) -> None:
    """Redis accepts connections and never answers: PATCH and HEAD get 503 with Retry-After in bounded time,
    never a 500; once Redis answers, the upload completes (a lock left behind expires with its TTL)."""
    proxy, server = redis
    data = seeded_bytes(6)
    location = create_upload(server, len(data))
    assert patch(location, 0, data[:FIRST]).status_code == 204
    proxy.black_hole()
    patch_during_fault(location, FIRST, data[FIRST:])
    check_unavailable(requests.head(location, headers=TUS, timeout=IO_TIMEOUT))
    assert proxy.stats.swallowed > 0
    proxy.heal()
    resume_until_complete(location, data)


def test_redis_resets_end_in_503_and_the_upload_completes_after(redis: tuple[FaultProxy, ServerProcess]) -> None:
    """Every connection to Redis is reset, and every new one at once: 503 with Retry-After; then the upload
    completes byte-exact."""
    proxy, server = redis
    data = seeded_bytes(7)
    location = create_upload(server, len(data))
    assert patch(location, 0, data[:FIRST]).status_code == 204
    proxy.resets()
    patch_during_fault(location, FIRST, data[FIRST:])
    assert proxy.stats.resets > 0
    proxy.heal()
    resume_until_complete(location, data)


def test_redis_latency_slows_requests_but_the_upload_completes(redis: tuple[FaultProxy, ServerProcess]) -> None:
    """Every chunk to and from Redis waits 20 ms (lock renewals included): the upload completes byte-exact."""
    proxy, server = redis
    data = seeded_bytes(8)
    proxy.latency(0.02)
    location = create_upload(server, len(data))
    resume_until_complete(location, data)
    assert proxy.stats.delayed_chunks > 0

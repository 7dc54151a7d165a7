"""Shared fixtures: every async test runs on asyncio through anyio's pytest plugin; a real Redis; real S3 servers;
Azurite for Azure Blob."""

import signal
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from storage_backends.azure.store import AzureBlobStorage, AzureOptions
from storage_backends.s3.store import S3Options, S3Storage
from tests.azure_server import Azurite, create_container
from tests.redis_server import RedisServer
from tests.s3_server import MotoS3, SeaweedS3, aws_environment, create_bucket


def pytest_configure(config: pytest.Config) -> None:
    """Tests press Ctrl-C on the commands they start (SIGINT). A run started in the background by a shell without
    job control inherits SIGINT ignored, and so would every child: a Python one then never sees Ctrl-C. The
    default handler here gives children the default disposition back (a handler, unlike "ignored", is reset at
    exec)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One redis-server for the whole run; tests get a flushed database through `redis_client`."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
async def redis_client(redis_server: RedisServer) -> AsyncIterator[Redis]:
    client = Redis.from_url(redis_server.url, decode_responses=True)
    await client.flushdb()
    yield client
    await client.aclose()


@pytest.fixture
def own_redis(tmp_path: Path) -> Iterator[RedisServer]:
    """A redis-server of the test's own, to pause, kill or restart (the session's one stays up)."""
    (tmp_path / "redis").mkdir()
    server = RedisServer(tmp_path / "redis")
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def seaweedfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedS3]:
    """One real S3 server (SeaweedFS `weed mini`) for the whole run; make a bucket per test with `create_bucket`."""
    server = SeaweedS3(tmp_path_factory.mktemp("seaweedfs"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def moto_s3(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoS3]:
    """One moto S3 server process for the whole run (5 MiB minimum part size, as on AWS)."""
    server = MotoS3(tmp_path_factory.mktemp("moto"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def s3_bucket_name() -> str:
    """A fresh, valid bucket name; not created: the test creates it on its server with `create_bucket`."""
    return f"t-{uuid.uuid4().hex[:20]}"


@pytest.fixture
def aws_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """The test servers' credentials in the environment, where the standard AWS chain finds them."""
    for name, value in aws_environment().items():
        monkeypatch.setenv(name, value)


@pytest.fixture(scope="session")
def seaweedfs_bucket(seaweedfs: SeaweedS3) -> str:
    """One bucket for the run: a new bucket's first write costs SeaweedFS ~0.2 s, so tests get key prefixes."""
    create_bucket(seaweedfs.endpoint, "tusserver-tests")
    return "tusserver-tests"


@pytest.fixture(scope="session")
def moto_bucket(moto_s3: MotoS3) -> str:
    create_bucket(moto_s3.endpoint, "tusserver-tests")
    return "tusserver-tests"


def _s3_storage(endpoint: str, bucket: str) -> S3Storage:
    """A storage of the test's own: a fresh key prefix in the session's bucket."""
    return S3Storage(S3Options(bucket=bucket, prefix=f"{uuid.uuid4().hex}/", endpoint=endpoint, region="us-east-1"))


@pytest.fixture
def s3_storage_on_seaweedfs(seaweedfs: SeaweedS3, seaweedfs_bucket: str, aws_credentials: None) -> S3Storage:
    """An S3Storage on the session's SeaweedFS, under a fresh prefix; the caller closes it (`aclose`)."""
    return _s3_storage(seaweedfs.endpoint, seaweedfs_bucket)


@pytest.fixture
def s3_storage_on_seaweedfs_https(
    seaweedfs: SeaweedS3, seaweedfs_bucket: str, aws_credentials: None, monkeypatch: pytest.MonkeyPatch
) -> S3Storage:
    """The same over https, where botocore sends CRC32 checksum trailers (as it would to AWS); the
    caller closes it (`aclose`)."""
    monkeypatch.setenv("AWS_CA_BUNDLE", str(seaweedfs.certificate))
    return _s3_storage(seaweedfs.https_endpoint, seaweedfs_bucket)


@pytest.fixture
def s3_storage_on_moto(moto_s3: MotoS3, moto_bucket: str, aws_credentials: None) -> S3Storage:
    """An S3Storage on the session's moto server (AWS's error codes, the 5 MiB rule), under a fresh
    prefix; the caller closes it (`aclose`)."""
    return _s3_storage(moto_s3.endpoint, moto_bucket)


@pytest.fixture(scope="session")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    """One Azurite (Azure Blob emulator, in memory) for the whole run; tests get fresh blob name prefixes."""
    server = Azurite(tmp_path_factory.mktemp("azurite"))
    server.start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def azurite_container(azurite: Azurite) -> str:
    create_container(azurite.connection_string, "tusserver-tests")
    return "tusserver-tests"


@pytest.fixture
def azure_storage(azurite: Azurite, azurite_container: str) -> AzureBlobStorage:
    """An AzureBlobStorage on the session's Azurite, under a fresh prefix; the caller closes it (`aclose`)."""
    options = AzureOptions(
        container=azurite_container, prefix=f"{uuid.uuid4().hex}/", connection_string=azurite.connection_string
    )
    return AzureBlobStorage(options)

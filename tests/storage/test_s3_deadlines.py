"""Issue 19, defect 4: every S3 call has a deadline. A store that accepts connections and never answers
(botocore waits for `100 Continue` before it sends a part, with no timeout of aiohttp's own) or stops in
the middle of a download fails the call as unavailable (503) in bounded time, instead of hanging.
On SeaweedFS, behind `FaultProxy` (tests/reliability/faultproxy.py)."""

from __future__ import annotations

import io
import time
import uuid
from collections.abc import AsyncIterator, Iterator

import anyio
import pytest
from botocore.exceptions import IncompleteReadError, ResponseStreamingError

from storage_backends.base import StorageRef
from storage_backends.errors import StorageError, StorageUnavailableError
from storage_backends.s3.calls import MIN_COPY_RATE, MIN_SEND_RATE, call_deadline, s3_errors
from storage_backends.s3.store import S3Options, S3Storage
from tests.reliability.faultproxy import FaultProxy
from tests.s3_server import REGION, SeaweedS3

MiB = 1024 * 1024
TIMEOUT = 0.5
BOUND = 10.0  # a call that takes longer than this hangs: fail the test instead of waiting for it


@pytest.mark.parametrize(
    ("operation", "params", "expected"),
    [
        ("head_object", {"Key": "k"}, 2.0),
        ("upload_part", {"ContentLength": 8 * MiB}, 2.0 + 8 * MiB / MIN_SEND_RATE),
        ("upload_part_copy", {"CopySourceRange": f"bytes=0-{16 * MiB - 1}"}, 2.0 + 16 * MiB / MIN_COPY_RATE),
        ("complete_multipart_upload", {"MultipartUpload": {"Parts": [{}] * 1000}}, 2.0 + 30.0),
    ],
    ids=["no-body", "part", "copy", "complete"],
)
def test_a_calls_deadline_grows_with_its_bytes(operation: str, params: dict[str, object], expected: float) -> None:
    assert call_deadline(2.0, operation, params) == pytest.approx(expected)


@pytest.mark.parametrize(
    "raised",
    [
        ResponseStreamingError(error="reset"),
        IncompleteReadError(actual_bytes=1, expected_bytes=2),
        TimeoutError("no answer within 1 s"),
    ],
    ids=lambda value: type(value).__name__,
)
def test_broken_or_missing_answers_are_unavailable(raised: Exception) -> None:
    """A body cut short, shorter than announced, or no answer in time: 503, a retry may work."""
    with pytest.raises(StorageError) as caught, s3_errors("read k"):
        raise raised
    assert type(caught.value) is StorageUnavailableError
    assert str(caught.value).startswith("read k: ")


@pytest.fixture
def proxy(seaweedfs: SeaweedS3) -> Iterator[FaultProxy]:
    with FaultProxy(("127.0.0.1", seaweedfs.port), http=True) as proxy:
        yield proxy


@pytest.fixture
async def storage(proxy: FaultProxy, seaweedfs_bucket: str, aws_credentials: None) -> AsyncIterator[S3Storage]:
    options = S3Options(
        bucket=seaweedfs_bucket, prefix=f"{uuid.uuid4().hex}/", endpoint=proxy.endpoint, region=REGION, timeout=TIMEOUT
    )
    storage = S3Storage(options)
    yield storage
    await storage.aclose()


async def put(storage: S3Storage, key: str, data: bytes) -> None:
    # A file-like body, as parts and tails are: botocore sends it with `Expect: 100-continue`.
    await storage._call(f"put {key}", "put_object", Key=key, Body=io.BytesIO(data), ContentLength=len(data))


@pytest.mark.anyio
async def test_a_store_that_never_answers_fails_the_call_within_its_deadline(
    storage: S3Storage, proxy: FaultProxy
) -> None:
    data = b"x" * (256 * 1024)
    key = storage.options.prefix + "stuck"
    await put(storage, key, data)  # the connection pool is warm: the black hole takes open connections too
    proxy.black_hole()
    started = time.monotonic()
    with anyio.fail_after(BOUND), pytest.raises(StorageUnavailableError, match="no answer within"):
        await put(storage, key, data)
    assert time.monotonic() - started < call_deadline(TIMEOUT, "put_object", {"ContentLength": len(data)}) + 1
    assert proxy.stats.swallowed > 0


@pytest.mark.anyio
async def test_a_download_that_stops_mid_body_fails_within_the_read_timeout(
    storage: S3Storage, proxy: FaultProxy
) -> None:
    """Each read of an answer has a deadline: S3 falls silent after the first bytes of a GET."""
    key = storage.options.prefix + "big"
    await put(storage, key, b"y" * (32 * MiB))
    pieces = storage.read(StorageRef(backend="s3", key=key))
    assert await anext(pieces)
    proxy.black_hole()
    with anyio.fail_after(BOUND), pytest.raises(StorageUnavailableError):
        await drain(pieces)


async def drain(pieces: AsyncIterator[bytes]) -> None:
    async for _ in pieces:
        pass

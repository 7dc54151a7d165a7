"""The S3 backend through the HTTP app (README "S3 storage"): byte-exact uploads across part boundaries,
deferred lengths, joins, checksums, termination, expiry, downloads, limits, outages and restarts.

On the session's SeaweedFS (and moto where stated), each test under a fresh key prefix, with 5 MiB parts
(S3's minimum), so a few MiB cross several part boundaries. What the bucket holds is read with boto3.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import boto3
import httpx
import pytest
from types_boto3_s3 import S3Client

from storage_backends.errors import StorageError
from storage_backends.s3.layout import MAX_OBJECT_SIZE, MiB, tail_key
from storage_backends.s3.store import S3Options, S3Storage
from tests.http.asgi import open_client, upload_id
from tests.http.clock import LIFETIME, FakeClock, clocked_app
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, SeaweedS3, client_config, create_bucket
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.context import TusContext
from tusserver.coordination.cleanup import remove_expired
from tusserver.coordination.locking import Lease
from tusserver.coordination.state import OutboxEvent, SQLiteStateStore
from tusserver.protocol.model import UploadInfo

PART = 5 * MiB
PARTIAL = {"Upload-Concat": "partial"}


def small_parts(options: S3Options) -> S3Storage:
    """A storage like `options` with 5 MiB parts, known length or deferred."""
    return S3Storage(replace(options, part_size=PART, deferred_part_size=PART))


@pytest.fixture
async def storage(s3_storage_on_seaweedfs: S3Storage) -> AsyncIterator[S3Storage]:
    """Overrides conftest's storage for this module: S3 on SeaweedFS with 5 MiB parts."""
    s3 = small_parts(s3_storage_on_seaweedfs.options)
    yield s3
    await s3.aclose()


@pytest.fixture(params=["seaweedfs", "moto"])
async def any_s3(request: pytest.FixtureRequest) -> AsyncIterator[S3Storage]:
    """S3 with 5 MiB parts on SeaweedFS, then on moto (which enforces the 5 MiB minimum part size)."""
    s3: S3Storage = request.getfixturevalue(f"s3_storage_on_{request.param}")
    s3 = small_parts(s3.options)
    yield s3
    await s3.aclose()


@dataclass
class Bucket:
    """What an S3Storage's prefix holds, read straight from the server with boto3."""

    client: S3Client
    options: S3Options

    def object_keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.options.bucket, Prefix=self.options.prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def multipart_uploads(self) -> list[str]:
        """The keys of the multipart uploads still in progress (neither completed nor aborted)."""
        listing = self.client.list_multipart_uploads(Bucket=self.options.bucket, Prefix=self.options.prefix)
        return sorted(upload["Key"] for upload in listing.get("Uploads", []))

    def part_numbers(self, key: str) -> list[int]:
        """The part numbers uploaded so far to the one multipart upload of `key`, as ListParts shows them."""
        (upload,) = self.client.list_multipart_uploads(Bucket=self.options.bucket, Prefix=key)["Uploads"]
        listing = self.client.list_parts(Bucket=self.options.bucket, Key=key, UploadId=upload["UploadId"])
        return sorted(part["PartNumber"] for part in listing.get("Parts", []))

    def read(self, key: str) -> bytes:
        return self.client.get_object(Bucket=self.options.bucket, Key=key)["Body"].read()

    def content_type(self, key: str) -> str:
        return self.client.head_object(Bucket=self.options.bucket, Key=key)["ContentType"]

    def key_of(self, location: str) -> str:
        """The object key of the upload at `location`."""
        return self.options.prefix + upload_id(location)


@contextmanager
def bucket_of(storage: S3Storage) -> Iterator[Bucket]:
    client = boto3.client(
        "s3", endpoint_url=storage.options.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, config=client_config(),
    )  # fmt: skip
    try:
        yield Bucket(client, storage.options)
    finally:
        client.close()


@pytest.fixture
def bucket(storage: S3Storage) -> Iterator[Bucket]:
    with bucket_of(storage) as bucket:
        yield bucket


def at(offset: int, length: int | None = None) -> dict[str, str]:
    """PATCH headers for an append at `offset`, optionally declaring the Upload-Length."""
    declared = {"Upload-Length": str(length)} if length is not None else {}
    return PATCH_HEADERS | {"Upload-Offset": str(offset)} | declared


async def patch(client: httpx.AsyncClient, location: str, offset: int, data: bytes, **headers: str) -> int:
    """PATCH `data` at `offset`; asserts 204 and the new offset, and returns it."""
    response = await client.patch(location, headers=at(offset) | headers, content=data)
    assert response.status_code == 204, response.text
    assert response.headers["Upload-Offset"] == str(offset + len(data))
    return offset + len(data)


async def download(client: httpx.AsyncClient, location: str) -> bytes:
    response = await client.get(location)
    assert response.status_code == 200, response.text
    return response.content


async def finished(client: httpx.AsyncClient, data: bytes, **headers: str) -> str:
    """An upload holding `data`, every byte sent in one PATCH; returns its URL."""
    location = await create(client, len(data), **headers)
    if data:
        await patch(client, location, 0, data)
    return location


def sha1(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


def only_the_object(bucket: Bucket, location: str) -> None:
    """The finished upload is one plain object: no tail object and no multipart upload is left."""
    assert bucket.object_keys() == [bucket.key_of(location)]  # no tail object
    assert bucket.multipart_uploads() == []


# --- PATCH bodies of any size, across part boundaries ------------------------------------------------------------


@pytest.mark.anyio
async def test_mixed_patch_sizes_across_part_boundaries_are_byte_exact(
    client: httpx.AsyncClient, bucket: Bucket
) -> None:
    """PROTOCOL.md items 18, 29: each PATCH adds exactly its bytes; the finished object is the bytes sent, in
    order (GET and the bucket agree), and completion leaves no tail object or multipart upload behind."""
    sizes = [1, 4 * MiB, PART - 1, PART, PART + 1, 17 * MiB]
    data = os.urandom(sum(sizes))
    location = await create(client, len(data))
    offset = 0
    for size in sizes:
        offset = await patch(client, location, offset, data[offset : offset + size])
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": str(len(data))})])
    assert await download(client, location) == data
    assert bucket.read(bucket.key_of(location)) == data
    only_the_object(bucket, location)


@pytest.mark.anyio
@pytest.mark.parametrize("declared_with_bytes", [True, False], ids=["with-last-bytes", "in-empty-patch"])
async def test_deferred_length_upload_under_one_part_completes_byte_exact(
    client: httpx.AsyncClient, bucket: Bucket, declared_with_bytes: bool
) -> None:
    """PROTOCOL.md items 48, 52, 55: Upload-Defer-Length: 1, then the length declared in the last PATCH (with
    its bytes, or empty once every byte is in) completes an upload smaller than one part."""
    data = os.urandom(3 * MiB + 123)
    location = await create(client)
    offset = await patch(client, location, 0, data[: 2 * MiB])
    if declared_with_bytes:
        await patch(client, location, offset, data[offset:], **{"Upload-Length": str(len(data))})
    else:
        offset = await patch(client, location, offset, data[offset:])
        await patch(client, location, offset, b"", **{"Upload-Length": str(len(data))})
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={
        "Upload-Offset": str(len(data)), "Upload-Length": str(len(data)), "Upload-Defer-Length": None})])  # fmt: skip
    assert await download(client, location) == data
    assert bucket.read(bucket.key_of(location)) == data
    only_the_object(bucket, location)


# --- creation ----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_zero_length_upload_is_an_empty_object(client: httpx.AsyncClient, bucket: Bucket) -> None:
    """PROTOCOL.md item 36: Upload-Length: 0 is complete at creation; S3 holds an empty object, no multipart upload."""
    location = await create(client, 0)
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "0", "Upload-Length": "0"})])
    assert await download(client, location) == b""
    assert bucket.read(bucket.key_of(location)) == b""
    only_the_object(bucket, location)


@pytest.mark.anyio
async def test_creation_with_upload_of_every_byte_completes_the_object(
    client: httpx.AsyncClient, bucket: Bucket
) -> None:
    """PROTOCOL.md item 43: a POST body holding the whole upload (over one part) finishes it."""
    data = os.urandom(PART + 17)
    response = await client.post("/files/", headers=TUS | {"Upload-Length": str(len(data)),
                                  "Content-Type": "application/offset+octet-stream"}, content=data)  # fmt: skip
    assert response.status_code == 201, response.text
    assert response.headers["Upload-Offset"] == str(len(data))
    location = response.headers["Location"]
    assert bucket.read(bucket.key_of(location)) == data
    only_the_object(bucket, location)


# --- finished uploads and retries --------------------------------------------------------------------------------


class CompletionNotRecorded(MemoryStateStore):
    """A state store that fails to record the first completed upload, as if the server crashed after the
    storage completed it and before the record said so."""

    def __init__(self) -> None:
        super().__init__()
        self.failed = False

    async def save(self, info: UploadInfo, *, lease: Lease | None = None, events: Sequence[OutboxEvent] = ()) -> None:
        if info.is_complete and not self.failed:
            self.failed = True
            raise OSError("the server crashed")
        await super().save(info, lease=lease, events=events)


def length_headers(deferred: bool, length: int) -> dict[str, str]:
    """The Upload-Length a PATCH of a deferred-length upload declares (none for a known length)."""
    return {"Upload-Length": str(length)} if deferred else {}


@pytest.mark.anyio
@pytest.mark.parametrize("deferred", [False, True], ids=["known-length", "deferred-length"])
async def test_empty_patch_on_finished_upload_returns_204(client: httpx.AsyncClient, deferred: bool) -> None:
    """PROTOCOL.md items 25, 53, 55: once the upload is finished (its tails removed), an empty PATCH at its end,
    such as the retry of the empty PATCH that declared the length, -> 204 with the same offset."""
    location = await create(client, None if deferred else 6)
    offset = await patch(client, location, 0, b"abcdef")
    await patch(client, location, offset, b"", **{"Upload-Length": "6"})  # declares it, or repeats it
    await run(client, [
        Exchange("PATCH", location, at(6) | length_headers(deferred, 6), expect=204,
                 expect_headers={"Upload-Offset": "6"}),
        Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "6", "Upload-Length": "6"}),
    ])  # fmt: skip
    assert await download(client, location) == b"abcdef"


@pytest.mark.anyio
@pytest.mark.parametrize("deferred", [False, True], ids=["known-length", "deferred-length"])
async def test_patch_retried_after_unrecorded_completion_returns_204(
    storage: S3Storage, bucket: Bucket, tmp_path: Path, deferred: bool
) -> None:
    """PROTOCOL.md items 28, 29 and README "S3 storage" (completion "repeated after a crash is harmless"): S3
    completed the upload (tails removed) but recording it failed (500); the retry of that PATCH from the
    offset HEAD reports -> 204 with the full offset, and the object is byte-exact."""
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=storage, state=CompletionNotRecorded())
    async with open_client(app) as client:
        location = await create(client, None if deferred else 6)
        await patch(client, location, 0, b"abc")
        last = at(3) | length_headers(deferred, 6)
        await run(client, [
            Exchange("PATCH", location, last, b"def", expect=500),
            Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "3"}),
            Exchange("PATCH", location, last, b"def", expect=204, expect_headers={"Upload-Offset": "6"}),
        ])  # fmt: skip
        assert await download(client, location) == b"abcdef"
    only_the_object(bucket, location)


# --- concatenation -----------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_final_of_mixed_size_partials_is_byte_exact(any_s3: S3Storage, tmp_path: Path) -> None:
    """PROTOCOL.md item 75: partials of 1 B, 3 MiB, 6 MiB, 0 B and 5 MiB + 7 joined by a final POST; the final
    holds their bytes in order. On moto too, which rejects a completion with a part under 5 MiB but the last."""
    sizes = [1, 3 * MiB, 6 * MiB, 0, PART + 7]
    pieces = [os.urandom(size) for size in sizes]
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=any_s3, state=MemoryStateStore())
    async with open_client(app) as client:
        partials = [await finished(client, piece, **PARTIAL) for piece in pieces]
        response = await client.post("/files/", headers=TUS | {"Upload-Concat": "final;" + " ".join(partials)})
        assert response.status_code == 201, response.text
        final = response.headers["Location"]
        await run(client, [Exchange("HEAD", final, TUS, expect_headers={
            "Upload-Offset": str(sum(sizes)), "Upload-Length": str(sum(sizes))})])  # fmt: skip
        assert await download(client, final) == b"".join(pieces)
    with bucket_of(any_s3) as bucket:
        assert bucket.read(bucket.key_of(final)) == b"".join(pieces)
        assert bucket.multipart_uploads() == []


# --- checksum ----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_checksum_mismatch_across_part_boundary_then_retry_is_byte_exact(
    client: httpx.AsyncClient, bucket: Bucket
) -> None:
    """PROTOCOL.md item 62: a PATCH that fills part 1 and starts part 2 with corrupted bytes fails its sha1 ->
    460, offset unchanged; the retry with the right bytes uploads part 1 again and succeeds. SeaweedFS keeps
    both uploads of part 1, so completion must name the retry's ETag for the object to be byte-exact."""
    data = os.urandom(7 * MiB)
    location = await create(client, len(data))
    offset = await patch(client, location, 0, data[: 3 * MiB])
    chunk = data[offset:]
    corrupted = bytes([chunk[0] ^ 0xFF]) + chunk[1:-1] + bytes([chunk[-1] ^ 0xFF])
    checksum = {"Upload-Checksum": sha1(chunk)}
    await run(client, [
        Exchange("PATCH", location, at(offset) | checksum, corrupted, expect=460, expect_code="ERR_CHECKSUM_MISMATCH"),
        Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": str(offset)}),
    ])  # fmt: skip
    assert bucket.part_numbers(bucket.key_of(location)) == [1]  # the corrupted part 1 is in S3
    await run(client, [Exchange("PATCH", location, at(offset) | checksum, chunk, expect=204,
                                expect_headers={"Upload-Offset": str(len(data))})])  # fmt: skip
    assert await download(client, location) == data
    assert bucket.read(bucket.key_of(location)) == data
    only_the_object(bucket, location)


# --- termination and expiry --------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_delete_of_unfinished_upload_removes_tails_and_aborts_the_multipart_upload(
    client: httpx.AsyncClient, bucket: Bucket
) -> None:
    """PROTOCOL.md items 68, 69: an upload with a full part and two tails in S3; after DELETE nothing is left
    under the prefix, no multipart upload is in progress, and the upload is unknown."""
    location = await create(client, 3 * PART)
    offset = await patch(client, location, 0, os.urandom(3 * MiB))
    await patch(client, location, offset, os.urandom(3 * MiB))  # fills part 1, the rest goes to a tail of part 2
    key = bucket.key_of(location)
    (tail,) = bucket.object_keys()  # the tail of part 1 went once the record named the new one
    assert tail.startswith(tail_key(key, 2))
    assert bucket.part_numbers(key) == [1]
    await run(client, [Exchange("DELETE", location, TUS, expect=204), Exchange("HEAD", location, TUS, expect=404)])
    assert bucket.object_keys() == []
    assert bucket.multipart_uploads() == []


@pytest.mark.anyio
async def test_delete_of_finished_upload_removes_the_object(client: httpx.AsyncClient, bucket: Bucket) -> None:
    """PROTOCOL.md item 71: DELETE of a finished upload -> 204 and its object is gone."""
    location = await finished(client, os.urandom(PART + 1))
    assert bucket.object_keys() == [bucket.key_of(location)]
    await run(client, [Exchange("DELETE", location, TUS, expect=204), Exchange("HEAD", location, TUS, expect=404)])
    assert bucket.object_keys() == []
    assert bucket.multipart_uploads() == []


@pytest.mark.anyio
async def test_sweep_removes_expired_upload_with_its_parts_and_tails(
    storage: S3Storage, bucket: Bucket, tmp_path: Path
) -> None:
    """PROTOCOL.md item 59: an unfinished upload past its expiry (a full part and two tails in S3) is removed by the
    cleanup sweep: multipart upload aborted, every object under the prefix gone, the upload unknown."""
    clock = FakeClock()
    app = clocked_app(clock, storage, MemoryStateStore(), tmp_path)
    async with open_client(app) as client:
        location = await create(client, 3 * PART)
        offset = await patch(client, location, 0, os.urandom(3 * MiB))
        await patch(client, location, offset, os.urandom(3 * MiB))
        key = bucket.key_of(location)
        (tail,) = bucket.object_keys()
        assert tail.startswith(tail_key(key, 2))
        assert bucket.part_numbers(key) == [1]
        clock.advance(LIFETIME)
        tus: TusContext = app.state.tus
        assert await remove_expired(tus, clock()) == [upload_id(location)]
        await run(client, [Exchange("HEAD", location, TUS, expect=404)])
    assert bucket.object_keys() == []
    assert bucket.multipart_uploads() == []


# --- downloads ---------------------------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-0", 0, 1), (f"bytes={PART - 10}-{PART + 9}", PART - 10, PART + 10),
     ("bytes=-24", PART + 1000, PART + 1024)],
    ids=["first-byte", "across-parts", "suffix"],
)  # fmt: skip
async def test_range_of_finished_upload_returns_206_with_its_bytes(
    client: httpx.AsyncClient, range_header: str, start: int, end: int
) -> None:
    """RFC 9110 §14.4, §15.3.7: a Range GET of a finished S3 upload (two parts) -> 206 with exactly those bytes."""
    data = os.urandom(PART + 1024)
    location = await finished(client, data)
    response = await client.get(location, headers={"Range": range_header})
    assert response.status_code == 206, response.text
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert response.content == data[start:end]


@pytest.mark.anyio
async def test_object_content_type_is_the_filetype_metadata(client: httpx.AsyncClient, bucket: Bucket) -> None:
    """README "S3 storage": the finished object carries the `filetype` metadata as its Content-Type."""
    metadata = "filename cGljLnBuZw==,filetype " + base64.b64encode(b"image/png").decode()
    location = await finished(client, os.urandom(1000), **{"Upload-Metadata": metadata})
    assert bucket.content_type(bucket.key_of(location)) == "image/png"


@pytest.mark.anyio
async def test_get_of_object_gone_from_the_bucket_returns_404(client: httpx.AsyncClient, bucket: Bucket) -> None:
    """The error table: a finished upload whose object was removed behind the server's back -> 404 before any
    byte of a body (NoSuchKey maps to ERR_UPLOAD_NOT_FOUND, not to a 500 or a cut-off 200)."""
    location = await finished(client, b"hello")
    bucket.client.delete_object(Bucket=bucket.options.bucket, Key=bucket.key_of(location))
    response = await client.get(location)
    assert response.status_code == 404, response.text
    assert error_code(response) == "ERR_UPLOAD_NOT_FOUND"


# --- limits ------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_options_advertises_s3_object_limit_as_max_size(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 9, 35: with no --max-size, Tus-Max-Size is S3's 5 TiB object limit; one byte more -> 413."""
    assert MAX_OBJECT_SIZE == 5_497_558_138_880
    await run(client, [
        Exchange("OPTIONS", "/files/", expect_headers={"Tus-Max-Size": "5497558138880"}),
        Exchange("POST", "/files/", TUS | {"Upload-Length": str(MAX_OBJECT_SIZE + 1)}, expect=413,
                 expect_code="ERR_MAX_SIZE_EXCEEDED"),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_deferred_length_above_its_cap_returns_413(client: httpx.AsyncClient, storage: S3Storage) -> None:
    """PROTOCOL.md item 54: a deferred-length upload's part size was fixed blind, so it may hold at most 10,000
    parts (S3Options.max_deferred_length); declaring more -> 413 and the length stays deferred."""
    too_long = storage.options.max_deferred_length + 1
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0, too_long), b"abc", expect=413, expect_code="ERR_MAX_SIZE_EXCEEDED"),
        Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "0", "Upload-Defer-Length": "1"}),
        Exchange("PATCH", location, at(0, too_long - 1), b"abc", expect=204, expect_headers={"Upload-Offset": "3"}),
    ])  # fmt: skip


# --- outages and errors ------------------------------------------------------------------------------------------


@pytest.fixture
def own_seaweedfs(tmp_path: Path) -> Iterator[SeaweedS3]:
    """A SeaweedFS of the test's own, to kill (the session's one stays up)."""
    (tmp_path / "seaweedfs").mkdir()
    server = SeaweedS3(tmp_path / "seaweedfs")
    server.start()
    yield server
    server.stop()


@pytest.mark.anyio
async def test_head_needs_no_s3_and_patch_during_outage_is_503(
    own_seaweedfs: SeaweedS3, aws_credentials: None, tmp_path: Path
) -> None:
    """PROTOCOL.md item 12 and README "S3 storage": HEAD is answered from the state store, so it still works
    with S3 down; a PATCH then gets 503 ERR_SERVICE_UNAVAILABLE with Retry-After (clients retry a 5xx),
    never a 500 or a traceback, and the offset stays."""
    create_bucket(own_seaweedfs.endpoint, "outage")
    storage = S3Storage(S3Options(bucket="outage", endpoint=own_seaweedfs.endpoint, region=REGION))
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=storage, state=MemoryStateStore())
    try:
        async with open_client(app) as client:
            location = await create(client, 100)
            await patch(client, location, 0, b"hello")
            own_seaweedfs.kill()
            await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"})])
            response = await client.patch(location, headers=at(5), content=b" world")
            assert response.status_code == 503, response.text
            assert error_code(response) == "ERR_SERVICE_UNAVAILABLE"
            assert response.headers["Retry-After"] == "1"
            assert "Traceback" not in response.text
            assert "botocore" not in response.text
            await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"})])
    finally:
        await storage.aclose()


@pytest.mark.anyio
async def test_missing_bucket_is_a_clean_500_with_code(
    moto_s3: MotoS3, aws_credentials: None, s3_bucket_name: str, tmp_path: Path
) -> None:
    """The error table: a bucket that does not exist is not temporary, so POST gets 500 ERR_STORAGE with one
    line, never a traceback; the upload is not created. On moto: SeaweedFS creates a missing bucket for a
    user allowed to."""
    storage = S3Storage(S3Options(bucket=s3_bucket_name, endpoint=moto_s3.endpoint, region=REGION))
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=storage, state=MemoryStateStore())
    try:
        async with open_client(app) as client:
            response = await client.post("/files/", headers=TUS | {"Upload-Length": "10"})
    finally:
        await storage.aclose()
    assert response.status_code == 500, response.text
    assert error_code(response) == "ERR_STORAGE"
    assert "location" not in response.headers
    assert "Traceback" not in response.text
    assert response.text.count("\n") == 1


@pytest.mark.anyio
async def test_missing_bucket_stops_the_start_up_with_its_reason(
    seaweedfs: SeaweedS3, aws_credentials: None, s3_bucket_name: str, tmp_path: Path
) -> None:
    """README options table ("must exist; checked at start-up"): the lifespan fails naming the bucket."""
    storage = S3Storage(S3Options(bucket=s3_bucket_name, endpoint=seaweedfs.endpoint, region=REGION))
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=storage, state=MemoryStateStore())
    try:
        with pytest.raises(StorageError, match=f"the S3 bucket '{s3_bucket_name}' does not exist"):
            async with app.router.lifespan_context(app):
                pass
    finally:
        await storage.aclose()


# --- restarts ----------------------------------------------------------------------------------------------------


@asynccontextmanager
async def server_lifetime(options: S3Options, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """One lifetime of a server on S3 (a new client) and SQLite state in `tmp_path`; leaving the block shuts
    it down, so the next lifetime is a restart."""
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=small_parts(options), state=state)
    try:
        async with open_client(app) as client:
            yield client
    finally:
        await app.state.tus.aclose()


@pytest.mark.anyio
async def test_upload_resumes_after_restart_byte_exact(storage: S3Storage, bucket: Bucket, tmp_path: Path) -> None:
    """PROTOCOL.md items 18, 29: after a restart the recorded offset stands (its tail is durable in S3) and
    the next PATCH, across a part boundary, completes the upload byte-exact."""
    data = os.urandom(PART + 2 * MiB)
    async with server_lifetime(storage.options, tmp_path) as client:
        location = await create(client, len(data))
        await patch(client, location, 0, data[: 3 * MiB])
    async with server_lifetime(storage.options, tmp_path) as client:
        await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": str(3 * MiB)})])
        await patch(client, location, 3 * MiB, data[3 * MiB :])
        assert await download(client, location) == data
    only_the_object(bucket, location)

"""The Azure backend through the HTTP app (README "Azure Blob storage"): byte-exact uploads across block
boundaries, deferred lengths, joins, checksums, termination, expiry, downloads, limits and the error table.

On the session's Azurite, each test under a fresh blob name prefix, with 64 KiB blocks, so a few hundred KiB
cross several block boundaries. What the container holds is read with the SDK.
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from azure.core.exceptions import HttpResponseError, ServiceResponseError
from azure.storage.blob.aio import BlobClient

from storage_backends.azure.layout import MAX_BLOB_SIZE, MAX_BLOCKS
from storage_backends.azure.store import AzureBlobStorage
from tests.http.asgi import open_client, upload_id
from tests.http.clock import LIFETIME, FakeClock, clocked_app
from tests.http.test_s3 import CompletionNotRecorded, at, download, finished, length_headers, patch, sha1
from tests.http.transcript import TUS, Exchange, create, error_code, run
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.context import TusContext
from tusserver.coordination.cleanup import remove_expired

BLOCK = 64 * 1024
PARTIAL = {"Upload-Concat": "partial"}


@pytest.fixture
async def storage(azure_storage: AzureBlobStorage) -> AsyncIterator[AzureBlobStorage]:
    """Overrides conftest's storage for this module: Azure on Azurite with 64 KiB blocks."""
    azure = AzureBlobStorage(replace(azure_storage.options, block_size=BLOCK, deferred_block_size=BLOCK))
    yield azure
    await azure.aclose()


async def names(storage: AzureBlobStorage) -> list[str]:
    """The blobs under the storage's prefix, and blobs with uncommitted blocks only."""
    container = await storage._containers()
    prefix = storage.options.prefix
    return sorted([blob.name async for blob in container.list_blobs(prefix, include=["uncommittedblobs"])])


def name_of(storage: AzureBlobStorage, location: str) -> str:
    return storage.options.prefix + upload_id(location)


async def content_settings(storage: AzureBlobStorage, location: str) -> tuple[str | None, str | None]:
    properties = await (await storage._blob(name_of(storage, location))).get_blob_properties()
    return properties.content_settings.content_type, properties.content_settings.content_disposition


# --- PATCH bodies of any size, across block boundaries -----------------------------------------------------------


@pytest.mark.anyio
async def test_mixed_patch_sizes_across_block_boundaries_are_byte_exact(
    client: httpx.AsyncClient, storage: AzureBlobStorage
) -> None:
    """Issue 22: PATCHes of 1 byte, just under, at and just over a block, in one upload -> one blob, byte-exact;
    the tail a PATCH left is removed once the next one is recorded."""
    sizes = [1, BLOCK - 1, BLOCK, BLOCK + 1, 7, 3 * BLOCK + 5]
    data = os.urandom(sum(sizes))
    location = await create(client, len(data))
    offset = 0
    for size in sizes:
        offset = await patch(client, location, offset, data[offset : offset + size])
    assert await download(client, location) == data
    assert await names(storage) == [name_of(storage, location)]


@pytest.mark.anyio
async def test_small_deferred_length_upload_completes_byte_exact(client: httpx.AsyncClient) -> None:
    """Issue 22: a deferred-length upload smaller than a block completes once its length is declared."""
    location = await create(client)
    offset = await patch(client, location, 0, b"defer")
    await patch(client, location, offset, b"red", **{"Upload-Length": "8"})
    assert await download(client, location) == b"deferred"


@pytest.mark.anyio
async def test_zero_length_upload_is_an_empty_blob(client: httpx.AsyncClient, storage: AzureBlobStorage) -> None:
    """Issue 22: an upload of length 0 is complete at once, and still creates its (empty) blob."""
    location = await create(client, 0)
    assert await download(client, location) == b""
    assert await names(storage) == [name_of(storage, location)]


@pytest.mark.anyio
@pytest.mark.parametrize("deferred", [False, True], ids=["known-length", "deferred-length"])
async def test_patch_retried_after_unrecorded_completion_returns_204(
    storage: AzureBlobStorage, tmp_path: Path, deferred: bool
) -> None:
    """The block list was committed (tails removed) but recording it failed (500); the retry of that PATCH from
    the offset HEAD reports -> 204 with the full offset, and the blob is byte-exact."""
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
    assert await names(storage) == [name_of(storage, location)]


@pytest.mark.anyio
async def test_checksum_mismatch_across_block_boundary_then_retry_is_byte_exact(client: httpx.AsyncClient) -> None:
    """A PATCH that stages blocks and then fails its checksum (460) is not acknowledged: its blocks are never
    committed; the retry with the right bytes gives the right blob."""
    data = os.urandom(3 * BLOCK + 11)
    location = await create(client, len(data))
    offset = await patch(client, location, 0, data[:100])
    wrong = data[offset:]
    response = await client.patch(location, headers=at(offset) | {"Upload-Checksum": sha1(b"not these")}, content=wrong)
    assert (response.status_code, error_code(response)) == (460, "ERR_CHECKSUM_MISMATCH")
    await patch(client, location, offset, data[offset:], **{"Upload-Checksum": sha1(data[offset:])})
    assert await download(client, location) == data


# --- concatenation, termination, expiry --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_final_of_mixed_size_partials_is_byte_exact(client: httpx.AsyncClient, storage: AzureBlobStorage) -> None:
    """Issue 22: partials of 1 B, a block, blocks and a bit, 0 B and a block less a byte, joined inside Azure
    (Put Block From URL); the final holds their bytes in order, with the final's own content type."""
    pieces = [os.urandom(size) for size in (1, BLOCK, 2 * BLOCK + 3, 0, BLOCK - 1)]
    partials = [await finished(client, piece, **PARTIAL) for piece in pieces]
    metadata = "filetype " + base64.b64encode(b"text/csv").decode()
    headers = TUS | {"Upload-Concat": "final;" + " ".join(partials), "Upload-Metadata": metadata}
    response = await client.post("/files/", headers=headers)
    assert response.status_code == 201, response.text
    final = response.headers["Location"]
    assert hashlib.sha256(await download(client, final)).digest() == hashlib.sha256(b"".join(pieces)).digest()
    assert (await content_settings(storage, final))[0] == "text/csv"


@pytest.mark.anyio
async def test_delete_of_unfinished_upload_removes_blocks_and_tails(
    client: httpx.AsyncClient, storage: AzureBlobStorage
) -> None:
    """Issue 22: termination removes the tails and the uncommitted blocks, not only the blob."""
    location = await create(client, 10 * BLOCK)
    await patch(client, location, 0, os.urandom(3 * BLOCK + 5))
    assert name_of(storage, location) in await names(storage)  # its uncommitted blocks, and tails
    await run(client, [Exchange("DELETE", location, TUS, expect=204), Exchange("HEAD", location, TUS, expect=404)])
    assert await names(storage) == []


@pytest.mark.anyio
async def test_delete_of_finished_upload_removes_the_blob(client: httpx.AsyncClient, storage: AzureBlobStorage) -> None:
    location = await finished(client, os.urandom(BLOCK + 1))
    await run(client, [Exchange("DELETE", location, TUS, expect=204)])
    assert await names(storage) == []


@pytest.mark.anyio
async def test_sweep_removes_expired_upload_with_its_blocks_and_tails(
    storage: AzureBlobStorage, tmp_path: Path
) -> None:
    """Expiration works as on local files: an unfinished upload past its expiry goes with the cleanup sweep."""
    clock = FakeClock()
    app = clocked_app(clock, storage, MemoryStateStore(), tmp_path)
    async with open_client(app) as client:
        location = await create(client, 3 * BLOCK)
        await patch(client, location, 0, os.urandom(BLOCK + 9))
        clock.advance(LIFETIME)
        tus: TusContext = app.state.tus
        assert await remove_expired(tus, clock()) == [upload_id(location)]
        await run(client, [Exchange("HEAD", location, TUS, expect=404)])
    assert await names(storage) == []


# --- downloads and content headers -------------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-0", 0, 1), (f"bytes={BLOCK - 10}-{BLOCK + 9}", BLOCK - 10, BLOCK + 10),
     ("bytes=-24", BLOCK + 1000, BLOCK + 1024)],
    ids=["first-byte", "across-blocks", "suffix"],
)  # fmt: skip
async def test_range_of_finished_upload_returns_206_with_its_bytes(
    client: httpx.AsyncClient, range_header: str, start: int, end: int
) -> None:
    data = os.urandom(BLOCK + 1024)
    location = await finished(client, data)
    response = await client.get(location, headers={"Range": range_header})
    assert response.status_code == 206, response.text
    assert response.headers["Content-Range"] == f"bytes {start}-{end - 1}/{len(data)}"
    assert response.content == data[start:end]


@pytest.mark.anyio
async def test_blob_has_the_declared_type_and_its_non_ascii_file_name(
    client: httpx.AsyncClient, storage: AzureBlobStorage
) -> None:
    """Issue 22: Content-Type from `filetype`, Content-Disposition from `filename`, a non-ASCII name percent-encoded
    in `filename*` (Azure takes only ASCII header values), as GET sends them."""
    name = base64.b64encode("Grüße 🎉.png".encode()).decode()
    metadata = f"filename {name},filetype " + base64.b64encode(b"image/png").decode()
    location = await finished(client, os.urandom(100), **{"Upload-Metadata": metadata})
    disposition = "inline; filename=\"Gr__e _.png\"; filename*=UTF-8''Gr%C3%BC%C3%9Fe%20%F0%9F%8E%89.png"
    assert await content_settings(storage, location) == ("image/png", disposition)
    assert (await client.get(location)).headers["Content-Disposition"] == disposition


@pytest.mark.anyio
async def test_get_of_blob_gone_from_the_container_returns_404(
    client: httpx.AsyncClient, storage: AzureBlobStorage
) -> None:
    """The error table: BlobNotFound maps to ERR_UPLOAD_NOT_FOUND before any byte of a body."""
    location = await finished(client, b"hello")
    await (await storage._blob(name_of(storage, location))).delete_blob()
    response = await client.get(location)
    assert (response.status_code, error_code(response)) == (404, "ERR_UPLOAD_NOT_FOUND")


# --- limits and the error table ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_options_advertises_the_largest_block_blob_as_max_size(client: httpx.AsyncClient) -> None:
    """50,000 blocks of 4000 MiB; one byte more -> 413."""
    assert MAX_BLOB_SIZE == 50_000 * 4000 * 1024 * 1024
    await run(client, [
        Exchange("OPTIONS", "/files/", expect_headers={"Tus-Max-Size": str(MAX_BLOB_SIZE)}),
        Exchange("POST", "/files/", TUS | {"Upload-Length": str(MAX_BLOB_SIZE + 1)}, expect=413,
                 expect_code="ERR_MAX_SIZE_EXCEEDED"),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_deferred_length_above_its_cap_returns_413(client: httpx.AsyncClient) -> None:
    """A deferred-length upload's block size was fixed blind (64 KiB here): at most 50,000 blocks of it."""
    too_long = MAX_BLOCKS * BLOCK + 1
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0, too_long), b"abc", expect=413, expect_code="ERR_MAX_SIZE_EXCEEDED"),
        Exchange("PATCH", location, at(0, too_long - 1), b"abc", expect=204, expect_headers={"Upload-Offset": "3"}),
    ])  # fmt: skip


def server_busy() -> HttpResponseError:
    error = HttpResponseError(message="Operations per second is over the account limit.")
    error.status_code = 503
    error.__dict__["error_code"] = "ServerBusy"  # as the SDK sets it from x-ms-error-code
    return error


@pytest.mark.anyio
@pytest.mark.parametrize("failure", [server_busy(), ServiceResponseError("read timed out")], ids=["busy", "timeout"])
async def test_throttling_and_timeouts_are_503_with_retry_after(
    client: httpx.AsyncClient, monkeypatch: pytest.MonkeyPatch, failure: Exception
) -> None:
    """Issue 22: ServerBusy (throttling) and timeouts -> 503 ERR_SERVICE_UNAVAILABLE with Retry-After, never a
    500 with an SDK traceback; HEAD never calls Azure, so it still answers; the offset stays."""
    location = await create(client, 100)
    await patch(client, location, 0, b"hello")

    async def failing(*args: object, **kwargs: object) -> None:
        raise failure

    # The next PATCH's call to Azure, writing its tail, fails as the SDK fails (its own retries done).
    monkeypatch.setattr(BlobClient, "upload_blob", failing)
    response = await client.patch(location, headers=at(5), content=b" world")
    assert (response.status_code, error_code(response), response.headers["Retry-After"]) == (
        503, "ERR_SERVICE_UNAVAILABLE", "1")  # fmt: skip
    assert "Traceback" not in response.text
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"})])


@pytest.mark.anyio
async def test_head_never_calls_azure(
    client: httpx.AsyncClient, storage: AzureBlobStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 22: HEAD is answered from the state store; not one call reaches Azure."""
    location = await create(client, 100)
    await patch(client, location, 0, b"hello")

    async def no_azure(*args: object, **kwargs: object) -> None:
        raise AssertionError("HEAD called Azure")

    monkeypatch.setattr(storage, "_call", no_azure)
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"})])

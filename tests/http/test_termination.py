"""termination: PROTOCOL.md items 68-73."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from storage_backends.base import StorageRef
from storage_backends.errors import StorageUnavailableError
from storage_backends.memory import MemoryStorage
from tests.http.asgi import upload_id
from tests.http.doubles import NoDeleteStorage
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.context import TusContext
from tusserver.coordination.cleanup import remove_expired


@pytest.fixture
async def no_delete_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a server whose storage cannot delete."""
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=NoDeleteStorage(), state=MemoryStateStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client


@pytest.mark.anyio
async def test_delete_returns_204(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 68: 204 No Content with Tus-Resumable and no body."""
    location = await create(client, 10)
    responses = await run(client, [Exchange("DELETE", location, TUS, expect=204,
                                            expect_headers={"Tus-Resumable": "1.0.0"})])  # fmt: skip
    assert responses[0].content == b""


@pytest.mark.anyio
async def test_delete_removes_blob(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 68: the stored bytes are gone from storage."""
    location = await create(client, 10)
    await run(client, [
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
        Exchange("DELETE", location, TUS, expect=204),
    ])  # fmt: skip
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_delete_leaves_other_uploads(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 68: only the named upload is terminated."""
    doomed, kept = await create(client, 10), await create(client, 10)
    await run(client, [
        Exchange("DELETE", doomed, TUS, expect=204),
        Exchange("HEAD", kept, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip
    assert list(storage.blobs) == [kept.rsplit("/", 1)[1]]


@pytest.mark.anyio
async def test_deleted_upload_returns_404_afterwards(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 69: after DELETE, HEAD, PATCH and DELETE all give 404."""
    location = await create(client, 10)
    await run(client, [
        Exchange("DELETE", location, TUS, expect=204),
        Exchange("HEAD", location, TUS, expect=404, expect_headers={"Upload-Offset": None}),
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=404,
                 expect_code="ERR_UPLOAD_NOT_FOUND"),
        Exchange("DELETE", location, TUS, expect=404, expect_code="ERR_UPLOAD_NOT_FOUND"),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["/files/unknown", "/files/0123456789abcdef0123456789abcdef"])
async def test_delete_unknown_upload_returns_404(client: httpx.AsyncClient, url: str) -> None:
    """PROTOCOL.md item 70: DELETE on an unknown upload -> 404."""
    await run(client, [Exchange("DELETE", url, TUS, expect=404, expect_code="ERR_UPLOAD_NOT_FOUND")])


@pytest.mark.anyio
async def test_delete_completed_upload_returns_204(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 71: termination covers finished uploads too."""
    location = await create(client, 5)
    await run(client, [
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
        Exchange("DELETE", location, TUS, expect=204),
        Exchange("HEAD", location, TUS, expect=404),
    ])  # fmt: skip
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_delete_deferred_upload_returns_204(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 48, 68: an upload whose length is still unknown can be terminated."""
    location = await create(client)
    await run(client, [
        Exchange("DELETE", location, TUS, expect=204),
        Exchange("HEAD", location, TUS, expect=404),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_delete_collection_returns_405(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 68: DELETE targets an upload URL; the creation endpoint cannot be terminated."""
    await create(client, 5)
    await run(client, [Exchange("DELETE", "/files/", TUS, expect=405, expect_code="ERR_METHOD_NOT_ALLOWED")])
    assert len(storage.blobs) == 1


@pytest.mark.anyio
async def test_termination_not_advertised_without_delete_support(no_delete_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 8: Tus-Extension lists exactly what works; no delete in storage, no termination."""
    await run(no_delete_client, [Exchange("OPTIONS", "/files/", expect=200, expect_headers={
        "Tus-Extension": "creation,creation-with-upload,creation-defer-length,expiration,checksum"})])  # fmt: skip


@pytest.mark.anyio
async def test_delete_without_delete_support_returns_405(no_delete_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 8, 68: termination not offered, so DELETE is 405 and the upload survives."""
    location = await create(no_delete_client, 10)
    await run(no_delete_client, [
        Exchange("DELETE", location, TUS, expect=405, expect_code="ERR_METHOD_NOT_ALLOWED"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip


class DeleteFailsOnce(MemoryStorage):
    """MemoryStorage whose first delete fails as during a storage outage."""

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 1

    async def delete(self, ref: StorageRef) -> None:
        if self.failures_left:
            self.failures_left -= 1
            raise StorageUnavailableError("throttled")
        await super().delete(ref)


@pytest.fixture
async def flaky_delete(tmp_path: Path) -> AsyncIterator[tuple[httpx.AsyncClient, DeleteFailsOnce, TusContext]]:
    storage = DeleteFailsOnce()
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=storage, state=MemoryStateStore())
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client, storage, app.state.tus


@pytest.mark.anyio
async def test_delete_that_fails_in_storage_is_gone_and_repeating_it_removes_the_bytes(
    flaky_delete: tuple[httpx.AsyncClient, DeleteFailsOnce, TusContext],
) -> None:
    """PROTOCOL.md item 69 during a storage outage: 503, after which the upload is gone for clients (410)
    but its record still finds the bytes, so the repeated DELETE removes them."""
    client, storage, _ = flaky_delete
    location = await create(client, 10)
    await run(client, [
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
        Exchange("DELETE", location, TUS, expect=503, expect_code="ERR_SERVICE_UNAVAILABLE"),
        Exchange("HEAD", location, TUS, expect=410),
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "5"}, b"world", expect=410),
    ])  # fmt: skip
    assert list(storage.blobs) == [upload_id(location)]
    await run(client, [Exchange("DELETE", location, TUS, expect=204), Exchange("HEAD", location, TUS, expect=404)])
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_delete_that_fails_in_storage_is_finished_by_the_expiry_sweep(
    flaky_delete: tuple[httpx.AsyncClient, DeleteFailsOnce, TusContext],
) -> None:
    """A client that gives up after the 503 leaves nothing behind: the sweep removes bytes and record."""
    client, storage, tus = flaky_delete
    location = await create(client, 10)
    await run(client, [Exchange("DELETE", location, TUS, expect=503)])
    assert await remove_expired(tus, tus.clock()) == [upload_id(location)]
    assert storage.blobs == {}
    await run(client, [Exchange("HEAD", location, TUS, expect=404)])

"""creation-defer-length: PROTOCOL.md items 15 and 48-56."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from storage_backends.memory import MemoryStorage
from tests.http.conftest import AppFactory
from tests.http.doubles import CompletionRecorder, chunked
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run

DEFER = TUS | {"Upload-Defer-Length": "1"}


@pytest.fixture
def storage() -> CompletionRecorder:
    """Overrides conftest's storage for this module: the app under test uses the recorder."""
    return CompletionRecorder()


def at(offset: int, length: int | None = None) -> dict[str, str]:
    """PATCH headers for an append at `offset`, optionally declaring the Upload-Length."""
    return (
        PATCH_HEADERS | {"Upload-Offset": str(offset)} | ({"Upload-Length": str(length)} if length is not None else {})
    )


@pytest.fixture
async def limited_client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a server with Tus-Max-Size 10."""
    transport = httpx.ASGITransport(app=make_app(max_size=10))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.anyio
async def test_post_deferred_length_returns_201(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 15, 48: 201; HEAD shows Upload-Defer-Length: 1, offset 0 and no Upload-Length."""
    await run(client, [
        Exchange("POST", "/files/", DEFER, expect=201),
        Exchange("HEAD", "{location}", TUS, expect=200,
                 expect_headers={"Upload-Defer-Length": "1", "Upload-Length": None, "Upload-Offset": "0"}),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["0", "2", "true", "", "01"])
async def test_post_invalid_defer_length_returns_400(
    client: httpx.AsyncClient, storage: MemoryStorage, value: str
) -> None:
    """PROTOCOL.md item 49: Upload-Defer-Length must be 1; nothing is created."""
    await run(client, [Exchange("POST", "/files/", TUS | {"Upload-Defer-Length": value}, expect=400,
                                expect_code="ERR_INVALID_UPLOAD_LENGTH")])  # fmt: skip
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_length_and_defer_length_returns_400(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 50: both Upload-Length and Upload-Defer-Length -> 400, nothing created."""
    await run(client, [Exchange("POST", "/files/", DEFER | {"Upload-Length": "5"}, expect=400,
                                expect_code="ERR_INVALID_UPLOAD_LENGTH")])  # fmt: skip
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_deferred_upload_accepts_bytes_before_length(
    client: httpx.AsyncClient, storage: CompletionRecorder
) -> None:
    """PROTOCOL.md item 55: an unknown length is not length 0; appends work and the length stays deferred."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204, expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", location, TUS, expect=200,
                 expect_headers={"Upload-Offset": "5", "Upload-Defer-Length": "1", "Upload-Length": None}),
    ])  # fmt: skip
    assert storage.completed == []


@pytest.mark.anyio
async def test_patch_declares_length(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 52: PATCH with Upload-Length sets it; HEAD then has no Upload-Defer-Length."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0, 12), b"hello world!", expect=204, expect_headers={"Upload-Offset": "12"}),
        Exchange("HEAD", location, TUS, expect=200,
                 expect_headers={"Upload-Length": "12", "Upload-Offset": "12", "Upload-Defer-Length": None}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_same_length_again_accepted(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 53: repeating the declared length is harmless."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0, 12), b"hello", expect=204),
        Exchange("PATCH", location, at(5, 12), b" world!", expect=204, expect_headers={"Upload-Offset": "12"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_different_length_returns_400(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 53: once set, the length cannot change; nothing is stored."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0, 12), b"hello", expect=204),
        Exchange("PATCH", location, at(5, 200), b" world!", expect=400, expect_code="ERR_INVALID_UPLOAD_LENGTH"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Length": "12"}),
    ])  # fmt: skip
    assert list(storage.blobs.values()) == [bytearray(b"hello")]


@pytest.mark.anyio
async def test_patch_length_on_known_length_upload_must_match(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 53: a length given at creation cannot be changed by a PATCH either."""
    location = await create(client, 10)
    await run(client, [Exchange("PATCH", location, at(0, 11), b"hello", expect=400,
                                expect_code="ERR_INVALID_UPLOAD_LENGTH")])  # fmt: skip


@pytest.mark.anyio
async def test_rejected_patch_does_not_declare_length(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 23, 52: a PATCH refused with 413 is not processed, so its Upload-Length is not kept."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0, 3), b"hello", expect=413, expect_code="ERR_UPLOAD_SIZE_EXCEEDED"),
        Exchange("HEAD", location, TUS, expect=200,
                 expect_headers={"Upload-Offset": "0", "Upload-Defer-Length": "1", "Upload-Length": None}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_length_below_offset_returns_400(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 54: a declared length smaller than the bytes already stored -> 400."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204),
        Exchange("PATCH", location, at(5, 3), expect=400, expect_code="ERR_INVALID_UPLOAD_LENGTH"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Defer-Length": "1"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_invalid_declared_length_returns_400(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 34, 52: a declared Upload-Length must be a non-negative integer."""
    location = await create(client)
    headers = PATCH_HEADERS | {"Upload-Offset": "0", "Upload-Length": "abc"}
    await run(client, [
        Exchange("PATCH", location, headers, b"hello", expect=400, expect_code="ERR_INVALID_UPLOAD_LENGTH"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0", "Upload-Defer-Length": "1"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_length_over_max_size_returns_413(limited_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 54: a declared length above Tus-Max-Size -> 413; the length stays deferred."""
    location = await create(limited_client)
    await run(limited_client, [
        Exchange("PATCH", location, at(0, 11), b"hello", expect=413, expect_code="ERR_MAX_SIZE_EXCEEDED"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0", "Upload-Defer-Length": "1"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_deferred_chunked_body_capped_at_max_size(
    limited_client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md item 56: while deferred, a body is cut at Tus-Max-Size - offset -> 413."""
    location = await create(limited_client)
    await run(limited_client, [Exchange("PATCH", location, at(0), b"abc", expect=204)])
    response = await limited_client.patch(location, headers=at(3), content=chunked(b"defg", b"hijklmn"))
    assert response.status_code == 413
    assert response.text.startswith("ERR_UPLOAD_SIZE_EXCEEDED:")
    await run(limited_client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "10"})])
    assert list(storage.blobs.values()) == [bytearray(b"abcdefghij")]


@pytest.mark.anyio
async def test_deferred_content_length_over_max_size_returns_413(limited_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 23, 56: a Content-Length past Tus-Max-Size is refused before reading; offset unchanged."""
    location = await create(limited_client)
    await run(limited_client, [
        Exchange("PATCH", location, at(0), b"hello world", expect=413, expect_code="ERR_UPLOAD_SIZE_EXCEEDED"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_post_deferred_with_body_over_max_size_returns_413(
    limited_client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md items 45, 56: creation-with-upload on a deferred upload is capped at Tus-Max-Size."""
    headers = DEFER | {"Content-Type": "application/offset+octet-stream"}
    await run(limited_client, [Exchange("POST", "/files/", headers, b"hello world", expect=413,
                                        expect_code="ERR_UPLOAD_SIZE_EXCEEDED")])  # fmt: skip
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_deferred_with_body_returns_offset(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 42, 48: creation-with-upload works with a deferred length."""
    headers = DEFER | {"Content-Type": "application/offset+octet-stream"}
    await run(client, [
        Exchange("POST", "/files/", headers, b"hello", expect=201, expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", "{location}", TUS, expect=200,
                 expect_headers={"Upload-Offset": "5", "Upload-Defer-Length": "1"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_empty_patch_declaring_length_completes_upload(
    client: httpx.AsyncClient, storage: CompletionRecorder
) -> None:
    """PROTOCOL.md items 24, 55: an empty PATCH with Upload-Length == offset completes the upload."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Defer-Length": "1"}),
        Exchange("PATCH", location, at(5, 5), expect=204, expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", location, TUS, expect=200,
                 expect_headers={"Upload-Offset": "5", "Upload-Length": "5", "Upload-Defer-Length": None}),
        Exchange("PATCH", location, at(5), b"!", expect=413, expect_code="ERR_UPLOAD_SIZE_EXCEEDED"),
    ])  # fmt: skip
    assert storage.completed == [location.rsplit("/", 1)[1]]


@pytest.mark.anyio
async def test_empty_patch_declaring_zero_length_completes_empty_upload(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 55: "length 0" declared late is different from "length unknown"."""
    location = await create(client)
    await run(client, [
        Exchange("PATCH", location, at(0, 0), expect=204, expect_headers={"Upload-Offset": "0"}),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Length": "0", "Upload-Defer-Length": None}),
        Exchange("PATCH", location, at(0), b"x", expect=413),
    ])  # fmt: skip

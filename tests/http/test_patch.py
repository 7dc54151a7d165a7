"""PATCH (append): PROTOCOL.md items 18-25 and 29."""

from __future__ import annotations

import httpx
import pytest

from storage_backends.memory import MemoryStorage
from tests.http.doubles import UnreadBody, chunked
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run


def at(offset: int) -> dict[str, str]:
    """PATCH headers for an append at `offset`."""
    return PATCH_HEADERS | {"Upload-Offset": str(offset)}


def blob(storage: MemoryStorage, location: str) -> bytes:
    """The bytes stored for the upload at `location`."""
    return bytes(storage.blobs[location.rsplit("/", 1)[1]])


async def offset_of(client: httpx.AsyncClient, location: str) -> str:
    """The Upload-Offset a HEAD reports."""
    response = await client.head(location, headers=TUS)
    assert response.status_code == 200
    return response.headers["Upload-Offset"]


@pytest.mark.anyio
async def test_patch_returns_204_with_new_offset(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 18: 204, Upload-Offset = old offset + bytes stored, Tus-Resumable; HEAD agrees."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204,
                 expect_headers={"Upload-Offset": "5", "Tus-Resumable": "1.0.0"}),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"hello"


@pytest.mark.anyio
async def test_patch_appends_in_order(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md items 18, 29: consecutive appends add up and the offset only grows."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204, expect_headers={"Upload-Offset": "5"}),
        Exchange("PATCH", location, at(5), b" ", expect=204, expect_headers={"Upload-Offset": "6"}),
        Exchange("PATCH", location, at(6), b"world", expect=204, expect_headers={"Upload-Offset": "11"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"hello world"


@pytest.mark.anyio
@pytest.mark.parametrize("offset", [0, 3, 6, 100])
async def test_patch_wrong_offset_returns_409(client: httpx.AsyncClient, storage: MemoryStorage, offset: int) -> None:
    """PROTOCOL.md items 19, 29: 409 with the current Upload-Offset; nothing is modified."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204),
        Exchange("PATCH", location, at(offset), b"XXXXX", expect=409, expect_headers={"Upload-Offset": "5"},
                 expect_code="ERR_MISMATCHED_OFFSET"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"hello"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "content_type",
    [None, "application/octet-stream", "text/plain", "application/offset+octet-stream-x"],
    ids=["missing", "octet-stream", "text", "lookalike"],
)
async def test_patch_bad_content_type_returns_415(
    client: httpx.AsyncClient, storage: MemoryStorage, content_type: str | None
) -> None:
    """PROTOCOL.md item 20: Content-Type missing or not application/offset+octet-stream -> 415, nothing stored."""
    location = await create(client, 11)
    headers = TUS | {"Upload-Offset": "0"} | ({"Content-Type": content_type} if content_type else {})
    await run(client, [
        Exchange("PATCH", location, headers, b"hello", expect=415, expect_code="ERR_INVALID_CONTENT_TYPE"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip
    assert blob(storage, location) == b""


@pytest.mark.anyio
@pytest.mark.parametrize("content_type", ["Application/Offset+Octet-Stream", "application/offset+octet-stream; x=1"])
async def test_patch_content_type_case_and_parameters_accepted(client: httpx.AsyncClient, content_type: str) -> None:
    """PROTOCOL.md item 20: media types are case-insensitive and may carry parameters (RFC 9110 §8.3.1)."""
    location = await create(client, 11)
    headers = TUS | {"Upload-Offset": "0", "Content-Type": content_type}
    await run(
        client, [Exchange("PATCH", location, headers, b"hello", expect=204, expect_headers={"Upload-Offset": "5"})]
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "offset",
    [None, "", "abc", "-1", "+5", "5.0", " 5", "5 ", "0x5", "1e3", "99999999999999999999"],
    ids=["missing", "empty", "abc", "negative", "plus", "decimal", "leading-space", "trailing-space", "hex", "exp",
         "too-big"],
)  # fmt: skip
async def test_patch_invalid_offset_returns_400(client: httpx.AsyncClient, offset: str | None) -> None:
    """PROTOCOL.md item 21: Upload-Offset must be a non-negative decimal integer; anything else -> 400."""
    location = await create(client, 11)
    headers = PATCH_HEADERS | ({"Upload-Offset": offset} if offset is not None else {})
    await run(client, [
        Exchange("PATCH", location, headers, b"hello", expect=400, expect_code="ERR_INVALID_OFFSET"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["/files/unknown", "/files/0123456789abcdef0123456789abcdef"])
async def test_patch_unknown_upload_returns_404(client: httpx.AsyncClient, url: str) -> None:
    """PROTOCOL.md item 22: PATCH to an unknown upload URL -> 404."""
    await run(client, [Exchange("PATCH", url, at(0), b"hello", expect=404, expect_code="ERR_UPLOAD_NOT_FOUND")])


@pytest.mark.anyio
async def test_patch_content_length_past_length_returns_413(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 23: Content-Length > Upload-Length - offset -> 413 before reading; offset unchanged."""
    location = await create(client, 8)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204),
        Exchange("PATCH", location, at(5), b"world", expect=413, expect_code="ERR_UPLOAD_SIZE_EXCEEDED"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"hello"


@pytest.mark.anyio
async def test_patch_content_length_past_length_rejected_unread(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 23, 46: the 413 is decided from Content-Length; the body is never asked for."""
    location = await create(client, 5)
    body = UnreadBody(b"hello world")
    headers = at(0) | {"Content-Length": "11", "Expect": "100-continue"}
    response = await client.patch(location, headers=headers, content=body)
    assert response.status_code == 413
    assert not body.read


@pytest.mark.anyio
async def test_patch_chunked_body_exactly_to_length_returns_204(
    client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md items 18, 23: a chunked body that ends exactly at the length completes the upload."""
    location = await create(client, 8)
    response = await client.patch(location, headers=at(0), content=chunked(b"hello", b" wo"))
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "8"
    assert blob(storage, location) == b"hello wo"


@pytest.mark.anyio
async def test_patch_chunked_body_past_length_returns_413_at_length(
    client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md items 23, 29: a chunked body is cut at the length; 413; the offset equals the length."""
    location = await create(client, 8)
    response = await client.patch(location, headers=at(0), content=chunked(b"hello", b" world", b"!!!"))
    assert response.status_code == 413
    assert response.text.startswith("ERR_UPLOAD_SIZE_EXCEEDED:")
    assert await offset_of(client, location) == "8"
    assert blob(storage, location) == b"hello wo"


@pytest.mark.anyio
async def test_patch_chunked_body_within_length_returns_204(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md items 18, 23: a chunked body that fits is stored whole."""
    location = await create(client, 11)
    response = await client.patch(location, headers=at(0), content=chunked(b"hello", b" ", b"world"))
    assert response.status_code == 204
    assert response.headers["Upload-Offset"] == "11"
    assert blob(storage, location) == b"hello world"


@pytest.mark.anyio
async def test_patch_empty_body_returns_204_and_keeps_offset(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 24: an empty body at the right offset -> 204, offset unchanged."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204),
        Exchange("PATCH", location, at(5), b"", expect=204, expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_completed_upload_empty_body_returns_204(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 25: an empty PATCH at the end of a finished upload -> 204 with the same offset."""
    location = await create(client, 5)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204),
        Exchange("PATCH", location, at(5), b"", expect=204, expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_completed_upload_with_body_returns_413(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md items 25, 29: a body for a finished upload -> 413; offset and bytes unchanged."""
    location = await create(client, 5)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204),
        Exchange("PATCH", location, at(5), b"!", expect=413, expect_code="ERR_UPLOAD_SIZE_EXCEEDED"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Length": "5"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"hello"


@pytest.mark.anyio
async def test_patch_completed_upload_chunked_body_returns_413(
    client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md items 25, 29: the same with a chunked body: nothing past the length is stored."""
    location = await create(client, 5)
    await run(client, [Exchange("PATCH", location, at(0), b"hello", expect=204)])
    response = await client.patch(location, headers=at(5), content=chunked(b"!"))
    assert response.status_code == 413
    assert await offset_of(client, location) == "5"
    assert blob(storage, location) == b"hello"

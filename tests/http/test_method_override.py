"""X-HTTP-Method-Override: PROTOCOL.md items 30 and 73."""

from __future__ import annotations

import httpx
import pytest

from storage_backends.memory import MemoryStorage
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run


def override(method: str) -> dict[str, str]:
    """The header that turns a POST into `method`."""
    return {"X-HTTP-Method-Override": method}


@pytest.mark.anyio
async def test_post_override_patch_appends(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 30: POST + override PATCH is a PATCH: 204, new offset, bytes stored."""
    location = await create(client, 11)
    await run(client, [
        Exchange("POST", location, PATCH_HEADERS | {"Upload-Offset": "0"} | override("PATCH"), b"hello", expect=204,
                 expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip
    assert list(storage.blobs.values()) == [bytearray(b"hello")]


@pytest.mark.anyio
async def test_post_override_lowercase_patch_appends(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 30: method names in the override are matched regardless of case."""
    location = await create(client, 11)
    headers = PATCH_HEADERS | {"Upload-Offset": "0"} | override("patch")
    await run(
        client, [Exchange("POST", location, headers, b"hello", expect=204, expect_headers={"Upload-Offset": "5"})]
    )


@pytest.mark.anyio
async def test_post_override_patch_is_validated_as_patch(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 19, 30: the override applies before validation, so a wrong offset is a 409."""
    location = await create(client, 11)
    headers = PATCH_HEADERS | {"Upload-Offset": "3"} | override("PATCH")
    await run(client, [Exchange("POST", location, headers, b"hello", expect=409, expect_code="ERR_MISMATCHED_OFFSET",
                                expect_headers={"Upload-Offset": "0"})])  # fmt: skip


@pytest.mark.anyio
async def test_post_override_patch_without_tus_resumable_returns_412(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 3, 30: the overridden request still needs Tus-Resumable."""
    location = await create(client, 11)
    headers = {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"} | override("PATCH")
    await run(client, [
        Exchange("POST", location, headers, b"hello", expect=412, expect_code="ERR_UNSUPPORTED_VERSION"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_post_override_delete_terminates(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md items 30, 73: POST + override DELETE is a DELETE: 204, upload and bytes gone."""
    location = await create(client, 11)
    await run(client, [
        Exchange("POST", location, TUS | override("DELETE"), expect=204),
        Exchange("HEAD", location, TUS, expect=404),
    ])  # fmt: skip
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_override_head_reports_offset(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 30: any tus method can be tunnelled, HEAD included."""
    location = await create(client, 11)
    await run(client, [Exchange("POST", location, TUS | override("HEAD"), expect=200,
                                expect_headers={"Upload-Offset": "0", "Upload-Length": "11"})])  # fmt: skip


@pytest.mark.anyio
async def test_get_override_delete_not_honoured(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 30: only a POST is overridden, so a plain GET link can never delete an upload."""
    location = await create(client, 11)
    get = await client.get(location, headers=TUS | override("DELETE"))
    assert get.status_code != 204
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])
    assert len(storage.blobs) == 1


@pytest.mark.anyio
async def test_patch_override_delete_not_honoured(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 30: the override is read only on POST; a real PATCH stays a PATCH."""
    location = await create(client, 11)
    headers = PATCH_HEADERS | {"Upload-Offset": "0"} | override("DELETE")
    await run(client, [
        Exchange("PATCH", location, headers, b"hello", expect=204, expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip

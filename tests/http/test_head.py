"""HEAD (offset retrieval): PROTOCOL.md items 12-16."""

from __future__ import annotations

import httpx
import pytest

from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run


def metadata_pairs(value: str) -> set[str]:
    """Upload-Metadata as a set of `key value` pairs (order and spaces after commas do not matter)."""
    return {pair.strip() for pair in value.split(",")}


@pytest.mark.anyio
async def test_head_new_upload_returns_offset_zero_and_length(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 12: 200 with Upload-Offset (even 0), Upload-Length, Cache-Control and Tus-Resumable."""
    location = await create(client, 100)
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={
        "Upload-Offset": "0", "Upload-Length": "100", "Cache-Control": "no-store", "Tus-Resumable": "1.0.0",
        "Upload-Defer-Length": None, "Upload-Metadata": None})])  # fmt: skip


@pytest.mark.anyio
async def test_head_has_empty_body(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 12: HEAD answers with headers only."""
    location = await create(client, 100)
    response = await client.head(location, headers=TUS)
    assert response.status_code == 200
    assert response.content == b""


@pytest.mark.anyio
async def test_head_after_patch_returns_new_offset(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 12, 18: HEAD reports the offset the last PATCH reached."""
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "100"}, expect=201),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Length": "100"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_head_completed_upload_offset_equals_length(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 13: a finished upload still reports both values, and they are equal."""
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "5"}, expect=201),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Length": "5"}),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["/files/does-not-exist", "/files/0123456789abcdef0123456789abcdef"])
async def test_head_unknown_upload_returns_404_without_offset(client: httpx.AsyncClient, url: str) -> None:
    """PROTOCOL.md item 14: 404, no Upload-Offset, no body."""
    responses = await run(client, [Exchange("HEAD", url, TUS, expect=404, expect_headers={
        "Upload-Offset": None, "Upload-Length": None, "Tus-Resumable": "1.0.0"})])  # fmt: skip
    assert responses[0].content == b""


@pytest.mark.anyio
async def test_head_echoes_metadata_pairs(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 16, 39: the pairs from creation, a bare key included, compared as a set."""
    sent = "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential"
    location = await create(client, 10, **{"Upload-Metadata": sent})
    response = await client.head(location, headers=TUS)
    assert response.status_code == 200
    assert metadata_pairs(response.headers["Upload-Metadata"]) == metadata_pairs(sent)


@pytest.mark.anyio
async def test_head_without_metadata_omits_upload_metadata(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 16: no metadata at creation, none on HEAD."""
    location = await create(client, 10)
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Metadata": None})])


@pytest.mark.anyio
async def test_head_does_not_change_offset(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 12, 28: repeated HEADs agree, and the offset they give is accepted by PATCH."""
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "10"}, expect=201),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"abc", expect=204),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "3"}),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "3"}),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "3"}, b"d", expect=204,
                 expect_headers={"Upload-Offset": "4"}),
    ])  # fmt: skip

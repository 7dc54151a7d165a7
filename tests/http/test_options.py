"""OPTIONS (discovery): PROTOCOL.md items 1 and 6-11."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from tests.http.conftest import AppFactory
from tests.http.transcript import TUS, Exchange, create, run

EXTENSIONS = (
    "creation,creation-with-upload,creation-defer-length,expiration,checksum,termination,"
    "concatenation,concatenation-unfinished"
)


@pytest.fixture
async def limited_client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a server with Tus-Max-Size 1000."""
    transport = httpx.ASGITransport(app=make_app(max_size=1000))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.anyio
async def test_options_collection_returns_200_with_discovery_headers(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 1, 7, 8: 200, Tus-Version, exactly the supported extensions, Tus-Resumable."""
    await run(client, [Exchange("OPTIONS", "/files/", expect=200, expect_headers={
        "Tus-Version": "1.0.0", "Tus-Extension": EXTENSIONS, "Tus-Resumable": "1.0.0"})])  # fmt: skip


@pytest.mark.anyio
async def test_options_collection_without_slash_returns_200(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 7: the creation endpoint answers discovery with or without its trailing slash."""
    await run(client, [Exchange("OPTIONS", "/files", expect=200, expect_headers={"Tus-Version": "1.0.0"})])


@pytest.mark.anyio
async def test_options_upload_url_returns_discovery_headers(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 11: OPTIONS on an upload URL answers like OPTIONS on the collection."""
    location = await create(client, 10)
    await run(client, [Exchange("OPTIONS", location, expect=200, expect_headers={
        "Tus-Version": "1.0.0", "Tus-Extension": EXTENSIONS, "Tus-Resumable": "1.0.0"})])  # fmt: skip


@pytest.mark.anyio
async def test_options_unknown_upload_url_returns_discovery_headers(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 11: a preflight may precede the upload; OPTIONS does not look the upload up."""
    await run(client, [Exchange("OPTIONS", "/files/unknown", expect=200, expect_headers={"Tus-Version": "1.0.0"})])


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [{}, {"Tus-Resumable": "99.0.0"}, {"Tus-Resumable": "0.2.2"}, TUS],
    ids=["missing", "future", "old", "current"],
)
async def test_options_ignores_tus_resumable(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """PROTOCOL.md item 6: the server ignores Tus-Resumable on OPTIONS; the response still carries it (item 1)."""
    await run(client, [Exchange("OPTIONS", "/files/", headers, expect=200, expect_headers={
        "Tus-Version": "1.0.0", "Tus-Resumable": "1.0.0"})])  # fmt: skip


@pytest.mark.anyio
async def test_options_without_max_size_omits_tus_max_size(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 9: no hard limit configured, so no Tus-Max-Size."""
    await run(client, [Exchange("OPTIONS", "/files/", expect=200, expect_headers={"Tus-Max-Size": None})])


@pytest.mark.anyio
async def test_options_with_max_size_sends_tus_max_size(limited_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 9: a configured limit is advertised as Tus-Max-Size."""
    await run(limited_client, [Exchange("OPTIONS", "/files/", expect=200, expect_headers={"Tus-Max-Size": "1000"})])


@pytest.mark.anyio
async def test_options_upload_url_with_max_size_sends_tus_max_size(limited_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 9, 11: the upload URL advertises the same limit."""
    location = await create(limited_client, 10)
    await run(limited_client, [Exchange("OPTIONS", location, expect=200, expect_headers={"Tus-Max-Size": "1000"})])


@pytest.mark.anyio
async def test_options_has_empty_body(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 7: discovery is all in the headers."""
    response = await client.options("/files/")
    assert response.status_code == 200
    assert response.content == b""

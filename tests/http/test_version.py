"""Version negotiation and common headers: PROTOCOL.md items 1-5."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator

import httpx
import pytest

from storage_backends.memory import MemoryStorage
from tests.http.conftest import AppFactory
from tests.http.doubles import UnreadBody
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run

BAD_VERSIONS = [pytest.param({}, id="missing"), pytest.param({"Tus-Resumable": "0.2.2"}, id="unsupported")]
PATCH_TYPE = {"Content-Type": "application/offset+octet-stream"}
ERROR_BODY = re.compile(r"(ERR_[A-Z_]+): \S.*\n")


@pytest.fixture
async def lenient_head_client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a server with require_tus_resumable_on_head=False."""
    transport = httpx.ASGITransport(app=make_app(require_tus_resumable_on_head=False))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


@pytest.mark.anyio
@pytest.mark.parametrize("version", BAD_VERSIONS)
async def test_post_bad_tus_resumable_returns_412_and_creates_nothing(
    client: httpx.AsyncClient, storage: MemoryStorage, version: dict[str, str]
) -> None:
    """PROTOCOL.md items 2, 3: 412 with Tus-Version; the POST is not processed."""
    await run(client, [Exchange("POST", "/files/", version | {"Upload-Length": "10"}, expect=412,
                                expect_headers={"Tus-Version": "1.0.0", "Location": None},
                                expect_code="ERR_UNSUPPORTED_VERSION")])  # fmt: skip
    assert storage.blobs == {}


@pytest.mark.anyio
@pytest.mark.parametrize("version", BAD_VERSIONS)
async def test_patch_bad_tus_resumable_returns_412_and_keeps_offset(
    client: httpx.AsyncClient, storage: MemoryStorage, version: dict[str, str]
) -> None:
    """PROTOCOL.md items 2, 3: 412 with Tus-Version; the PATCH stores nothing."""
    location = await create(client, 10)
    await run(client, [
        Exchange("PATCH", location, version | PATCH_TYPE | {"Upload-Offset": "0"}, b"hello", expect=412,
                 expect_headers={"Tus-Version": "1.0.0"}, expect_code="ERR_UNSUPPORTED_VERSION"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip
    assert list(storage.blobs.values()) == [bytearray()]


@pytest.mark.anyio
@pytest.mark.parametrize("version", BAD_VERSIONS)
async def test_delete_bad_tus_resumable_returns_412_and_keeps_upload(
    client: httpx.AsyncClient, version: dict[str, str]
) -> None:
    """PROTOCOL.md items 2, 3, 73: 412 with Tus-Version; the upload survives."""
    location = await create(client, 10)
    await run(client, [
        Exchange("DELETE", location, version, expect=412, expect_headers={"Tus-Version": "1.0.0"},
                 expect_code="ERR_UNSUPPORTED_VERSION"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("version", BAD_VERSIONS)
async def test_head_bad_tus_resumable_returns_412(client: httpx.AsyncClient, version: dict[str, str]) -> None:
    """PROTOCOL.md items 2, 4: HEAD is checked by default; the 412 reveals no upload state."""
    location = await create(client, 10)
    await run(client, [Exchange("HEAD", location, version, expect=412, expect_headers={
        "Tus-Version": "1.0.0", "Tus-Resumable": "1.0.0", "Upload-Offset": None, "Upload-Length": None})])  # fmt: skip


@pytest.mark.anyio
async def test_head_without_tus_resumable_allowed_when_configured(lenient_head_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 4: require_tus_resumable_on_head=False lets a browser's HEAD through."""
    location = await create(lenient_head_client, 10)
    await run(lenient_head_client, [Exchange("HEAD", location, expect=200, expect_headers={
        "Upload-Offset": "0", "Upload-Length": "10", "Tus-Resumable": "1.0.0"})])  # fmt: skip


@pytest.mark.anyio
async def test_lenient_head_setting_still_checks_post(lenient_head_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 2, 4: the setting exempts only HEAD; other methods still need the header."""
    await run(lenient_head_client, [Exchange("POST", "/files/", {"Upload-Length": "1"}, expect=412,
                                             expect_code="ERR_UNSUPPORTED_VERSION")])  # fmt: skip


@pytest.mark.anyio
async def test_tus_resumable_with_surrounding_spaces_accepted(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 2: optional whitespace around the version is not part of the value (RFC 9110 OWS)."""
    await run(client, [Exchange("POST", "/files/", {"Tus-Resumable": " 1.0.0 ", "Upload-Length": "1"}, expect=201)])


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["POST", "PATCH"])
async def test_412_decided_before_reading_body(client: httpx.AsyncClient, method: str) -> None:
    """PROTOCOL.md items 5, 46: the 412 comes from the headers alone; the body is never asked for."""
    location = await create(client, 5)
    body = UnreadBody(b"hello")
    headers = PATCH_TYPE | {"Upload-Offset": "0", "Upload-Length": "5", "Content-Length": "5", "Expect": "100-continue"}
    response = await client.request(method, location if method == "PATCH" else "/files/", headers=headers, content=body)
    assert response.status_code == 412
    assert not body.read


EVERY_KIND = [
    pytest.param(Exchange("OPTIONS", "/files/"), id="options-200"),
    pytest.param(Exchange("POST", "/files/", TUS | {"Upload-Length": "5"}, expect=201), id="post-201"),
    pytest.param(Exchange("HEAD", "{location}", TUS), id="head-200"),
    pytest.param(Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hi", expect=204),
                 id="patch-204"),
    pytest.param(Exchange("DELETE", "{location}", TUS, expect=204), id="delete-204"),
    pytest.param(Exchange("POST", "/files/", TUS, expect=400, expect_code="ERR_INVALID_UPLOAD_LENGTH"), id="post-400"),
    pytest.param(Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "3"}, expect=409,
                          expect_code="ERR_MISMATCHED_OFFSET"), id="patch-409"),
    pytest.param(Exchange("PATCH", "{location}", TUS | {"Upload-Offset": "0"}, b"hi", expect=415,
                          expect_code="ERR_INVALID_CONTENT_TYPE"), id="patch-415"),
    pytest.param(Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"too long", expect=413,
                          expect_code="ERR_UPLOAD_SIZE_EXCEEDED"), id="patch-413"),
    pytest.param(Exchange("POST", "/files/", {"Upload-Length": "5"}, expect=412, expect_code="ERR_UNSUPPORTED_VERSION"),
                 id="post-412"),
    pytest.param(Exchange("HEAD", "{location}", expect=412), id="head-412"),
    pytest.param(Exchange("HEAD", "/files/unknown", TUS, expect=404), id="head-404"),
    pytest.param(Exchange("PATCH", "/files/unknown", PATCH_HEADERS | {"Upload-Offset": "0"}, expect=404,
                          expect_code="ERR_UPLOAD_NOT_FOUND"), id="patch-404"),
    pytest.param(Exchange("DELETE", "/files/unknown", TUS, expect=404, expect_code="ERR_UPLOAD_NOT_FOUND"),
                 id="delete-404"),
    pytest.param(Exchange("GET", "/nowhere", TUS, expect=404, expect_code="ERR_UPLOAD_NOT_FOUND"),
                 id="unknown-route-404"),
    pytest.param(Exchange("GET", "/files/", TUS, expect=405, expect_code="ERR_METHOD_NOT_ALLOWED"),
                 id="collection-405"),
    pytest.param(Exchange("PUT", "{location}", TUS, expect=405, expect_code="ERR_METHOD_NOT_ALLOWED"), id="upload-405"),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("exchange", EVERY_KIND)
async def test_every_response_carries_tus_resumable(client: httpx.AsyncClient, exchange: Exchange) -> None:
    """PROTOCOL.md item 1: Tus-Resumable on every response; errors say `CODE: reason`, HEAD errors have no body."""
    location = await create(client, 5)
    url = exchange.url.replace("{location}", location)
    response = await client.request(exchange.method, url, headers=dict(exchange.headers), content=exchange.body)
    assert response.status_code == exchange.expect
    assert response.headers["Tus-Resumable"] == "1.0.0"
    if exchange.method == "HEAD":
        assert response.content == b""
    elif exchange.expect >= 400:
        match = ERROR_BODY.fullmatch(response.text)
        assert match is not None, response.text
        assert match.group(1) == exchange.expect_code


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("url", "allowed"),
    [("/files/", {"POST", "OPTIONS"}), ("{location}", {"HEAD", "PATCH", "OPTIONS", "DELETE", "GET"})],
    ids=["collection", "upload"],
)
async def test_405_allow_lists_every_supported_method(client: httpx.AsyncClient, url: str, allowed: set[str]) -> None:
    """PROTOCOL.md item 1 (405 case) and RFC 9110 §15.5.6: a 405 MUST list the resource's supported methods."""
    location = await create(client, 5)
    response = await client.request("PUT", url.replace("{location}", location), headers=TUS)
    assert response.status_code == 405
    assert error_code(response) == "ERR_METHOD_NOT_ALLOWED"
    assert {method.strip() for method in response.headers["Allow"].split(",")} == allowed

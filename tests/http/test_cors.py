"""Browsers: CORS preflights and exposed tus headers on every response (PROTOCOL.md items 88-89)."""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
import pytest

from tests.http.asgi import open_client
from tests.http.conftest import AppFactory
from tests.http.transcript import PATCH_HEADERS, TUS, create, error_code

ORIGIN = {"Origin": "https://app.example"}
TUS_REQUEST_HEADERS = (
    "Authorization", "Origin", "X-Requested-With", "X-Request-ID", "X-HTTP-Method-Override", "Content-Type",
    "Upload-Length", "Upload-Offset", "Tus-Resumable", "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat",
    "Upload-Checksum", "Upload-Complete", "Upload-Draft-Interop-Version",
)  # fmt: skip
TUS_RESPONSE_HEADERS = (
    "Upload-Offset", "Location", "Upload-Length", "Tus-Version", "Tus-Resumable", "Tus-Max-Size", "Tus-Extension",
    "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat", "Upload-Expires", "Upload-Complete", "Upload-Limit",
    "Upload-Draft-Interop-Version",
)  # fmt: skip
PREFLIGHT = ORIGIN | {
    "Access-Control-Request-Method": "PATCH",
    "Access-Control-Request-Headers": "tus-resumable,upload-offset,content-type,upload-checksum",
}


def listed(response: httpx.Response, header: str) -> set[str]:
    """The comma-separated values of `header`, lower-cased."""
    return {item.strip().lower() for item in response.headers.get(header, "").split(",") if item.strip()}


@pytest.mark.anyio
@pytest.mark.parametrize("target", ["collection", "upload"])
async def test_preflight_allows_tus_methods_and_headers(client: httpx.AsyncClient, target: str) -> None:
    url = "/files/" if target == "collection" else await create(client, 10)
    response = await client.options(url, headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert listed(response, "access-control-allow-methods") == {"post", "head", "patch", "options", "get", "delete"}
    assert {name.lower() for name in TUS_REQUEST_HEADERS} <= listed(response, "access-control-allow-headers")
    assert int(response.headers["access-control-max-age"]) > 0


ACTUAL_REQUESTS = [
    pytest.param("POST", "/files/", TUS | {"Upload-Length": "10"}, b"", 201, id="post-201"),
    pytest.param("HEAD", "{location}", TUS, b"", 200, id="head-200"),
    pytest.param("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", 204, id="patch-204"),
    pytest.param("OPTIONS", "/files/", {}, b"", 200, id="options-200"),
    pytest.param("HEAD", "/files/unknown", TUS, b"", 404, id="head-404"),
    pytest.param("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "3"}, b"hello", 409, id="patch-409"),
    pytest.param("POST", "/files/", {"Upload-Length": "10"}, b"", 412, id="post-412"),
    pytest.param("PATCH", "{location}", TUS | {"Upload-Offset": "0"}, b"hello", 415, id="patch-415"),
    pytest.param("DELETE", "{location}", TUS, b"", 204, id="delete-204"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "url", "headers", "body", "status"), ACTUAL_REQUESTS)
async def test_every_response_exposes_tus_headers(
    client: httpx.AsyncClient, method: str, url: str, headers: Mapping[str, str], body: bytes, status: int
) -> None:
    url = url.replace("{location}", await create(client, 10))
    response = await client.request(method, url, headers=ORIGIN | dict(headers), content=body)
    assert response.status_code == status
    assert response.headers["access-control-allow-origin"] == "*"
    assert {name.lower() for name in TUS_RESPONSE_HEADERS} <= listed(response, "access-control-expose-headers")


@pytest.mark.anyio
async def test_headers_hooks_add_can_be_exposed_too(make_app: AppFactory) -> None:
    """Issue 20: a page reads a header a hook adds (pre-finish's, a rejection's) only if CORS exposes it."""
    async with open_client(make_app(cors_expose_headers=("X-Processed",))) as client:
        response = await client.post("/files/", headers=ORIGIN | TUS | {"Upload-Length": "10"})
    exposed = listed(response, "access-control-expose-headers")
    assert "x-processed" in exposed
    assert {name.lower() for name in TUS_RESPONSE_HEADERS} <= exposed


@pytest.mark.anyio
async def test_configured_origin_is_echoed(make_app: AppFactory) -> None:
    async with open_client(make_app(cors_origins=("https://app.example",))) as client:
        preflight = await client.options("/files/", headers=PREFLIGHT)
        response = await client.post("/files/", headers=ORIGIN | TUS | {"Upload-Length": "10"})
    assert preflight.headers["access-control-allow-origin"] == "https://app.example"
    assert response.headers["access-control-allow-origin"] == "https://app.example"
    assert "origin" in listed(response, "vary")


@pytest.mark.anyio
async def test_other_origin_gets_no_allow_origin(make_app: AppFactory) -> None:
    other = {"Origin": "https://evil.example"}
    async with open_client(make_app(cors_origins=("https://app.example",))) as client:
        preflight = await client.options("/files/", headers=PREFLIGHT | other)
        response = await client.post("/files/", headers=other | TUS | {"Upload-Length": "10"})
    assert "access-control-allow-origin" not in preflight.headers
    assert response.status_code == 201
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.anyio
async def test_request_without_origin_gets_no_cors_headers(client: httpx.AsyncClient) -> None:
    response = await client.post("/files/", headers=TUS | {"Upload-Length": "10"})
    assert response.status_code == 201
    assert not [name for name in response.headers if name.startswith("access-control-")]
    # A cache must not hand this response to a cross-origin request, which would get CORS headers.
    assert response.headers.get_list("vary") == ["Origin"]


REFUSED_PREFLIGHTS = {
    "origin": {"Origin": "https://evil.example"},
    "method": {"Access-Control-Request-Method": "PUT"},
    "header": {"Access-Control-Request-Headers": "tus-resumable,x-evil"},
}


@pytest.mark.anyio
@pytest.mark.parametrize("refused", REFUSED_PREFLIGHTS.values(), ids=REFUSED_PREFLIGHTS.keys())
async def test_refused_preflight_is_an_error_of_the_table(make_app: AppFactory, refused: dict[str, str]) -> None:
    """Issue 19, defect 8: Starlette's plain "Disallowed CORS ..." 400 becomes `ERR_CORS_REJECTED: reason`, and keeps
    the preflight's CORS headers (a browser reads them to report why)."""
    async with open_client(make_app(cors_origins=("https://app.example",))) as client:
        response = await client.options("/files/", headers=PREFLIGHT | refused)
    assert (response.status_code, error_code(response)) == (400, "ERR_CORS_REJECTED")
    assert re.fullmatch(r"ERR_[A-Z_]+: [^\n]+\n", response.text)
    assert response.headers["content-type"].startswith("text/plain")
    assert response.headers["tus-resumable"] == "1.0.0"
    assert "access-control-allow-methods" in response.headers


@pytest.mark.anyio
async def test_allowed_preflight_is_unchanged(make_app: AppFactory) -> None:
    async with open_client(make_app(cors_origins=("https://app.example",))) as client:
        response = await client.options("/files/", headers=PREFLIGHT)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "https://app.example"

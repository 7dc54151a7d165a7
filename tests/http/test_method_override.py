"""X-HTTP-Method-Override: PROTOCOL.md items 30 and 73."""

from __future__ import annotations

import re

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.memory import MemoryStorage
from tests.http.asgi import ScriptedReceive, asgi_call, chunk, http_scope
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run


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


# Issue 19, defect 8: a POST overridden to HEAD is a POST on the wire, so its errors carry the table's line.
HEAD_OVERRIDE_ERRORS = [
    pytest.param("/files/", TUS, 405, "ERR_METHOD_NOT_ALLOWED", id="collection-405"),
    pytest.param("/files/" + "0" * 32, TUS, 404, "ERR_UPLOAD_NOT_FOUND", id="unknown-upload-404"),
    pytest.param("{location}", {}, 412, "ERR_UNSUPPORTED_VERSION", id="no-tus-resumable-412"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("url", "headers", "status", "code"), HEAD_OVERRIDE_ERRORS)
async def test_post_override_head_error_has_table_body(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], status: int, code: str
) -> None:
    url = url.replace("{location}", await create(client, 11))
    response = await client.post(url, headers=headers | override("HEAD"))
    assert (response.status_code, error_code(response)) == (status, code)
    assert re.fullmatch(r"ERR_[A-Z_]+: [^\n]+\n", response.text)
    assert int(response.headers["content-length"]) == len(response.content)


@pytest.mark.anyio
async def test_post_override_head_keeps_server_scope_method(app: Starlette, client: httpx.AsyncClient) -> None:
    """The server's own scope still says POST: uvicorn drops the body of a response to a scope that says HEAD."""
    location = await create(client, 11)
    scope = http_scope("POST", httpx.URL(location).path, TUS | override("HEAD"))
    response = await asgi_call(app, scope, ScriptedReceive([chunk(b"", more=False)]))
    assert (response.status, response.headers["upload-offset"]) == (200, "0")
    assert scope["method"] == "POST"


@pytest.mark.anyio
async def test_override_with_nbsp_is_not_honoured(app: Starlette, client: httpx.AsyncClient) -> None:
    """RFC 9110 §5.6.3: "PATCH" and a no-break space is no method name, so the request stays a POST (405)."""
    location = await create(client, 11)
    headers = PATCH_HEADERS | {"Upload-Offset": "0"} | override("PATCH\xa0")
    scope = http_scope("POST", httpx.URL(location).path, headers)
    response = await asgi_call(app, scope, ScriptedReceive([chunk(b"hello", more=False)]))
    assert (response.status, response.code) == (405, "ERR_METHOD_NOT_ALLOWED")
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])

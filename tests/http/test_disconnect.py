"""A client that goes away or stalls mid-body: every byte received is kept.

PROTOCOL.md items 26 (disconnect; tusd TestUnexpectedNetworkClose) and 27 (read timeout; tusd TestNetworkReadTimeout).
"""

from __future__ import annotations

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.memory import MemoryStorage
from tests.http.asgi import (
    DISCONNECT,
    ScriptedReceive,
    asgi_call,
    chunk,
    http_scope,
    open_client,
    patch_scope,
    upload_id,
)
from tests.http.conftest import AppFactory
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run


@pytest.mark.anyio
async def test_disconnect_mid_body_keeps_received_half(app: Starlette, client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    receive = ScriptedReceive([chunk(b"hel"), chunk(b"lo"), DISCONNECT])
    await asgi_call(app, patch_scope(location, 0, content_length=10), receive)
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "5", "Upload-Length": "10"})])


@pytest.mark.anyio
async def test_patch_after_disconnect_completes_byte_exact(
    app: Starlette, client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    location = await create(client, 10)
    await asgi_call(app, patch_scope(location, 0, content_length=10), ScriptedReceive([chunk(b"hello"), DISCONNECT]))
    await run(client, [
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "5"}, b"world", expect=204,
                 expect_headers={"Upload-Offset": "10"}),
    ])  # fmt: skip
    assert storage.blobs[upload_id(location)] == b"helloworld"


@pytest.mark.anyio
async def test_disconnect_before_any_byte_leaves_offset(app: Starlette, client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    await asgi_call(app, patch_scope(location, 0, content_length=10), ScriptedReceive([DISCONNECT]))
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "0"})])


@pytest.mark.anyio
async def test_stalled_body_times_out_with_500_and_keeps_bytes(make_app: AppFactory, storage: MemoryStorage) -> None:
    app = make_app(read_timeout=0.05)
    async with open_client(app) as client:
        location = await create(client, 10)
        with anyio.fail_after(5):  # far above read_timeout: fails instead of hanging if the timeout never fires
            stalled = await asgi_call(
                app, patch_scope(location, 0, content_length=10), ScriptedReceive([chunk(b"abc")])
            )
        await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "3"})])
    assert (stalled.status, stalled.code) == (500, "ERR_READ_TIMEOUT")
    assert storage.blobs[upload_id(location)] == b"abc"


@pytest.mark.anyio
async def test_disconnect_during_creation_with_upload_keeps_bytes(app: Starlette, client: httpx.AsyncClient) -> None:
    headers = PATCH_HEADERS | {"Upload-Length": "10", "Content-Length": "10"}
    created = await asgi_call(
        app, http_scope("POST", "/files/", headers), ScriptedReceive([chunk(b"hello"), DISCONNECT])
    )
    assert (created.status, created.headers["upload-offset"]) == (201, "5")
    await run(client, [Exchange("HEAD", created.headers["location"], TUS, expect_headers={"Upload-Offset": "5"})])

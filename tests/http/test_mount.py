"""tusserver mounted in a host application (Starlette or FastAPI): uploads work, Location includes the
mount path, and the host's own routes keep working."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import fastapi
import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Mount, Route
from starlette.types import ASGIApp

from storage_backends.memory import MemoryStorage
from tests.http.asgi import open_client, upload_id
from tests.http.conftest import AppFactory
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, run
from tusserver import MemoryStateStore, Settings, create_app

LOCATION = re.compile(r"http://testserver/api/uploads/[0-9a-f]{32}")


async def health(request: Request) -> JSONResponse:
    return JSONResponse({"status": "ok"})


def starlette_host(tus: ASGIApp) -> Starlette:
    return Starlette(routes=[Route("/health", health), Mount("/api/uploads", app=tus)])


def fastapi_host(tus: ASGIApp) -> fastapi.FastAPI:
    host = fastapi.FastAPI()

    @host.get("/health")
    def fastapi_health() -> dict[str, str]:
        return {"status": "ok"}

    host.mount("/api/uploads", tus)
    return host


HostFactory = Callable[[ASGIApp], ASGIApp]
HOSTS = [pytest.param(starlette_host, id="starlette"), pytest.param(fastapi_host, id="fastapi")]


@pytest.mark.anyio
@pytest.mark.parametrize("host", HOSTS)
async def test_upload_through_mount(make_app: AppFactory, storage: MemoryStorage, host: HostFactory) -> None:
    async with open_client(host(make_app(base_path="/"))) as client:
        created, *_ = await run(client, [
            Exchange("POST", "/api/uploads/", TUS | {"Upload-Length": "11"}, expect=201),
            Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello world", expect=204),
            Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "11"}),
        ])  # fmt: skip
    assert LOCATION.fullmatch(created.headers["location"])
    assert storage.blobs[upload_id(created.headers["location"])] == b"hello world"


@pytest.mark.anyio
@pytest.mark.parametrize("host", HOSTS)
async def test_errors_through_mount_keep_tus_codes(make_app: AppFactory, host: HostFactory) -> None:
    async with open_client(host(make_app(base_path="/"))) as client:
        await run(client, [
            Exchange("OPTIONS", "/api/uploads/", expect=200, expect_headers={"Tus-Version": "1.0.0"}),
            Exchange("HEAD", "/api/uploads/unknown", TUS, expect=404),
            Exchange("POST", "/api/uploads/", TUS | {"Upload-Length": "5"}, expect=201),
            Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "3"}, b"lo", expect=409,
                     expect_code="ERR_MISMATCHED_OFFSET"),
        ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("host", HOSTS)
async def test_host_routes_still_work(make_app: AppFactory, host: HostFactory) -> None:
    async with open_client(host(make_app(base_path="/"))) as client:
        response = await client.get("/health")
    assert (response.status_code, response.json()) == (200, {"status": "ok"})


@pytest.mark.anyio
async def test_two_mounted_servers_give_their_own_locations(tmp_path: Path) -> None:
    """Location must point into the mount that created the upload, not the first tus app the host knows."""

    def tus() -> Starlette:
        return create_app(Settings(base_path="/", data_dir=tmp_path), storage=MemoryStorage(), state=MemoryStateStore())

    host = Starlette(routes=[Mount("/public", app=tus()), Mount("/private", app=tus())])
    async with open_client(host) as client:
        created, *_ = await run(client, [
            Exchange("POST", "/private/", TUS | {"Upload-Length": "5"}, expect=201),
            Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "0"}),
        ])  # fmt: skip
    assert httpx.URL(created.headers["location"]).path.startswith("/private/")

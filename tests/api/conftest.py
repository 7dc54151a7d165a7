"""Apps for the status API tests (issue 21 item 6): on SQLite and on Redis (a real server, a key prefix of the
test's own), with the real access check (HS256 bearer tokens, "root" an admin) unless a test turns it off, and a
controllable clock, so that creation times, and with them the listing's order, are the test's."""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.memory import MemoryStorage
from tests.auth.jwt_keys import SECRET, TUS, bearer
from tests.http.asgi import open_client
from tests.http.clock import FakeClock
from tests.redis_server import RedisServer
from tusserver import Settings, create_app
from tusserver.coordination.hooks.dispatch import InProcessHook
from tusserver.coordination.state import UploadStateStore

ADMIN = "root"
MakeApp = Callable[..., Starlette]


@pytest.fixture(params=["sqlite", "redis"])
def state_kind(request: pytest.FixtureRequest) -> str:
    kind: str = request.param
    return kind


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def make_app(
    request: pytest.FixtureRequest, state_kind: str, tmp_path: Path, clock: FakeClock
) -> AsyncIterator[MakeApp]:
    """`make_app(auth=True, hooks=None, clock=<the test's>, state=None, **settings)`: a server on SQLite (its
    default) or Redis (or on `state`), with in-process `hooks`; closed after the test."""
    built: list[Starlette] = []

    def make(
        *,
        auth: bool = True,
        hooks: dict[str, InProcessHook] | None = None,
        clock: Callable[[], datetime] = clock,
        state: UploadStateStore | None = None,
        **settings: Any,
    ) -> Starlette:
        options: dict[str, Any] = {"data_dir": tmp_path / "data"}
        if auth:
            options |= {"auth_jwt_secret": SECRET, "auth_admins": (ADMIN,)}
        if state_kind == "redis":
            server: RedisServer = request.getfixturevalue("redis_server")
            options |= {"redis_url": server.url, "redis_prefix": f"t{secrets.token_hex(4)}:"}
        configured = Settings(**options | settings)
        app = create_app(configured, storage=MemoryStorage(), state=state, clock=clock, hooks=hooks)
        built.append(app)
        return app

    yield make
    for app in built:
        await app.state.tus.aclose()


@pytest.fixture
async def client(make_app: MakeApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client of a server with authorization on."""
    async with open_client(make_app()) as http:
        yield http


def as_user(user: str | None) -> dict[str, str]:
    """tus headers, with a bearer token for `user` (None: no token)."""
    return bearer(sub=user) if user is not None else dict(TUS)


async def create(client: httpx.AsyncClient, user: str | None, length: int = 3, metadata: str | None = None) -> str:
    """A new upload of `user`; its id."""
    headers = as_user(user) | {"Upload-Length": str(length)}
    if metadata is not None:
        headers["Upload-Metadata"] = metadata
    response = await client.post("/files/", headers=headers)
    assert response.status_code == 201, response.text
    location: str = response.headers["location"]
    return location.rsplit("/", 1)[1]


async def finish(client: httpx.AsyncClient, user: str | None, upload_id: str, data: bytes = b"abc") -> None:
    """Send an upload's every byte."""
    headers = as_user(user) | {"Content-Type": "application/offset+octet-stream", "Upload-Offset": "0"}
    response = await client.patch(f"/files/{upload_id}", headers=headers, content=data)
    assert response.status_code in (204, 403), response.text  # 403: a verdict rejected it as it finished

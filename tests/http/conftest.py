"""App and client factories for HTTP tests through the ASGI app (no sockets)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.base import StorageBackend
from storage_backends.memory import MemoryStorage
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.state.base import UploadStateStore

AppFactory = Callable[..., Starlette]


@pytest.fixture
def storage() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
def state() -> MemoryStateStore:
    return MemoryStateStore()


@pytest.fixture
def make_app(storage: StorageBackend, state: UploadStateStore, tmp_path: Path) -> AppFactory:
    """`make_app(max_size=10, ...)`: an app on memory backends with the given settings."""

    def factory(**settings: Any) -> Starlette:
        return create_app(Settings(data_dir=tmp_path / "data", **settings), storage=storage, state=state)

    return factory


@pytest.fixture
def app(make_app: AppFactory) -> Starlette:
    return make_app()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client

"""Fixtures shared by the contract suites: each yields every implementation in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.redis_server import RedisServer
from tusserver.coordination.state import MemoryStateStore, SQLiteStateStore, UploadStateStore
from tusserver.coordination.state.redis import RedisStateStore

STORES = ["memory", "sqlite", "sqlite-fsync", "redis"]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UploadStateStore]:
    """Every state store: memory, SQLite, SQLite with fsync, Redis (a real server)."""
    name: str = request.param
    state: UploadStateStore = MemoryStateStore()
    if name.startswith("sqlite"):
        state = SQLiteStateStore(tmp_path / "state.sqlite3", fsync=name == "sqlite-fsync")
    elif name == "redis":
        server: RedisServer = request.getfixturevalue("redis_server")
        client = Redis.from_url(server.url, decode_responses=True)
        await client.flushdb()
        state = RedisStateStore(client, prefix="test:")
    yield state
    await state.aclose()

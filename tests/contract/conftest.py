"""Fixtures shared by the contract suites: each yields every implementation in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from redis.asyncio import Redis

from tests.redis_server import RedisServer
from tusserver.coordination.state import MemoryStateStore, SQLiteStateStore, UploadStateStore
from tusserver.coordination.state.redis import RedisStateStore

STORES = ["memory", "sqlite", "sqlite-fsync", "redis"]


@dataclass
class Backing:
    """Where a state store keeps its data; `open` gives another store on the same data, as a second
    process (SQLite, one file) or instance (Redis, one server) would have. Memory is one process's."""

    name: str
    path: Path
    redis_url: str = ""
    memory: MemoryStateStore = field(default_factory=MemoryStateStore)

    @property
    def shared(self) -> bool:
        """Whether `open` gives a store of its own (with its own connection) on data that outlives it."""
        return self.name != "memory"

    def open(self) -> UploadStateStore:
        if self.name.startswith("sqlite"):
            return SQLiteStateStore(self.path, fsync=self.name == "sqlite-fsync")
        if self.name == "redis":
            return RedisStateStore(Redis.from_url(self.redis_url, decode_responses=True), prefix="test:")
        return self.memory


@pytest.fixture(params=STORES)
async def backing(request: pytest.FixtureRequest, tmp_path: Path) -> Backing:
    """Every state store's data: memory, SQLite, SQLite with fsync, Redis (a real server, flushed)."""
    name: str = request.param
    if name != "redis":
        return Backing(name, tmp_path / "state.sqlite3")
    server: RedisServer = request.getfixturevalue("redis_server")
    async with Redis.from_url(server.url) as client:
        await client.flushdb()
    return Backing(name, tmp_path / "state.sqlite3", server.url)


@pytest.fixture
async def store(backing: Backing) -> AsyncIterator[UploadStateStore]:
    """Every state store: memory, SQLite, SQLite with fsync, Redis (a real server)."""
    state = backing.open()
    yield state
    await state.aclose()

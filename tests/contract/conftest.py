"""Fixtures shared by the contract suites: each yields every implementation in turn."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tusserver.state import MemoryStateStore, SQLiteStateStore, UploadStateStore

STORES = ["memory", "sqlite", "sqlite-fsync"]


@pytest.fixture(params=STORES)
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[UploadStateStore]:
    """Every state store: memory, SQLite, SQLite with fsync."""
    name: str = request.param
    state: UploadStateStore = MemoryStateStore()
    if name.startswith("sqlite"):
        state = SQLiteStateStore(tmp_path / "state.sqlite3", fsync=name == "sqlite-fsync")
    yield state
    await state.aclose()

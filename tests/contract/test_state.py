"""The state-store contract, run against every implementation."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import anyio
import pytest

from storage_backends.base import StorageRef
from tusserver.protocol.errors import UploadExistsError, UploadNotFoundError
from tusserver.protocol.model import UploadInfo
from tusserver.state import SQLiteStateStore, UploadStateStore


def info(upload_id: str = "u1", **changes: object) -> UploadInfo:
    record = UploadInfo(
        id=upload_id,
        length=10,
        metadata={"filename": "YS50eHQ=", "flag": ""},
        storage=StorageRef(backend="file", key=upload_id),
        created_at=datetime(2026, 11, 22, tzinfo=UTC),
    )
    return record.model_copy(update=changes)


@pytest.mark.anyio
async def test_create_then_get_returns_equal_record(store: UploadStateStore) -> None:
    await store.create(info())
    assert await store.get("u1") == info()


@pytest.mark.anyio
async def test_create_duplicate_raises(store: UploadStateStore) -> None:
    await store.create(info())
    with pytest.raises(UploadExistsError):
        await store.create(info())


@pytest.mark.anyio
async def test_get_unknown_raises_not_found(store: UploadStateStore) -> None:
    with pytest.raises(UploadNotFoundError):
        await store.get("nope")


@pytest.mark.anyio
async def test_save_replaces_record(store: UploadStateStore) -> None:
    await store.create(info(length=None))
    await store.save(info(offset=7, length=9))
    assert await store.get("u1") == info(offset=7, length=9)


@pytest.mark.anyio
async def test_save_after_delete_does_not_resurrect(store: UploadStateStore) -> None:
    await store.create(info())
    await store.delete("u1")
    with pytest.raises(UploadNotFoundError):
        await store.save(info(offset=3))
    with pytest.raises(UploadNotFoundError):
        await store.get("u1")


@pytest.mark.anyio
async def test_delete_is_idempotent(store: UploadStateStore) -> None:
    await store.create(info())
    await store.delete("u1")
    await store.delete("u1")
    with pytest.raises(UploadNotFoundError):
        await store.get("u1")


@pytest.mark.anyio
async def test_sqlite_records_survive_reopen(tmp_path: Path) -> None:
    first = SQLiteStateStore(tmp_path / "state.sqlite3")
    await first.create(info())
    await first.save(info(offset=4))
    await first.aclose()
    second = SQLiteStateStore(tmp_path / "state.sqlite3")
    assert await second.get("u1") == info(offset=4)
    await second.aclose()


@pytest.mark.anyio
async def test_sqlite_commits_checkpoint_rarely(tmp_path: Path) -> None:
    """A checkpoint inside a commit runs on the event loop: SQLite's default runs one every 1,000 pages of
    log; the store waits for 16,384, so these ~2,000 pages leave the database file as it was."""
    path = tmp_path / "state.sqlite3"
    store = SQLiteStateStore(path, checkpoint_interval=None)
    empty = path.stat().st_size
    for number in range(600):
        await store.create(info(f"u{number}", metadata={"filename": "A" * 6000}))  # 2 pages or more each
    assert path.stat().st_size == empty
    await store.aclose()
    assert path.stat().st_size > 600 * 6000  # closing checkpoints everything


@pytest.mark.anyio
async def test_sqlite_checkpoints_in_the_background(tmp_path: Path) -> None:
    """Past 1,000 commits, the background checkpointer copies the log into the database file without
    waiting for a commit to reach the threshold, and without blocking the commits that go on meanwhile."""
    path = tmp_path / "state.sqlite3"
    store = SQLiteStateStore(path, checkpoint_interval=0.01)
    empty = path.stat().st_size
    for number in range(1000):
        await store.create(info(f"u{number}", metadata={"filename": "A" * 6000}))
    with anyio.fail_after(10):
        # A file size has no event to wait on. No commit reached the threshold: the thread copied the pages.
        while path.stat().st_size < 1000 * 6000:  # noqa: ASYNC110
            await anyio.sleep(0.01)
    assert path.stat().st_size > empty
    assert await store.get("u999") == info("u999", metadata={"filename": "A" * 6000})
    await store.aclose()

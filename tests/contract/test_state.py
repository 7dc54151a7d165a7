"""The state-store contract, run against every implementation."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from storage_backends.base import StorageRef
from tusserver.coordination.state import SQLiteStateStore, UploadStateStore
from tusserver.protocol.errors import UploadExistsError, UploadNotFoundError
from tusserver.protocol.model import UploadInfo


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


async def create_all(store: SQLiteStateStore, records: list[UploadInfo]) -> list[BaseException | None]:
    """Create the records concurrently; each one's outcome, in order."""
    outcomes: list[BaseException | None] = [None] * len(records)

    async def one(index: int) -> None:
        try:
            await store.create(records[index])
        except Exception as exc:
            outcomes[index] = exc

    async with anyio.create_task_group() as tasks:
        for index in range(len(records)):
            tasks.start_soon(one, index)
    return outcomes


@pytest.fixture
async def fsync_store(tmp_path: Path) -> AsyncIterator[tuple[SQLiteStateStore, list[int]]]:
    """A SQLite store with fsync, and the size of each group commit it makes."""
    store = SQLiteStateStore(tmp_path / "state.sqlite3", fsync=True)
    sizes: list[int] = []
    commit = store._commit

    def counted(batch: list[Any]) -> None:
        sizes.append(len(batch))
        commit(batch)

    store._commit = counted  # type: ignore[method-assign]  # a spy: the real commit runs
    yield store, sizes
    await store.aclose()


@pytest.mark.anyio
async def test_sqlite_fsync_commits_concurrent_writes_together(fsync_store: tuple[SQLiteStateStore, list[int]]) -> None:
    """With fsync each commit waits for the disk; writes that arrive meanwhile share the next one."""
    store, sizes = fsync_store
    records = [info(f"u{number}") for number in range(20)]
    assert await create_all(store, records) == [None] * 20
    assert sum(sizes) == 20
    assert len(sizes) < 20  # the first commits alone, the others gather behind it
    for record in records:
        assert await store.get(record.id) == record


@pytest.mark.anyio
async def test_sqlite_fsync_a_failed_write_fails_alone(fsync_store: tuple[SQLiteStateStore, list[int]]) -> None:
    store, sizes = fsync_store
    await store.create(info("taken"))
    outcomes = await create_all(store, [info("a"), info("taken"), info("b")])
    assert [type(outcome) for outcome in outcomes] == [type(None), UploadExistsError, type(None)]
    assert max(sizes) > 1  # the duplicate shared its commit with others
    assert (await store.get("a"), await store.get("b")) == (info("a"), info("b"))


class FailingCommits:
    """The store's connection, except that COMMIT fails (fault injection: a disk error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, statement: str, *args: Any) -> sqlite3.Cursor:
        if statement == "COMMIT":
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(statement, *args)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction


@pytest.mark.anyio
async def test_sqlite_fsync_a_failed_commit_fails_every_write_in_it(
    fsync_store: tuple[SQLiteStateStore, list[int]],
) -> None:
    store, sizes = fsync_store
    db = store._db
    store._db = FailingCommits(db)  # type: ignore[assignment]
    outcomes = await create_all(store, [info(f"u{number}") for number in range(5)])
    assert all(isinstance(outcome, sqlite3.OperationalError) for outcome in outcomes)
    assert max(sizes) > 1
    store._db = db
    for number in range(5):  # rolled back: none of them was stored
        with pytest.raises(UploadNotFoundError):
            await store.get(f"u{number}")
    await store.create(info("after"))  # and the store goes on
    assert await store.get("after") == info("after")


@pytest.mark.anyio
async def test_sqlite_fsync_reads_do_not_wait_for_a_commit(fsync_store: tuple[SQLiteStateStore, list[int]]) -> None:
    """A commit holds the write connection while the disk syncs (~1 ms here); reads run on the event
    loop and use a connection of their own, so the loop never waits for the disk."""
    store, _ = fsync_store
    await store.create(info("a"))
    held, release = threading.Event(), threading.Event()

    def commit_in_progress() -> None:
        with store._lock:  # as a commit does while it syncs
            held.set()
            release.wait(5)  # a read that needed the lock would wait this long, then find it free

    holder = threading.Thread(target=commit_in_progress)
    holder.start()
    held.wait()
    record = await store.get("a")
    expiring = [upload_id async for upload_id in store.expiring(datetime(2100, 1, 1, tzinfo=UTC))]
    read_while_held = store._lock.locked()
    release.set()
    holder.join()
    assert (record, expiring) == (info("a"), [])
    assert read_while_held

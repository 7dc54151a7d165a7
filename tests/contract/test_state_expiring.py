"""The state-store contract for expiry (`expiring(before)`, what cleanup sweeps; PROTOCOL.md items 57-59),
run against every implementation, plus the SQLite migration of databases written before expiry existed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from storage_backends.base import StorageRef
from tusserver.coordination.state import SQLiteStateStore, UploadStateStore
from tusserver.protocol.model import UploadInfo

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def info(upload_id: str, expires_in: float | None) -> UploadInfo:
    """A record expiring `expires_in` seconds after T0 (None: never)."""
    return UploadInfo(
        id=upload_id,
        length=10,
        storage=StorageRef(backend="file", key=upload_id),
        created_at=T0,
        expires_at=None if expires_in is None else T0 + timedelta(seconds=expires_in),
    )


async def expiring(store: UploadStateStore, seconds_after_t0: float) -> set[str]:
    return {upload_id async for upload_id in store.expiring(T0 + timedelta(seconds=seconds_after_t0))}


@pytest.fixture
async def four(store: UploadStateStore) -> UploadStateStore:
    """Records expiring at T0 - 10 s, T0, T0 + 10 s, and never."""
    for record in [info("past", -10), info("now", 0), info("later", 10), info("never", None)]:
        await store.create(record)
    return store


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("before", "expected"),
    [
        pytest.param(-20, set(), id="before-all"),
        pytest.param(-10, {"past"}, id="at-first-expiry"),
        pytest.param(-0.001, {"past"}, id="just-before-second"),
        pytest.param(0, {"past", "now"}, id="at-second-expiry"),
        pytest.param(10, {"past", "now", "later"}, id="at-third-expiry"),
        pytest.param(10**9, {"past", "now", "later"}, id="far-future"),
    ],
)
async def test_expiring_yields_ids_with_expiry_at_or_before(
    four: UploadStateStore, before: float, expected: set[str]
) -> None:
    """The boundary is inclusive, as `UploadInfo.is_expired` (`now >= expires_at`); None never expires."""
    assert await expiring(four, before) == expected


@pytest.mark.anyio
async def test_expiring_on_empty_store_yields_nothing(store: UploadStateStore) -> None:
    assert await expiring(store, 10**9) == set()


@pytest.mark.anyio
async def test_extended_expiry_is_no_longer_listed_after_save(store: UploadStateStore) -> None:
    """A PATCH saves a later expiry; the sweep must see the new one."""
    await store.create(info("u1", 0))
    await store.save(info("u1", 60))
    assert await expiring(store, 30) == set()
    assert await expiring(store, 60) == {"u1"}


@pytest.mark.anyio
async def test_completed_upload_saved_without_expiry_is_no_longer_listed(store: UploadStateStore) -> None:
    await store.create(info("u1", 0))
    await store.save(info("u1", None).model_copy(update={"offset": 10}))
    assert await expiring(store, 10**9) == set()


@pytest.mark.anyio
async def test_deleted_record_is_no_longer_listed(store: UploadStateStore) -> None:
    await store.create(info("u1", 0))
    await store.delete("u1")
    assert await expiring(store, 10**9) == set()


@pytest.mark.anyio
async def test_expiry_round_trips_as_aware_utc(store: UploadStateStore) -> None:
    await store.create(info("u1", 60))
    assert (await store.get("u1")).expires_at == T0 + timedelta(seconds=60)


def old_database(path: Path, record: UploadInfo) -> None:
    """A state file as written before expiration existed: no expires_at column, no expires_at in the JSON."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE uploads (id TEXT PRIMARY KEY, info TEXT NOT NULL) WITHOUT ROWID")
        db.execute("INSERT INTO uploads VALUES (?, ?)", (record.id, record.model_dump_json(exclude={"expires_at"})))
    db.close()


@pytest.mark.anyio
async def test_sqlite_opens_old_database_and_its_records_never_expire(tmp_path: Path) -> None:
    old_database(tmp_path / "state.sqlite3", info("old", None))
    store = SQLiteStateStore(tmp_path / "state.sqlite3")
    try:
        assert await store.get("old") == info("old", None)
        assert await expiring(store, 10**9) == set()
    finally:
        await store.aclose()


@pytest.mark.anyio
async def test_sqlite_migrated_database_tracks_new_expiries(tmp_path: Path) -> None:
    old_database(tmp_path / "state.sqlite3", info("old", None))
    store = SQLiteStateStore(tmp_path / "state.sqlite3")
    try:
        await store.create(info("new", 10))
        await store.save(info("old", 5))
        assert await expiring(store, 10) == {"old", "new"}
    finally:
        await store.aclose()

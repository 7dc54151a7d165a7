"""Issue 21, the state-store contract for the life cycle, on every store: the record's life-cycle fields round
trip; a tombstone (the record of an upload whose bytes are removed) is listed by `expiring` only once its own
time is up; records written before the life cycle existed read back as accepted."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from redis.asyncio import Redis

from storage_backends.base import StorageRef
from tests.contract.conftest import Backing
from tusserver.coordination.state import UploadStateStore
from tusserver.protocol.lifecycle import buried, current_state, finished, rejected
from tusserver.protocol.model import UploadInfo, UploadState

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)
WEEK = timedelta(days=7)
LEGACY = (
    '{"id": "old", "length": 2, "offset": 2, "metadata": {}, "storage": {"backend": "file", "key": "old"},'
    ' "created_at": "2026-01-01T00:00:00Z", "expires_at": null}'
)


def complete(upload_id: str = "u1") -> UploadInfo:
    return UploadInfo(
        id=upload_id,
        length=4,
        offset=4,
        storage=StorageRef(backend="file", key=upload_id),
        created_at=T0,
        expires_at=T0 + timedelta(seconds=60),
    )


async def expiring(store: UploadStateStore, at: datetime) -> list[str]:
    return [upload_id async for upload_id in store.expiring(at)]


async def test_life_cycle_fields_round_trip(store: UploadStateStore) -> None:
    await store.create(complete())
    judged = rejected(finished(complete(), T0), "checksum mismatch", T0).model_copy(update={"digest": "sha1 AA=="})
    await store.save(judged)
    assert await store.get("u1") == judged


async def test_tombstone_is_listed_once_its_own_time_is_up(store: UploadStateStore) -> None:
    await store.create(complete())
    assert await expiring(store, T0 + timedelta(seconds=60)) == ["u1"]
    await store.save(buried(complete(), T0 + timedelta(seconds=60), keep_until=T0 + WEEK))
    assert await expiring(store, T0 + WEEK - timedelta(seconds=1)) == []
    assert await expiring(store, T0 + WEEK) == ["u1"]
    tombstone = await store.get("u1")
    assert (tombstone.state, tombstone.removed_at) == (UploadState.EXPIRED, T0 + timedelta(seconds=60))
    await store.delete("u1")
    assert await expiring(store, T0 + WEEK) == []


async def test_record_written_before_the_life_cycle_reads_as_accepted(backing: Backing) -> None:
    """The JSON an older tusserver wrote, put where each store keeps it."""
    if backing.name.startswith("sqlite"):
        store = backing.open()  # creates the table as this version has it
        with sqlite3.connect(backing.path) as db:
            db.execute("INSERT INTO uploads (id, info, expires_at) VALUES (?, ?, NULL)", ("old", LEGACY))
    elif backing.name == "redis":
        async with Redis.from_url(backing.redis_url) as client:
            await client.set("test:upload:old", LEGACY)
        store = backing.open()
    else:
        store = backing.open()
        await store.create(UploadInfo.model_validate_json(LEGACY))
    try:
        info = await store.get("old")
    finally:
        await store.aclose()
    assert (info.state, info.reason, info.finished_at, info.removed_at) == (UploadState.UPLOADING, None, None, None)
    assert current_state(info) is UploadState.ACCEPTED

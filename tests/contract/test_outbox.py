"""The hook outbox contract (issue 20, requirement 4), run against every state store: events are recorded in
the same step as the record change that causes them, or not at all, and deliverers claim them one at a time."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import anyio
import pytest
from redis.asyncio import Redis

from storage_backends.base import StorageRef
from tests.contract.conftest import Backing
from tusserver.coordination.hooks.requests import new_event_id
from tusserver.coordination.redis_locking import RedisLease
from tusserver.coordination.state import OutboxEvent, SQLiteStateStore, SupportsOutbox, UploadStateStore
from tusserver.coordination.state.redis import lock_key
from tusserver.protocol.errors import OffsetMismatchError, UploadExistsError, UploadLockedError, UploadNotFoundError
from tusserver.protocol.model import UploadInfo

T0 = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def info(upload_id: str = "u1", **changes: object) -> UploadInfo:
    record = UploadInfo(id=upload_id, length=10, storage=StorageRef(backend="file", key=upload_id), created_at=T0)
    return record.model_copy(update=changes)


def event(event_id: str, name: str = "post-finish", *, due: float = 0, created: float = 0) -> OutboxEvent:
    """An event about upload u1, recorded `created` and due `due` seconds after T0."""
    payload = f'{{"Type": "{name}", "Event": {{"Upload": {{"ID": "u1", "MetaData": {{"name": "é ✓"}}}}}}}}'
    return OutboxEvent(id=event_id, event=name, upload_id="u1", payload=payload, created_at=at(created),
                       not_before=at(due))  # fmt: skip


def claimed(recorded: OutboxEvent, *, attempts: int = 1, until: datetime) -> OutboxEvent:
    return recorded.model_copy(update={"attempts": attempts, "not_before": until})


def outbox(store: UploadStateStore) -> SupportsOutbox:
    assert isinstance(store, SupportsOutbox)
    return store


async def due_ids(store: UploadStateStore, now: datetime = T0, *, limit: int = 100) -> list[str]:
    return [due.id for due in await outbox(store).outbox_due(now, limit=limit, claim_for=60)]


# --- recorded with the change, or not at all -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_create_records_events_that_come_due_oldest_first(store: UploadStateStore) -> None:
    first, second = event("e1", "post-create", created=0), event("e2", "post-finish", created=1)
    await store.create(info(), events=[second, first])
    assert await outbox(store).outbox_due(at(5), limit=10, claim_for=30) == [
        claimed(first, until=at(35)),
        claimed(second, until=at(35)),
    ]


@pytest.mark.anyio
async def test_save_records_events(store: UploadStateStore) -> None:
    await store.create(info())
    await store.save(info(offset=10), events=[event("e1")])
    assert await store.get("u1") == info(offset=10)
    assert await due_ids(store) == ["e1"]


@pytest.mark.anyio
async def test_delete_records_events(store: UploadStateStore) -> None:
    await store.create(info())
    await store.delete("u1", events=[event("e1", "post-terminate")])
    with pytest.raises(UploadNotFoundError):
        await store.get("u1")
    assert await due_ids(store) == ["e1"]


@pytest.mark.anyio
async def test_create_of_existing_id_records_no_events(store: UploadStateStore) -> None:
    await store.create(info())
    with pytest.raises(UploadExistsError):
        await store.create(info(), events=[event("e1")])
    assert await due_ids(store) == []


@pytest.mark.anyio
async def test_save_of_deleted_record_records_no_events(store: UploadStateStore) -> None:
    await store.create(info())
    await store.delete("u1")
    with pytest.raises(UploadNotFoundError):
        await store.save(info(offset=10), events=[event("e1")])
    assert await due_ids(store) == []


@pytest.mark.anyio
async def test_delete_of_missing_record_records_no_events(store: UploadStateStore) -> None:
    """Whoever removed the record recorded its events; a second removal (a race, a retried cleanup) adds none."""
    await store.delete("u1", events=[event("e1", "post-terminate")])
    assert await due_ids(store) == []


@pytest.mark.anyio
async def test_recording_an_event_id_twice_keeps_one(store: UploadStateStore) -> None:
    await store.create(info(), events=[event("e1")])
    await store.save(info(offset=3), events=[event("e1"), event("e2")])
    assert await store.get("u1") == info(offset=3)  # the change stands
    assert sorted(await due_ids(store)) == ["e1", "e2"]


def redis_only(backing: Backing) -> None:
    if backing.name != "redis":
        pytest.skip("only Redis fences saves and refuses offsets going backwards (its locks can be lost)")


@pytest.mark.anyio
async def test_fenced_save_that_lost_its_lock_records_no_events(backing: Backing, store: UploadStateStore) -> None:
    redis_only(backing)
    await store.create(info())
    async with Redis.from_url(backing.redis_url) as client:
        await client.set(lock_key("test:", "u1"), "instance-b")  # the lock passed to another holder
    with pytest.raises(UploadLockedError):
        await store.save(info(offset=10), lease=RedisLease(lock_key("test:", "u1"), "instance-a"), events=[event("e1")])
    assert (await store.get("u1"), await due_ids(store)) == (info(), [])
    await store.save(info(offset=10), lease=RedisLease(lock_key("test:", "u1"), "instance-b"), events=[event("e2")])
    assert (await store.get("u1"), await due_ids(store)) == (info(offset=10), ["e2"])


@pytest.mark.anyio
async def test_save_moving_offset_backwards_records_no_events(backing: Backing, store: UploadStateStore) -> None:
    redis_only(backing)
    await store.create(info(offset=5))
    with pytest.raises(OffsetMismatchError):
        await store.save(info(offset=4), events=[event("e1")])
    assert await due_ids(store) == []


# --- claims ----------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_event_is_due_from_its_not_before(store: UploadStateStore) -> None:
    await store.create(info(), events=[event("e1", due=10)])
    assert await due_ids(store, at(9.999999)) == []
    assert await due_ids(store, at(10)) == ["e1"]


@pytest.mark.anyio
async def test_claim_hides_event_until_it_ends(store: UploadStateStore) -> None:
    """A deliverer that crashed never calls done or retry: its claim runs out and the event is due again."""
    recorded = event("e1")
    await store.create(info(), events=[recorded])
    assert await outbox(store).outbox_due(T0, limit=10, claim_for=30) == [claimed(recorded, until=at(30))]
    assert await outbox(store).outbox_due(at(29.999999), limit=10, claim_for=30) == []
    assert await outbox(store).outbox_due(at(30), limit=10, claim_for=30) == [
        claimed(recorded, attempts=2, until=at(60))
    ]


@pytest.mark.anyio
async def test_claim_takes_earliest_due_first_up_to_limit(store: UploadStateStore) -> None:
    await store.create(info(), events=[event("late", due=-1), event("early", due=-3), event("middle", due=-2)])
    assert sorted(await due_ids(store, limit=2)) == ["early", "middle"]
    assert await due_ids(store, limit=2) == ["late"]
    assert await due_ids(store, limit=0) == []


@pytest.mark.anyio
async def test_done_removes_event(store: UploadStateStore) -> None:
    await store.create(info(), events=[event("e1"), event("e2")])
    await due_ids(store)
    await outbox(store).outbox_done("e1")
    await outbox(store).outbox_done("e1", "unknown")  # idempotent, several at once
    await outbox(store).outbox_done("unknown")
    assert await due_ids(store, at(3600)) == ["e2"]


@pytest.mark.anyio
async def test_retry_reschedules_event_and_keeps_attempts(store: UploadStateStore) -> None:
    recorded = event("e1")
    await store.create(info(), events=[recorded])
    await due_ids(store)  # attempt 1, claimed until T0 + 60
    await outbox(store).outbox_retry("e1", at(5))
    assert await due_ids(store, at(4)) == []
    assert await outbox(store).outbox_due(at(5), limit=1, claim_for=1) == [claimed(recorded, attempts=2, until=at(6))]


@pytest.mark.anyio
async def test_retry_of_removed_event_does_not_bring_it_back(store: UploadStateStore) -> None:
    await store.create(info(), events=[event("e1")])
    await outbox(store).outbox_done("e1")
    await outbox(store).outbox_retry("e1", T0)
    assert await due_ids(store, at(3600)) == []


@pytest.mark.anyio
async def test_concurrent_claimers_never_share_an_event(backing: Backing, store: UploadStateStore) -> None:
    """Two instances on one Redis, two processes on one SQLite file (with fsync, their commits run on threads
    at once): each event goes to one of them, and every event goes to one."""
    recorded = [event(f"e{number:03}", due=-(number % 7)) for number in range(120)]
    for number in range(0, 120, 10):
        await store.create(info(f"u{number}"), events=recorded[number : number + 10])
    taken: list[list[str]] = [[], []]

    async def claim(claimer: UploadStateStore, into: list[str]) -> None:
        while batch := await due_ids(claimer, limit=3):
            into.extend(batch)

    other = backing.open()
    try:
        async with anyio.create_task_group() as tasks:
            for claimer, into in [(store, taken[0]), (other, taken[1])]:
                for _ in range(3):  # several deliverer tasks on each instance too
                    tasks.start_soon(claim, claimer, into)
    finally:
        if backing.shared:
            await other.aclose()
    assert sorted(taken[0] + taken[1]) == [due.id for due in recorded]  # none twice, none missed


@pytest.mark.anyio
async def test_events_survive_closing_and_reopening(backing: Backing) -> None:
    if not backing.shared:
        pytest.skip("memory: the outbox is lost with the process")
    first = backing.open()
    await first.create(info(), events=[event("e1")])
    await first.save(info(offset=10), events=[event("e2", created=1)])
    await outbox(first).outbox_due(T0, limit=1, claim_for=30)  # e1, claimed by an instance that then stops
    await first.aclose()
    second = backing.open()
    try:
        assert await due_ids(second) == ["e2"]
        assert [(due.id, due.attempts) for due in await outbox(second).outbox_due(at(30), limit=9, claim_for=1)] == [
            ("e1", 2)
        ]
    finally:
        await second.aclose()


def test_new_events_have_unique_ids_in_the_order_they_were_made() -> None:
    ids = [new_event_id() for _ in range(1000)]
    assert len(set(ids)) == 1000
    assert all(len(event_id) == 32 and int(event_id, 16) >= 0 for event_id in ids)
    assert [event_id[:14] for event_id in ids] == sorted(event_id[:14] for event_id in ids)  # time first


# --- SQLite: one transaction, and no extra statement without events --------------------------------------------------


class Traced:
    """The statements a SQLite store runs on its write connection."""

    def __init__(self, store: SQLiteStateStore) -> None:
        self.statements: list[str] = []
        store._db.set_trace_callback(self.statements.append)

    def take(self) -> list[str]:
        """Each statement's keywords up to the first name ("INSERT INTO uploads"), since the last take."""
        taken = [head(statement) for statement in self.statements]
        self.statements.clear()  # the same list: the callback appends to it
        return taken


def head(statement: str) -> str:
    words: list[str] = []
    for word in statement.split():
        words.append(word)
        if not word.isupper():
            break
    return " ".join(words)


@pytest.mark.anyio
async def test_sqlite_writes_without_events_stay_one_statement(tmp_path: Path) -> None:
    store = SQLiteStateStore(tmp_path / "state.sqlite3")
    traced = Traced(store)
    await store.create(info())
    await store.save(info(offset=3))
    await store.delete("u1")
    assert traced.take() == ["INSERT INTO uploads", "UPDATE uploads", "DELETE FROM uploads"]
    await store.create(info(), events=[event("e1")])
    assert traced.take() == ["BEGIN IMMEDIATE", "INSERT INTO uploads", "INSERT OR IGNORE INTO hook_outbox", "COMMIT"]
    await store.aclose()


class FailingEvents:
    """The store's connection, except that recording an event fails (fault injection: a disk error)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def execute(self, statement: str, *args: Any) -> sqlite3.Cursor:
        if "hook_outbox" in statement:
            raise sqlite3.OperationalError("disk I/O error")
        return self.db.execute(statement, *args)

    @property
    def in_transaction(self) -> bool:
        return self.db.in_transaction


@pytest.mark.anyio
@pytest.mark.parametrize("fsync", [False, True], ids=["sqlite", "sqlite-fsync"])
async def test_sqlite_failed_event_write_fails_the_change(tmp_path: Path, fsync: bool) -> None:
    store = SQLiteStateStore(tmp_path / "state.sqlite3", fsync=fsync)
    await store.create(info())
    db, store._db = store._db, FailingEvents(store._db)  # type: ignore[assignment]
    with pytest.raises(sqlite3.OperationalError):
        await store.save(info(offset=10), events=[event("e1")])
    store._db = db
    assert (await store.get("u1"), await due_ids(store)) == (info(), [])  # rolled back: neither was written
    await store.aclose()

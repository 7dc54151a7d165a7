"""The listing contract (`SupportsListing`, the status API's list), run against every state store: order, filters,
keyset pages while records are being created, and indexes that follow every create, save and delete; plus the
migrations of SQLite databases and Redis data written before the listing existed."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from redis.asyncio import Redis

from storage_backends.base import StorageRef
from tests.contract.conftest import Backing
from tests.redis_server import RedisServer
from tusserver.coordination.state import SQLiteStateStore, UploadStateStore
from tusserver.coordination.state.base import SupportsListing
from tusserver.coordination.state.listing import Position, position_of, select
from tusserver.coordination.state.redis import RedisStateStore
from tusserver.protocol.model import UploadInfo, UploadState

pytestmark = pytest.mark.anyio

T0 = datetime(2026, 5, 1, 12, 0, 0, tzinfo=UTC)
UPLOADING, UPLOADED, ACCEPTED = UploadState.UPLOADING, UploadState.UPLOADED, UploadState.ACCEPTED


def record(upload_id: str, seconds: float, owner: str | None = None, **changes: object) -> UploadInfo:
    """A record created `seconds` after T0."""
    info = UploadInfo(
        id=upload_id,
        length=10,
        storage=StorageRef(backend="file", key=upload_id),
        created_at=T0 + timedelta(seconds=seconds),
        owner=owner,
    )
    return info.model_copy(update=changes)


def listing(store: UploadStateStore) -> SupportsListing:
    assert isinstance(store, SupportsListing)
    return store


async def ids(
    store: UploadStateStore,
    *,
    owner: str | None = None,
    state: UploadState | None = None,
    before: Position | None = None,
    limit: int = 100,
) -> list[str]:
    page = await listing(store).list_uploads(owner=owner, state=state, before=before, limit=limit)
    return [info.id for info in page]


async def every_page(store: UploadStateStore, *, limit: int, **filters: object) -> list[list[str]]:
    """Every page, each continued from the last record of the one before."""
    pages: list[list[str]] = []
    before: Position | None = None
    while page := await listing(store).list_uploads(before=before, limit=limit, **filters):  # type: ignore[arg-type]
        pages.append([info.id for info in page])
        before = position_of(page[-1])
    return pages


async def test_newest_first_with_ties_by_id(store: UploadStateStore) -> None:
    for info in [record("b", 1), record("a", 2), record("c", 2), record("d", 0)]:
        await store.create(info)
    assert await ids(store) == ["c", "a", "b", "d"]
    assert await ids(store, limit=2) == ["c", "a"]
    assert await ids(store, limit=0) == []


async def test_empty_store_lists_nothing(store: UploadStateStore) -> None:
    assert await ids(store) == []
    assert await ids(store, owner="alice", state=ACCEPTED) == []


async def test_filters_by_owner_and_state(store: UploadStateStore) -> None:
    records = [
        record("a1", 1, "alice"),
        record("a2", 2, "alice", offset=10, state=UPLOADED),
        record("b1", 3, "bob", offset=10, state=UPLOADED),
        record("n1", 4),
    ]
    for info in records:
        await store.create(info)
    assert await ids(store, owner="alice") == ["a2", "a1"]
    assert await ids(store, owner="bob") == ["b1"]
    assert await ids(store, owner="carol") == []
    assert await ids(store, state=UPLOADED) == ["b1", "a2"]
    assert await ids(store, owner="alice", state=UPLOADING) == ["a1"]
    assert await ids(store, owner="alice", state=ACCEPTED) == []
    assert await ids(store) == ["n1", "b1", "a2", "a1"]  # ownerless records only when no owner is asked for


async def test_records_written_before_the_life_cycle_are_listed_as_accepted(store: UploadStateStore) -> None:
    # Complete, still "uploading" and never finished: `current_state` reads it as accepted, and so does the listing.
    await store.create(record("old", 1, offset=10))
    assert await ids(store, state=ACCEPTED) == ["old"]
    assert await ids(store, state=UPLOADING) == []


async def test_saves_and_deletes_move_records_between_listings(store: UploadStateStore) -> None:
    await store.create(record("u", 1, "alice"))
    await store.create(record("v", 2, "alice"))
    await store.save(record("u", 1, "alice", offset=10, state=UPLOADED))
    assert await ids(store, state=UPLOADING) == ["v"]
    assert await ids(store, owner="alice", state=UPLOADED) == ["u"]
    await store.save(record("u", 1, "alice", offset=10, state=UploadState.REJECTED, reason="virus"))
    assert await ids(store, owner="alice", state=UPLOADED) == []
    assert await ids(store, owner="alice", state=UploadState.REJECTED) == ["u"]
    await store.delete("u")
    await store.delete("u")
    assert await ids(store) == ["v"]
    assert await ids(store, owner="alice", state=UploadState.REJECTED) == []
    assert [info.offset for info in await listing(store).list_uploads()] == [0]


async def test_pages_see_each_record_once_while_records_are_created(store: UploadStateStore) -> None:
    """A keyset, not an offset: records created between two pages are newer than every page already read, so
    they never push an older record onto the next page again."""
    for n in range(7):
        await store.create(record(f"old{n}", n, "alice"))
    first = await listing(store).list_uploads(owner="alice", limit=3)
    for n in range(5):  # newer than everything: they belong before the first page
        await store.create(record(f"new{n}", 100 + n, "alice"))
    seen = [info.id for info in first]
    before = position_of(first[-1])
    while page := await listing(store).list_uploads(owner="alice", before=before, limit=3):
        seen += [info.id for info in page]
        before = position_of(page[-1])
        await store.create(record(f"newer{len(seen)}", 200 + len(seen), "alice"))
    assert seen == [f"old{n}" for n in reversed(range(7))]


async def test_pages_agree_with_a_full_scan(store: UploadStateStore) -> None:
    """Every filter's pages, on records with equal creation times, several owners and states, against `select`."""
    records = [
        record(
            f"u{n:02d}",
            n // 3,  # three records a second: ties in created_at
            [None, "alice", "bob"][n % 3],
            offset=10 * (n % 2),
            state=[UPLOADING, UPLOADED][n % 2],
        )
        for n in range(20)
    ]
    for info in records:
        await store.create(info)
    for owner in [None, "alice", "bob"]:
        for state in [None, UPLOADING, UPLOADED, ACCEPTED]:
            expected = [info.id for info in select(records, owner=owner, state=state, limit=100)]
            pages = await every_page(store, limit=3, owner=owner, state=state)
            assert [upload_id for page in pages for upload_id in page] == expected, (owner, state)
            assert all(len(page) == 3 for page in pages[:-1])


async def test_owners_with_separators_and_non_ascii_stay_apart(store: UploadStateStore) -> None:
    owners = ["a|b", "a", "a%7Cb", "@a", "ünï|cødé", ""]
    for n, owner in enumerate(owners):
        await store.create(record(f"u{n}", n, owner, offset=10, state=UPLOADED))
    for n, owner in enumerate(owners):
        assert await ids(store, owner=owner) == [f"u{n}"], owner
        assert await ids(store, owner=owner, state=UPLOADED) == [f"u{n}"], owner


async def test_a_second_store_on_the_same_data_lists_the_same(backing: Backing, store: UploadStateStore) -> None:
    if not backing.shared:
        pytest.skip("memory: one process's")
    await store.create(record("u", 1, "alice"))
    other = backing.open()
    try:
        assert await ids(other, owner="alice") == ["u"]
    finally:
        await other.aclose()


# --- migrations ------------------------------------------------------------------------------------------------


def old_sqlite_database(path: Path, records: list[UploadInfo]) -> None:
    """A database as the server wrote it before the listing columns existed."""
    with sqlite3.connect(path) as db:
        db.execute("CREATE TABLE uploads (id TEXT PRIMARY KEY, info TEXT NOT NULL, expires_at REAL) WITHOUT ROWID")
        db.executemany("INSERT INTO uploads VALUES (?, ?, NULL)", [(r.id, r.model_dump_json()) for r in records])


async def test_sqlite_lists_records_written_before_the_listing(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    old_sqlite_database(path, [record(f"u{n:04d}", n, "alice", offset=10 * (n % 2)) for n in range(1500)])
    store = SQLiteStateStore(path)
    try:
        assert len(await ids(store, owner="alice", limit=2000)) == 1500  # more than one batch of the migration
        assert await ids(store, owner="alice", limit=2) == ["u1499", "u1498"]
        assert await ids(store, state=UPLOADING, limit=2) == ["u1498", "u1496"]
        assert await ids(store, state=ACCEPTED, limit=1) == ["u1499"]  # complete, written before the life cycle
    finally:
        await store.aclose()
    reopened = SQLiteStateStore(path)  # migrated once: opening again finds the columns
    try:
        assert len(await ids(reopened, limit=2000)) == 1500
    finally:
        await reopened.aclose()


async def test_sqlite_pages_are_range_reads_of_an_index(tmp_path: Path) -> None:
    """No listing sorts: the plan of each query the store runs walks an index in listing order."""
    store = SQLiteStateStore(tmp_path / "state.sqlite3")
    statements: list[str] = []
    store._db.set_trace_callback(statements.append)
    try:
        for owner in [None, "alice"]:
            for state in [None, UPLOADED]:
                for before in [None, Position(1, "x")]:
                    await listing(store).list_uploads(owner=owner, state=state, before=before, limit=10)
    finally:
        await store.aclose()
    queries = [statement for statement in statements if statement.startswith("SELECT info FROM uploads")]
    assert len(queries) == 8
    with sqlite3.connect(tmp_path / "state.sqlite3") as db:
        for query in queries:
            details = " ".join(str(step[-1]) for step in db.execute(f"EXPLAIN QUERY PLAN {query}"))
            assert "USING INDEX uploads_listed" in details, (query, details)
            assert "TEMP B-TREE" not in details, (query, details)


async def test_redis_lists_records_written_before_the_listing(redis_client: Redis, redis_server: RedisServer) -> None:
    records = [record(f"u{n:04d}", n, "alice", offset=10 * (n % 2)) for n in range(1200)]
    for info in records:  # as the store wrote them before: the record, and no listing
        await redis_client.set(f"old:upload:{info.id}", info.model_dump_json())
    await redis_client.set("other:upload:x", record("x", 0).model_dump_json())  # another prefix's
    store = RedisStateStore(Redis.from_url(redis_server.url, decode_responses=True), prefix="old:")
    try:
        assert len(await ids(store, owner="alice", limit=2000)) == 1200
        assert await ids(store, state=ACCEPTED, limit=2) == ["u1199", "u1197"]
        assert await ids(store, limit=1, before=position_of(records[1])) == ["u0000"]
        assert await redis_client.exists("old:list:ready")
    finally:
        await store.aclose()


async def test_redis_listing_keys_empty_once_every_record_is_deleted(
    redis_client: Redis, redis_server: RedisServer
) -> None:
    """Nothing of a deleted record is left in the listing: every member named by the entry goes with it."""
    store = RedisStateStore(Redis.from_url(redis_server.url, decode_responses=True), prefix="k:")
    try:
        await store.create(record("u", 1, "alice"))
        await store.create(record("v", 2))
        await store.save(record("u", 1, "alice", offset=10, state=UPLOADED))
        assert await redis_client.zcard("k:list:owner-state") == 1
        await store.delete("u")
        await store.delete("v")
        assert await redis_client.keys("k:list*") == []
        assert await redis_client.hlen("k:listed") == 0
    finally:
        await store.aclose()

"""Removing expired uploads (tusserver.coordination.cleanup): after cleanup an expired upload is unknown (404,
item 59) and its bytes are gone; busy uploads are left alone; the server's periodic sweep does the same."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.base import StorageRef
from storage_backends.memory import MemoryStorage
from tests.http.asgi import open_client, upload_id
from tests.http.clock import LIFETIME, FakeClock, clocked_app
from tests.http.doubles import NoDeleteStorage
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run
from tusserver import MemoryStateStore
from tusserver.context import TusContext
from tusserver.coordination.cleanup import remove_expired
from tusserver.coordination.state import OutboxEvent
from tusserver.protocol.model import UploadInfo


class SignallingStorage(MemoryStorage):
    """MemoryStorage that sets `deleted` once a blob is deleted (the last step of removing an upload)."""

    def __init__(self) -> None:
        super().__init__()
        self.deleted = anyio.Event()

    async def delete(self, ref: StorageRef) -> None:
        await super().delete(ref)
        self.deleted.set()


class FlakyStateStore(MemoryStateStore):
    """A state store whose first `expiring` query fails, as during an outage."""

    def __init__(self) -> None:
        super().__init__()
        self.failures_left = 1

    async def expiring(self, before: datetime) -> AsyncIterator[str]:
        if self.failures_left:
            self.failures_left -= 1
            raise OSError("state store unavailable")
        async for upload_id_ in super().expiring(before):
            yield upload_id_


class StaleIndexStateStore(MemoryStateStore):
    """A state store whose expiry index is out of date: it lists every record ever created, plus one that never
    existed, as if PATCHes and DELETEs had happened between the listing and the removal."""

    def __init__(self) -> None:
        super().__init__()
        self.created: list[str] = []

    async def create(self, info: UploadInfo, *, events: Sequence[OutboxEvent] = ()) -> None:
        await super().create(info, events=events)
        self.created.append(info.id)

    async def expiring(self, before: datetime) -> AsyncIterator[str]:
        for upload_id_ in [*self.created, "0" * 32]:
            yield upload_id_


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def app(clock: FakeClock, storage: MemoryStorage, state: MemoryStateStore, tmp_path: Path) -> Starlette:
    """Unfinished uploads expire after LIFETIME seconds of the fake clock; finished ones are kept."""
    return clocked_app(clock, storage, state, tmp_path)


def tus_of(app: Starlette) -> TusContext:
    tus: TusContext = app.state.tus
    return tus


@pytest.mark.anyio
async def test_remove_expired_returns_id_and_upload_is_then_unknown(
    app: Starlette, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """PROTOCOL.md item 59: 410 while the record is kept, 404 after cleanup."""
    location = await create(client, 10)
    clock.advance(LIFETIME)
    await run(client, [Exchange("HEAD", location, TUS, expect=410)])
    assert await remove_expired(tus_of(app), clock()) == [upload_id(location)]
    await run(client, [
        Exchange("HEAD", location, TUS, expect=404),
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"x", expect=404),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_remove_expired_deletes_the_bytes(
    app: Starlette, client: httpx.AsyncClient, clock: FakeClock, storage: MemoryStorage
) -> None:
    location = await create(client, 10)
    await run(client, [Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204)])
    clock.advance(LIFETIME)
    await remove_expired(tus_of(app), clock())
    assert upload_id(location) not in storage.blobs


@pytest.mark.anyio
async def test_remove_expired_keeps_live_and_finished_uploads(
    app: Starlette, client: httpx.AsyncClient, clock: FakeClock, storage: MemoryStorage
) -> None:
    expired, finished = await create(client, 10), await create(client, 0)
    clock.advance(LIFETIME - 1)
    live = await create(client, 10)
    clock.advance(1)
    assert await remove_expired(tus_of(app), clock()) == [upload_id(expired)]
    await run(client, [Exchange("HEAD", live, TUS, expect=200), Exchange("HEAD", finished, TUS, expect=200)])
    assert set(storage.blobs) == {upload_id(live), upload_id(finished)}


@pytest.mark.anyio
async def test_remove_expired_before_expiry_removes_nothing(
    app: Starlette, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    location = await create(client, 10)
    clock.advance(LIFETIME - 0.001)
    assert await remove_expired(tus_of(app), clock()) == []
    await run(client, [Exchange("HEAD", location, TUS, expect=200)])


@pytest.mark.anyio
async def test_remove_expired_removes_finished_upload_after_retention(
    clock: FakeClock, storage: MemoryStorage, state: MemoryStateStore, tmp_path: Path
) -> None:
    app = clocked_app(clock, storage, state, tmp_path, retention=120)
    async with open_client(app) as client:
        location = await create(client, 0)
        clock.advance(120)
        assert await remove_expired(tus_of(app), clock()) == [upload_id(location)]
        await run(client, [Exchange("HEAD", location, TUS, expect=404)])


@pytest.mark.anyio
async def test_remove_expired_skips_upload_whose_lock_is_held(
    app: Starlette, client: httpx.AsyncClient, clock: FakeClock
) -> None:
    """A request using the upload right now keeps it alive; the next sweep removes it."""
    location = await create(client, 10)
    clock.advance(LIFETIME)
    tus = tus_of(app)
    async with tus.locker.acquire(upload_id(location), timeout=1):
        assert await remove_expired(tus, clock()) == []
    await run(client, [Exchange("HEAD", location, TUS, expect=410)])
    assert await remove_expired(tus, clock()) == [upload_id(location)]


@pytest.mark.anyio
async def test_remove_expired_rechecks_each_listed_upload_under_its_lock(
    clock: FakeClock, storage: MemoryStorage, tmp_path: Path
) -> None:
    """A listed upload that is alive (extended meanwhile) is kept; a listed id that is gone is skipped."""
    app = clocked_app(clock, storage, StaleIndexStateStore(), tmp_path)
    async with open_client(app) as client:
        expired = await create(client, 10)
        clock.advance(LIFETIME - 1)
        live = await create(client, 10)
        clock.advance(1)
        assert await remove_expired(tus_of(app), clock()) == [upload_id(expired)]
        await run(client, [Exchange("HEAD", live, TUS, expect=200)])


@pytest.mark.anyio
async def test_remove_expired_with_storage_that_cannot_delete_forgets_the_record(
    clock: FakeClock, state: MemoryStateStore, tmp_path: Path
) -> None:
    storage = NoDeleteStorage()
    app = clocked_app(clock, storage, state, tmp_path)
    async with open_client(app) as client:
        location = await create(client, 10)
        clock.advance(LIFETIME)
        assert await remove_expired(tus_of(app), clock()) == [upload_id(location)]
        await run(client, [Exchange("HEAD", location, TUS, expect=404)])


@pytest.mark.anyio
async def test_periodic_sweep_removes_expired_upload(clock: FakeClock, tmp_path: Path) -> None:
    """`cleanup_interval` runs the sweep from the app's lifespan, without any call from the test."""
    storage, state = SignallingStorage(), MemoryStateStore()
    app = clocked_app(clock, storage, state, tmp_path, cleanup_interval=0.05)
    async with app.router.lifespan_context(app), open_client(app) as client:
        location = await create(client, 10)
        clock.advance(LIFETIME)
        with anyio.fail_after(5):  # many sweep intervals: fails if no sweep ever runs
            await storage.deleted.wait()
        await run(client, [Exchange("HEAD", location, TUS, expect=404)])
        assert upload_id(location) not in storage.blobs


@pytest.mark.anyio
async def test_periodic_sweep_continues_after_a_failed_sweep(clock: FakeClock, tmp_path: Path) -> None:
    """A state-store outage during one sweep is logged; the next sweep still runs."""
    storage, state = SignallingStorage(), FlakyStateStore()
    app = clocked_app(clock, storage, state, tmp_path, cleanup_interval=0.05)
    async with app.router.lifespan_context(app), open_client(app) as client:
        await create(client, 10)
        clock.advance(LIFETIME)
        with anyio.fail_after(5):
            await storage.deleted.wait()
    assert state.failures_left == 0

"""The locker contract: one holder per upload, release requests, 423 on timeout."""

from __future__ import annotations

import anyio
import pytest
from redis.asyncio import Redis

from tusserver.coordination.locking import Locker, MemoryLocker
from tusserver.coordination.redis_locking import RedisLocker
from tusserver.protocol.errors import UploadLockedError


@pytest.fixture(params=["memory", "redis"])
def locker(request: pytest.FixtureRequest) -> Locker:
    if request.param == "memory":
        return MemoryLocker()
    client: Redis = request.getfixturevalue("redis_client")
    return RedisLocker(client, prefix="test:", ttl=2.0, poll=0.01)


@pytest.mark.anyio
async def test_second_acquirer_asks_holder_to_release(locker: Locker) -> None:
    async with anyio.create_task_group() as tasks, locker.acquire("u1", timeout=5) as lease:
        asked = anyio.Event()
        lease.on_release_request(asked.set)
        assert not lease.release_requested
        tasks.start_soon(_hold_briefly, locker)
        await asked.wait()
        assert lease.release_requested


async def _hold_briefly(locker: Locker) -> None:
    async with locker.acquire("u1", timeout=5):
        pass


@pytest.mark.anyio
async def test_waiter_gets_lock_after_holder_exits(locker: Locker) -> None:
    order: list[str] = []

    async def second() -> None:
        async with locker.acquire("u1", timeout=5):
            order.append("second")

    async with anyio.create_task_group() as tasks, locker.acquire("u1", timeout=5) as lease:
        done = anyio.Event()
        lease.on_release_request(done.set)
        tasks.start_soon(second)
        await done.wait()
        order.append("first")
    assert order == ["first", "second"]


@pytest.mark.anyio
async def test_acquire_times_out_with_locked_error(locker: Locker) -> None:
    async with locker.acquire("u1", timeout=5):
        with pytest.raises(UploadLockedError):
            async with locker.acquire("u1", timeout=0.05):
                pass


@pytest.mark.anyio
async def test_other_uploads_are_independent(locker: Locker) -> None:
    async with locker.acquire("u1", timeout=5), locker.acquire("u2", timeout=5) as other:
        assert not other.release_requested


@pytest.mark.anyio
async def test_lock_is_released_when_block_raises(locker: Locker) -> None:
    with pytest.raises(RuntimeError):
        async with locker.acquire("u1", timeout=5):
            raise RuntimeError("boom")
    async with locker.acquire("u1", timeout=5) as lease:
        assert not lease.release_requested


@pytest.mark.anyio
async def test_callback_registered_after_request_runs_at_once(locker: Locker) -> None:
    calls: list[str] = []
    async with anyio.create_task_group() as tasks, locker.acquire("u1", timeout=5) as lease:
        got = anyio.Event()
        lease.on_release_request(got.set)

        async def waiter() -> None:
            async with locker.acquire("u1", timeout=5):
                pass

        tasks.start_soon(waiter)
        await got.wait()
        lease.on_release_request(lambda: calls.append("late"))
    assert calls == ["late"]

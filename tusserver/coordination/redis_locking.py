"""Per-upload locks in Redis, so that N instances serve one upload without sticky sessions.

- The lock is `<prefix>lock:<id>` holding a random owner token, set with NX and a TTL that the holder
  renews every TTL/3; a crashed instance's lock expires by itself after the TTL.
- Release is a compare-and-delete (Lua), so an instance never deletes a lock it no longer owns.
- A waiter publishes on `<prefix>release:<id>` while it waits: the holder (on any instance) is
  subscribed, stops reading its body, stores what it got and lets go (tusd's lock-release request,
  made distributed). Past the wait timeout the waiter gets 423 Locked.
- A holder that cannot renew (Redis gone, lock lost) is told to release at once, so it stops
  writing long before its TTL runs out and another instance could take over.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskStatus
from redis import exceptions as redis_errors
from redis.asyncio import Redis

from tusserver.coordination.locking import MemoryLease
from tusserver.coordination.state.redis import lock_key, redis_available
from tusserver.protocol.errors import ServiceUnavailableError, UploadLockedError

__all__ = ["RedisLease", "RedisLocker"]

logger = logging.getLogger("tusserver")

_RENEW = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0"
_RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0"


class RedisLease(MemoryLease):
    """A lease on a Redis lock; `fence` (lock key, owner token) lets the state store save only while
    the lock is still this lease's."""

    def __init__(self, key: str, token: str) -> None:
        super().__init__()
        self.fence = (key, token)


class RedisLocker:
    """Distributed locks in Redis (see `Locker`).

    Args:
        client: a redis.asyncio client (decode_responses=True), shared with the state store.
        prefix: the prefix of every key and channel.
        ttl: seconds a lock outlives its holder's last renewal (a crashed instance's lock frees itself).
        poll: seconds between a waiter's attempts (each also repeats the release request).
    """

    def __init__(self, client: Redis, *, prefix: str = "tus:", ttl: float = 10.0, poll: float = 0.05) -> None:
        self._redis = client
        self._prefix = prefix
        self._ttl_ms = int(ttl * 1000)
        self._poll = poll
        self._renew = client.register_script(_RENEW)
        self._release = client.register_script(_RELEASE)
        # While `serve` runs, one subscription serves every lease of this process.
        self._serving = self._started = False
        self._leases: dict[str, set[RedisLease]] = {}

    def _key(self, upload_id: str) -> str:
        return lock_key(self._prefix, upload_id)

    def _channel(self, upload_id: str) -> str:
        return f"{self._prefix}release:{upload_id}"

    async def held(self, upload_id: str) -> bool:
        """True while some instance holds the lock on `upload_id`."""
        with redis_available():
            return bool(await self._redis.exists(self._key(upload_id)))

    @asynccontextmanager
    async def acquire(self, upload_id: str, *, timeout: float) -> AsyncIterator[RedisLease]:
        """Hold the lock on `upload_id` (see `Locker.acquire`)."""
        token = secrets.token_hex(16)
        await self._take(upload_id, token, timeout)
        lease, failure = RedisLease(self._key(upload_id), token), None
        try:
            async with anyio.create_task_group() as tasks:
                tasks.start_soon(self._keep, upload_id, token, lease)
                if self._serving:
                    self._leases.setdefault(upload_id, set()).add(lease)
                else:
                    tasks.start_soon(self._listen, upload_id, lease)
                try:
                    yield lease
                except BaseException as exc:  # re-raised below as itself, not inside an ExceptionGroup
                    failure = exc
                finally:
                    tasks.cancel_scope.cancel()
                    self._forget(upload_id, lease)
        finally:
            with anyio.CancelScope(shield=True), redis_available():
                await self._release(keys=[self._key(upload_id)], args=[token])
        if failure is not None:
            raise failure

    async def _take(self, upload_id: str, token: str, timeout: float) -> None:
        busy = False  # did Redis ever answer "taken"? If not, the time went waiting for Redis itself.
        with anyio.move_on_after(timeout), redis_available():
            while not await self._redis.set(self._key(upload_id), token, nx=True, px=self._ttl_ms):
                busy = True
                await self._redis.publish(self._channel(upload_id), token)  # ask the holder to let go
                await anyio.sleep(self._poll)
            return
        raise UploadLockedError() if busy else ServiceUnavailableError("the lock store did not answer in time")

    async def _keep(self, upload_id: str, token: str, lease: MemoryLease) -> None:
        # Renew every TTL/3; when that fails the lock may be lost, so the holder must stop now.
        interval = self._ttl_ms / 3000
        try:
            while True:
                await anyio.sleep(interval)
                renewed = 0
                with anyio.move_on_after(interval):  # an unanswered renewal counts as failed
                    renewed = await self._renew(keys=[self._key(upload_id)], args=[token, self._ttl_ms])
                if not renewed:
                    break
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            pass
        lease.request_release()

    @property
    def serving(self) -> bool:
        """True while `serve` holds the shared subscription."""
        return self._serving

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Deliver release requests to this process's leases through one subscription, until cancelled.

        Run it for the app's lifetime (the app's lifespan does); without it, each lease subscribes on
        a connection of its own. A lost connection is retried every second; meanwhile new leases
        subscribe on their own again. With `TaskGroup.start`, returns once subscribed.
        """
        while True:
            try:
                await self._dispatch(task_status)
            except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
                logger.warning("release-request subscription lost (%s); retrying", exc)
            await anyio.sleep(1)

    async def _dispatch(self, task_status: TaskStatus[None]) -> None:
        pubsub = self._redis.pubsub()
        prefix = self._channel("")
        try:
            await pubsub.psubscribe(prefix + "*")
            self._serving = True
            if not self._started:  # only the first subscription answers TaskGroup.start
                self._started = True
                task_status.started()
            async for message in pubsub.listen():
                if message["type"] == "pmessage":
                    for lease in list(self._leases.get(str(message["channel"]).removeprefix(prefix), ())):
                        lease.request_release()
        finally:
            self._serving = False
            for leases in self._leases.values():  # blind to release requests from now on: let go
                for lease in leases:
                    lease.request_release()
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis-py 8.2

    def _forget(self, upload_id: str, lease: RedisLease) -> None:
        leases = self._leases.get(upload_id)
        if leases is not None:
            leases.discard(lease)
            if not leases:
                del self._leases[upload_id]

    async def _listen(self, upload_id: str, lease: MemoryLease) -> None:
        pubsub = self._redis.pubsub()
        try:
            await pubsub.subscribe(self._channel(upload_id))
            async for message in pubsub.listen():
                if message["type"] == "message":
                    lease.request_release()
        except (redis_errors.ConnectionError, redis_errors.TimeoutError):
            lease.request_release()  # blind to release requests: better to let go
        finally:
            with anyio.CancelScope(shield=True):
                await pubsub.aclose()  # type: ignore[no-untyped-call, unused-ignore]  # untyped before redis-py 8.2

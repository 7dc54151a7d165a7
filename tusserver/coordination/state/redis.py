"""Upload state in Redis, shared by every tusserver instance (`--redis-url`).

Keys (with the configurable prefix, default "tus:"):
- `<prefix>upload:<id>`: the upload record as JSON;
- `<prefix>expires`: a sorted set of upload ids scored by expiry time (seconds since the epoch).

Every write is one Lua script, so the record and the expiry index change together, and a save can
never move an offset backwards, whichever instance sends it. A HEAD or PATCH reads the record with
one GET. Redis being unreachable is a 503 with Retry-After (never a 500, never a fallback to local
state). Run Redis with AOF persistence (`appendonly yes`) so uploads survive a Redis restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from datetime import datetime

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from tusserver.coordination.locking import Lease
from tusserver.protocol.errors import (
    OffsetMismatchError,
    ServiceUnavailableError,
    UploadExistsError,
    UploadLockedError,
    UploadNotFoundError,
)
from tusserver.protocol.model import UploadInfo

__all__ = ["RedisStateStore", "lock_key", "redis_available"]

# KEYS: record, expiry index. ARGV: json, expiry score or "", id.
_CREATE = """
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) end
return 1
"""
# KEYS: record, expiry index[, lock]. ARGV: json, expiry score or "", id, new offset[, lock token].
# Returns {1} when saved, {-1} when the record is gone, {0, stored offset} when it would go backwards,
# {-2} when the lock is no longer the caller's (fencing: a former holder must not record).
_SAVE = """
if KEYS[3] and redis.call('GET', KEYS[3]) ~= ARGV[5] then return {-2} end
local current = redis.call('GET', KEYS[1])
if not current then return {-1} end
local stored = cjson.decode(current)['offset']
if stored > tonumber(ARGV[4]) then return {0, stored} end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) else redis.call('ZREM', KEYS[2], ARGV[3]) end
return {1}
"""


@contextmanager
def redis_available() -> Iterator[None]:
    """Turn Redis connection failures and timeouts into 503 Service Unavailable."""
    try:
        yield
    except (redis_errors.ConnectionError, redis_errors.TimeoutError) as exc:
        raise ServiceUnavailableError(f"the state store is unreachable: {type(exc).__name__}") from exc


def lock_key(prefix: str, upload_id: str) -> str:
    """The key of an upload's lock, shared with `RedisLocker`."""
    return f"{prefix}lock:{upload_id}"


def _score(info: UploadInfo) -> str:
    return repr(info.expires_at.timestamp()) if info.expires_at else ""


class RedisStateStore:
    """Upload records in Redis (see `UploadStateStore`).

    Args:
        client: a redis.asyncio client (decode_responses=True); this store closes it.
        prefix: the prefix of every key.
    """

    def __init__(self, client: Redis, *, prefix: str = "tus:") -> None:
        self._redis = client
        self._prefix = prefix
        self._expires = prefix + "expires"
        self._create = client.register_script(_CREATE)
        self._save = client.register_script(_SAVE)

    def _key(self, upload_id: str) -> str:
        return f"{self._prefix}upload:{upload_id}"

    async def create(self, info: UploadInfo) -> None:
        """Store a new record and its expiry atomically; raises UploadExistsError."""
        with redis_available():
            created = await self._create(keys=[self._key(info.id), self._expires], args=_args(info))
        if not created:
            raise UploadExistsError()

    async def get(self, upload_id: str) -> UploadInfo:
        """Load a record with one GET; raises UploadNotFoundError."""
        with redis_available():
            raw = await self._redis.get(self._key(upload_id))
        if raw is None:
            raise UploadNotFoundError()
        return UploadInfo.model_validate_json(raw)

    async def peek(self, upload_id: str) -> tuple[UploadInfo, bool]:
        """The record and whether its lock is held, in one pipelined round trip (for HEAD)."""
        with redis_available():
            async with self._redis.pipeline(transaction=False) as pipe:
                pipe.get(self._key(upload_id))
                pipe.exists(lock_key(self._prefix, upload_id))
                raw, locked = await pipe.execute()
        if raw is None:
            raise UploadNotFoundError()
        return UploadInfo.model_validate_json(raw), bool(locked)

    async def save(self, info: UploadInfo, *, lease: Lease | None = None) -> None:
        """Replace a record atomically, never moving its offset backwards, and only while `lease`
        (a `RedisLease`) still holds the upload's lock.

        Raises:
            UploadNotFoundError: the record was deleted meanwhile.
            OffsetMismatchError: the stored offset is ahead of this one (a writer raced this one).
            UploadLockedError: the lock passed to another holder.
        """
        keys, args = [self._key(info.id), self._expires], [*_args(info), str(info.offset)]
        fence = getattr(lease, "fence", None)
        if fence is not None:
            keys, args = [*keys, fence[0]], [*args, fence[1]]
        with redis_available():
            result = await self._save(keys=keys, args=args)
        if result[0] == -2:
            raise UploadLockedError("this request lost the upload's lock; nothing was recorded")
        if result[0] == -1:
            raise UploadNotFoundError()
        if result[0] == 0:
            raise OffsetMismatchError(int(result[1]))

    async def delete(self, upload_id: str) -> None:
        """Remove a record and its expiry in one transaction."""
        with redis_available():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.delete(self._key(upload_id))
                pipe.zrem(self._expires, upload_id)
                await pipe.execute()

    async def expiring(self, before: datetime) -> AsyncIterator[str]:
        """Ids whose expiry is at or before `before`, from the sorted index."""
        with redis_available():
            upload_ids = await self._redis.zrangebyscore(self._expires, "-inf", before.timestamp())
        for upload_id in upload_ids:
            yield str(upload_id)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._redis.aclose()


def _args(info: UploadInfo) -> list[str]:
    return [info.model_dump_json(), _score(info), info.id]

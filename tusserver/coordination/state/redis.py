"""Upload state in Redis, shared by every tusserver instance (`--redis-url`).

Keys (with the configurable prefix, default "tus:"):
- `<prefix>upload:<id>`: the upload record as JSON;
- `<prefix>expires`: a sorted set of upload ids scored by expiry time (seconds since the epoch);
- the hook outbox: `<prefix>hooks`, a sorted set of event ids scored by `not_before` (whole microseconds
  since the epoch), `<prefix>hooks:events`, a hash of id -> the event as recorded (JSON), and
  `<prefix>hooks:attempts`, a hash of id -> attempts;
- the status API's listing: `<prefix>listed` and four sorted sets (`tusserver.coordination.state.redis_listing`).

Why a sorted set and not a stream with a consumer group: the outbox needs a due time per event (a retry
with backoff, a claim that ends), which is exactly a score; a claim is one Lua script that takes the
lowest scores up to `now` and moves them to `now + claim_for`, so N instances never hold one event at
once, and a crashed instance's claim simply runs out. A stream would need XAUTOCLAIM with one idle time
for every entry, a second read path for new entries, and could not delay one entry's retry alone.

Every write is one Lua script, so the record, the expiry index and the listing change together, and a save can
never move an offset backwards, whichever instance sends it. A HEAD or PATCH reads the record with
one GET. Redis being unreachable is a 503 with Retry-After (never a 500, never a fallback to local
state). Run Redis with AOF persistence (`appendonly yes`) so uploads survive a Redis restart.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from string import Template

from redis import exceptions as redis_errors
from redis.asyncio import Redis

from tusserver.coordination.locking import Lease
from tusserver.coordination.state.listing import Position
from tusserver.coordination.state.outbox import OutboxEvent, from_micros, micros, oldest_first
from tusserver.coordination.state.redis_listing import LISTED, MEMBERS, UNLISTED, RedisListing, entry, listing_keys
from tusserver.protocol.errors import (
    OffsetMismatchError,
    ServiceUnavailableError,
    UploadExistsError,
    UploadLockedError,
    UploadNotFoundError,
)
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["RedisStateStore", "lock_key", "redis_available"]

# Each write comes in two scripts: the plain one, and one that also records hook events, in the same
# script and only once the change is made. The latter's KEYS go on with the outbox's three (KEYS[3..5]),
# its ARGV with the events, four values each (id, not_before, attempts, JSON), from ARGV[$events] on.
# An id already recorded is skipped.
_RECORD_EVENTS = """
for i = $events, #ARGV, 4 do
  if redis.call('HSETNX', KEYS[4], ARGV[i], ARGV[i + 3]) == 1 then
    redis.call('ZADD', KEYS[3], ARGV[i + 1], ARGV[i])
    redis.call('HSET', KEYS[5], ARGV[i], ARGV[i + 2])
  end
end"""
# The listing's five keys (`listing_keys`) follow the record's and the outbox's: KEYS[3..7] in a plain script,
# KEYS[6..10] in one that records events.
# KEYS: record, expiry index, the listing's. ARGV: json, expiry score or "", id, listing entry.
_CREATE = Template("""
if not redis.call('SET', KEYS[1], ARGV[1], 'NX') then return 0 end
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3]) end$record$listed
return 1
""")
# KEYS: record, expiry index, the listing's[, lock]. ARGV: json, expiry score or "", id, listing entry,
# new offset[, lock token].
# Returns {1} when saved, {-1} when the record is gone, {0, stored offset} when it would go backwards,
# {-2} when the lock is no longer the caller's (fencing: a former holder must not record).
# With events, the lock is KEYS[11] (after the outbox's and the listing's), and ARGV[6] is the token or "".
_SAVE = Template("""
if KEYS[$lock] and redis.call('GET', KEYS[$lock]) ~= ARGV[6] then return {-2} end
local current = redis.call('GET', KEYS[1])
if not current then return {-1} end
local stored = cjson.decode(current)['offset']
if stored > tonumber(ARGV[5]) then return {0, stored} end
redis.call('SET', KEYS[1], ARGV[1])
if ARGV[2] ~= '' then redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
else redis.call('ZREM', KEYS[2], ARGV[3]) end$record$listed
return {1}
""")
# KEYS: record, expiry index, the outbox's three, the listing's. ARGV: id, then the events.
_DELETE = Template("""
redis.call('ZREM', KEYS[2], ARGV[1])$unlisted
if redis.call('DEL', KEYS[1]) == 0 then return 0 end$record
return 1
""")
# KEYS: the outbox's three. ARGV: now, claimed until, limit. Returns id, JSON, attempts for each claimed event.
_CLAIM = """
local claimed = {}
for _, id in ipairs(redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])) do
  local recorded = redis.call('HGET', KEYS[2], id)
  if recorded then
    redis.call('ZADD', KEYS[1], ARGV[2], id)
    local attempts = redis.call('HINCRBY', KEYS[3], id, 1)
    claimed[#claimed + 1] = id
    claimed[#claimed + 1] = recorded
    claimed[#claimed + 1] = attempts
  else  -- never so, as the scripts write; a half-removed event is removed
    redis.call('ZREM', KEYS[1], id)
    redis.call('HDEL', KEYS[3], id)
  end
end
return claimed
"""


def _script(script: Template, *, listing: int, events: int | None = None, **slots: object) -> str:
    """`script` with the listing's keys from KEYS[listing] on, recording the events from ARGV[events] on."""
    record = Template(_RECORD_EVENTS).substitute(events=events) if events else ""
    listed = LISTED.substitute(list=listing, id=3, entry=4)
    unlisted = UNLISTED.substitute(list=listing, id=1)
    return MEMBERS + script.substitute(slots, record=record, listed=listed, unlisted=unlisted)


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
        self._outbox = [prefix + "hooks", prefix + "hooks:events", prefix + "hooks:attempts"]
        self._listing = listing_keys(prefix)
        self._create = client.register_script(_script(_CREATE, listing=3))
        self._save = client.register_script(_script(_SAVE, listing=3, lock=8))
        self._create_recording = client.register_script(_script(_CREATE, listing=6, events=5))
        self._save_recording = client.register_script(_script(_SAVE, listing=6, events=7, lock=11))
        self._delete = client.register_script(_script(_DELETE, listing=6, events=2))
        self._claim = client.register_script(_CLAIM)
        self._listed = RedisListing(client, prefix, self._key)

    def _key(self, upload_id: str) -> str:
        return f"{self._prefix}upload:{upload_id}"

    async def create(self, info: UploadInfo, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Store a new record, its expiry, its listing and its events atomically; raises UploadExistsError."""
        keys = [self._key(info.id), self._expires]
        with redis_available():
            if events:
                keys += [*self._outbox, *self._listing]
                created = await self._create_recording(keys=keys, args=_args(info) + _event_args(events))
            else:
                created = await self._create(keys=[*keys, *self._listing], args=_args(info))
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

    async def save(self, info: UploadInfo, *, lease: Lease | None = None, events: Sequence[OutboxEvent] = ()) -> None:
        """Replace a record atomically, never moving its offset backwards, and only while `lease`
        (a `RedisLease`) still holds the upload's lock; `events` are recorded in the same script, if it saves.

        Raises:
            UploadNotFoundError: the record was deleted meanwhile.
            OffsetMismatchError: the stored offset is ahead of this one (a writer raced this one).
            UploadLockedError: the lock passed to another holder.
        """
        keys, args = [self._key(info.id), self._expires], [*_args(info), str(info.offset)]
        fence: tuple[str, str] | None = getattr(lease, "fence", None)
        lock, token = ([fence[0]], [fence[1]]) if fence else ([], [])
        script = self._save
        if events:  # the outbox's keys come before the lock; the token (or "") before the events
            keys, args = [*keys, *self._outbox], [*args, *(token or [""]), *_event_args(events)]
            script, token = self._save_recording, []
        with redis_available():
            result = await script(keys=[*keys, *self._listing, *lock], args=[*args, *token])
        if result[0] == -2:
            raise UploadLockedError("this request lost the upload's lock; nothing was recorded")
        if result[0] == -1:
            raise UploadNotFoundError()
        if result[0] == 0:
            raise OffsetMismatchError(int(result[1]))

    async def delete(self, upload_id: str, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Remove a record, its expiry and its listing in one script; its events are recorded in it if the record
        was there."""
        keys = [self._key(upload_id), self._expires, *self._outbox, *self._listing]
        with redis_available():
            await self._delete(keys=keys, args=[upload_id, *_event_args(events)])

    async def expiring(self, before: datetime) -> AsyncIterator[str]:
        """Ids whose expiry is at or before `before`, from the sorted index."""
        with redis_available():
            upload_ids = await self._redis.zrangebyscore(self._expires, "-inf", before.timestamp())
        for upload_id in upload_ids:
            yield str(upload_id)

    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        state: UploadState | None = None,
        before: Position | None = None,
        limit: int = 100,
    ) -> list[UploadInfo]:
        """One page of records (see `SupportsListing`): a range of a listing set, then its records."""
        if limit < 1:
            return []
        with redis_available():
            return await self._listed.page(owner=owner, state=state, before=before, limit=limit)

    async def outbox_due(self, now: datetime, *, limit: int, claim_for: float) -> list[OutboxEvent]:
        """Claim due events in one Lua script (see `SupportsOutbox.outbox_due`); ties in `not_before` go by id."""
        if limit < 1:
            return []  # Redis reads a negative LIMIT count as none at all
        until = micros(now + timedelta(seconds=claim_for))
        with redis_available():
            flat = await self._claim(keys=self._outbox, args=[micros(now), until, limit])
        not_before = from_micros(until)
        claimed = [
            OutboxEvent.model_validate_json(flat[i + 1]).model_copy(
                update={"attempts": int(flat[i + 2]), "not_before": not_before}
            )
            for i in range(0, len(flat), 3)
        ]
        return oldest_first(claimed)

    async def outbox_done(self, *event_ids: str) -> None:
        """Remove events, in one transaction."""
        if not event_ids:
            return
        due, recorded, attempts = self._outbox
        with redis_available():
            async with self._redis.pipeline(transaction=True) as pipe:
                pipe.zrem(due, *event_ids)
                pipe.hdel(recorded, *event_ids)
                pipe.hdel(attempts, *event_ids)
                await pipe.execute()

    async def outbox_resume(self, now: datetime) -> None:
        """Keep every claim: another instance holding one may be running; a stopped one's claims end in time."""

    async def outbox_retry(self, event_id: str, not_before: datetime) -> None:
        """Make an event due at `not_before` (ZADD XX: an event removed meanwhile stays removed)."""
        with redis_available():
            await self._redis.zadd(self._outbox[0], {event_id: micros(not_before)}, xx=True)

    async def aclose(self) -> None:
        """Close the client and its connections."""
        await self._redis.aclose()


def _args(info: UploadInfo) -> list[str]:
    return [info.model_dump_json(), _score(info), info.id, entry(info)]


def _event_args(events: Sequence[OutboxEvent]) -> list[str]:
    # The JSON keeps the event as recorded; the outbox's sorted set and attempts hash hold what changes.
    return [value for e in events for value in (e.id, str(micros(e.not_before)), str(e.attempts), e.model_dump_json())]

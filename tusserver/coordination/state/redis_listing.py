"""The status API's listing in Redis (`SupportsListing`): four sorted sets, kept by the store's write scripts.

Keys (with the store's prefix):
- `<prefix>listed`: a hash of id -> the record's listing entry, `<created>|<state>|<owner>`: created_at in µs
  since the epoch (20 digits), the state as `current_state` reads it, and the owner as "@" + its
  percent-encoding ("" for none; the encoding leaves no "|" in it);
- `<prefix>list`, `<prefix>list:state`, `<prefix>list:owner`, `<prefix>list:owner-state`: sorted sets whose
  members are `<created>|<id>` prefixed by nothing, the state, the owner, or the owner and the state (every
  score 0, so members sort byte-wise).

Why sorted sets of strings rather than scores: a listing is newest first by (created_at, id), and one
ZRANGE BYLEX REV from just before the previous page's last member reads the next page of any of the four,
whatever the ties in created_at. Each write script compares the record's new entry with the one in
`listed` and, only when they differ (a new record, a new state), moves its members; a PATCH's save costs an
HGET. A delete removes the members the stored entry names.

Records written before the listing existed are listed by the first `list_uploads` of a store: a scan that
adds each unlisted record, unless a write changed it meanwhile (which listed it), then a mark that it is done.
"""

from __future__ import annotations

from collections.abc import Callable
from string import Template
from urllib.parse import quote

from redis.asyncio import Redis

from tusserver.coordination.state.listing import Position, position_of
from tusserver.protocol.lifecycle import current_state
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["LISTED", "MEMBERS", "UNLISTED", "RedisListing", "entry", "listing_keys"]

# Defines members(id, entry): the record's member in each of the four sets (false where it has none).
MEMBERS = """
local function members(id, entry)
  local created, state, owner = string.match(entry, '^([^|]*)|([^|]*)|(.*)$')
  local found = {created .. '|' .. id, state .. '|' .. created .. '|' .. id, false, false}
  if owner ~= '' then
    found[3] = owner .. '|' .. created .. '|' .. id
    found[4] = owner .. '|' .. state .. '|' .. created .. '|' .. id
  end
  return found
end"""
# The record ARGV[$id] now has the entry ARGV[$entry]: its members move where they changed. KEYS[$list] is
# `listed`, the four sets follow it.
LISTED = Template("""
local listed = redis.call('HGET', KEYS[$list], ARGV[$id])
if listed ~= ARGV[$entry] then
  local old, new = listed and members(ARGV[$id], listed) or {}, members(ARGV[$id], ARGV[$entry])
  for i = 1, 4 do
    if old[i] ~= new[i] then
      if old[i] then redis.call('ZREM', KEYS[$list + i], old[i]) end
      if new[i] then redis.call('ZADD', KEYS[$list + i], 0, new[i]) end
    end
  end
  redis.call('HSET', KEYS[$list], ARGV[$id], ARGV[$entry])
end""")
# The record ARGV[$id] is gone: its members go too.
UNLISTED = Template("""
local listed = redis.call('HGET', KEYS[$list], ARGV[$id])
if listed then
  local old = members(ARGV[$id], listed)
  for i = 1, 4 do
    if old[i] then redis.call('ZREM', KEYS[$list + i], old[i]) end
  end
  redis.call('HDEL', KEYS[$list], ARGV[$id])
end""")
# KEYS: record, then the listing's five. ARGV: the record's JSON as read, its id, its entry. Lists a record
# that is still as read and not listed yet (a write since has listed it); returns 1 if it did.
_ADOPT = (
    MEMBERS
    + """
if redis.call('GET', KEYS[1]) ~= ARGV[1] or redis.call('HEXISTS', KEYS[2], ARGV[2]) == 1 then return 0 end"""
    + LISTED.substitute(list=2, id=2, entry=3)
    + """
return 1
"""
)
_SCAN_BATCH = 1000


def listing_keys(prefix: str) -> list[str]:
    """The listing's keys, in the order the scripts take them: `listed`, then the four sets."""
    return [
        f"{prefix}listed",
        f"{prefix}list",
        f"{prefix}list:state",
        f"{prefix}list:owner",
        f"{prefix}list:owner-state",
    ]


def entry(info: UploadInfo) -> str:
    """The record's listing entry, `<created>|<state>|<owner>`."""
    return f"{position_of(info).created:020d}|{current_state(info)}|{_owner(info.owner)}"


def _owner(owner: str | None) -> str:
    return "" if owner is None else "@" + quote(owner, safe="")


class RedisListing:
    """Reads the listing's sets (the store's scripts write them).

    Args:
        client: the store's client (decode_responses=True).
        prefix: the store's key prefix.
        record_key: the key of an upload's record.
    """

    def __init__(self, client: Redis, prefix: str, record_key: Callable[[str], str]) -> None:
        self._redis = client
        self._prefix = prefix
        self._keys = listing_keys(prefix)
        self._record_key = record_key
        self._adopt = client.register_script(_ADOPT)
        self._ready_key = f"{prefix}list:ready"
        self._ready = False

    async def page(
        self, *, owner: str | None, state: UploadState | None, before: Position | None, limit: int
    ) -> list[UploadInfo]:
        """One page (see `SupportsListing.list_uploads`): member ranges, then the records with one MGET each;
        a record deleted in between is left out, and the range read on past it."""
        await self._list_existing()
        key, head = self._set_of(owner, state)
        # From just before `before`, or past every member starting with `head` ("}" follows "|" in ASCII), down
        # to the first member starting with `head`; ranges are exclusive with "(", inclusive with "[".
        high = f"({head}{before.created:020d}|{before.upload_id}" if before else f"({head[:-1]}}}" if head else "+"
        low = f"[{head}" if head else "-"
        found: list[UploadInfo] = []
        while len(found) < limit:
            wanted = limit - len(found)
            members = await self._range(key, high, low, wanted)
            if not members:
                break
            records = await self._redis.mget([self._record_key(member.rsplit("|", 1)[1]) for member in members])
            found += [UploadInfo.model_validate_json(raw) for raw in records if raw is not None]
            if len(members) < wanted:
                break
            high = "(" + members[-1]
        return found

    async def _range(self, key: str, high: str, low: str, count: int) -> list[str]:
        """Up to `count` members of the set `key` from `high` down to `low`, in reverse byte order."""
        members = await self._redis.zrange(key, high, low, desc=True, bylex=True, offset=0, num=count)
        return [str(member) for member in members]

    def _set_of(self, owner: str | None, state: UploadState | None) -> tuple[str, str]:
        """The sorted set a listing reads, and the start its members share there."""
        _, everything, by_state, by_owner, by_both = self._keys
        if owner is None:
            return (everything, "") if state is None else (by_state, f"{state}|")
        return (by_owner, f"{_owner(owner)}|") if state is None else (by_both, f"{_owner(owner)}|{state}|")

    async def _list_existing(self) -> None:
        """List the records written before the listing existed, once per Redis (then once per store, to see
        the mark). Several instances doing it at once do no harm: listing a listed record changes nothing."""
        if self._ready:
            return
        if not await self._redis.exists(self._ready_key):
            pattern = _glob_escape(self._prefix) + "upload:*"
            async for key in self._redis.scan_iter(match=pattern, count=_SCAN_BATCH):
                await self._adopt_record(key)
            await self._redis.set(self._ready_key, "1")
        self._ready = True

    async def _adopt_record(self, key: str) -> None:
        raw = await self._redis.get(key)
        if raw is None:
            return  # deleted since the scan saw it
        info = UploadInfo.model_validate_json(raw)
        # A refusal means a write changed the record since the GET, and listed it as it did.
        await self._adopt(keys=[key, *self._keys], args=[raw, info.id, entry(info)])


def _glob_escape(text: str) -> str:
    """`text` matched literally in a SCAN pattern."""
    return "".join("\\" + char if char in "*?[]\\" else char for char in text)

"""Removing expired uploads and what no record names: the `tusserver cleanup` command and the server's
periodic sweep."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

import anyio

from storage_backends.base import StorageRef, SupportsDelete, SupportsSweep
from storage_backends.errors import StorageError
from tusserver.context import TusContext
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.outgoing import Outgoing
from tusserver.coordination.hooks.requests import NO_REQUEST
from tusserver.coordination.locking import Lease
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.protocol.errors import StorageFullError, TusError, UploadNotFoundError
from tusserver.protocol.ids import upload_id_of
from tusserver.protocol.lifecycle import buried
from tusserver.protocol.model import UploadInfo

__all__ = ["ORPHAN_AGE", "bury", "remove_expired", "remove_orphans", "sweep_forever"]

# Stored things no record names are removed once nothing changed them for this long: a request that
# creates or writes one records it within seconds (a POST, a PATCH's segment), so a day is far past any.
ORPHAN_AGE = 86400.0

logger = logging.getLogger("tusserver")


async def remove_expired(tus: TusContext, now: datetime) -> list[str]:
    """Remove every upload whose expiry is past at `now` (rejected ones are due from their rejection): bytes
    first, then the record becomes a tombstone (`bury`); a tombstone whose time is up goes altogether.

    In that order a failure or crash half-way leaves the record, so the next sweep retries
    (deleting bytes is idempotent) instead of orphaning the bytes. An upload that a request is
    using right now is left alone: it is alive, and its next save extends the expiry. A storage
    failure skips that upload (logged) and the sweep goes on.

    Returns:
        The ids of the removed uploads.
    """
    candidates = [upload_id async for upload_id in tus.state.expiring(now)]
    return [upload_id for upload_id in candidates if await _remove_if_expired(tus, upload_id, now)]


async def _remove_if_expired(tus: TusContext, upload_id: str, now: datetime) -> bool:
    if await tus.locker.held(upload_id):
        return False
    outgoing = Outgoing(tus, NO_REQUEST)
    try:
        async with tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout):
            info = await tus.state.get(upload_id)  # again, under the lock: a PATCH may have extended it
            if not info.is_expired(now):
                return False
            if info.removed_at is not None:  # a tombstone whose time is up
                await tus.state.delete(upload_id)
                return True
            if isinstance(tus.storage, SupportsDelete):
                await tus.storage.delete(info.storage)
            events = outgoing.outbox(HookEvent.POST_TERMINATE, info)  # what a receiver hears of it
            await bury(tus, info, events)
            outgoing.wrote(events)
    except TusError:  # gone meanwhile, or busy again
        return False
    except StorageError as exc:
        logger.warning("could not remove expired upload %s: %s", upload_id, exc)
        return False
    logger.info("removed expired upload %s", upload_id)
    await outgoing.send()
    return True


async def bury(
    tus: TusContext,
    info: UploadInfo,
    events: Sequence[OutboxEvent],
    *,
    lease: Lease | None = None,
    terminated: bool = False,
) -> None:
    """Turn the record of an upload whose bytes were just removed into a tombstone (`lifecycle.buried`), kept
    `--tombstone-retention` so the status API can say what became of it, then swept; with `events`. Without
    a retention, or without room left to save it (a DELETE frees space on a full disk), the record goes.
    """
    now = tus.clock()
    keep_until = tus.tombstone_expiry(now)
    if keep_until is not None:
        tombstone = buried(info, now, keep_until=keep_until, terminated=terminated)
        try:
            await tus.state.save(tombstone, lease=lease, events=events)
            return
        except StorageFullError:
            pass
        except UploadNotFoundError:
            return  # gone meanwhile: whoever removed it recorded its events
    await tus.state.delete(info.id, events=events)


async def remove_orphans(tus: TusContext, *, older_than: float = ORPHAN_AGE) -> list[str]:
    """Remove what the storage holds that no record names and nothing changed for `older_than` seconds:
    the data of a creation that crashed before its record, segments and tails of writers that crashed or
    whose lock lapsed. Returns what was removed (nothing for a storage that cannot list what it holds)."""
    if not isinstance(tus.storage, SupportsSweep):
        return []

    async def lookup(key: str) -> StorageRef | None:
        try:
            info = await tus.state.get(upload_id_of(key) or key)
        except UploadNotFoundError:
            return None
        return info.storage if info.removed_at is None else None  # a tombstone holds no bytes

    removed = await tus.storage.sweep(lookup, older_than=older_than)
    for name in removed:
        logger.info("removed %s, which no upload record names", name)
    return removed


async def sweep_forever(tus: TusContext, interval: float) -> None:
    """Run `remove_expired` and `remove_orphans` every `interval` seconds until cancelled; a failed sweep is
    logged and retried."""
    while True:
        await anyio.sleep(interval)
        try:
            removed = await remove_expired(tus, tus.clock())
            orphans = await remove_orphans(tus)
        except Exception:  # a storage or state outage must not end the sweeps
            logger.exception("expired-upload sweep failed")
        else:
            logger.info("sweep removed %d expired upload(s) and %d orphan(s)", len(removed), len(orphans))

"""Removing expired uploads and what no record names: the `tusserver cleanup` command and the server's
periodic sweep."""

from __future__ import annotations

import logging
from datetime import datetime

import anyio

from storage_backends.base import StorageRef, SupportsDelete, SupportsSweep
from storage_backends.errors import StorageError
from tusserver.context import TusContext
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.outgoing import Outgoing
from tusserver.coordination.hooks.requests import NO_REQUEST
from tusserver.protocol.errors import TusError, UploadNotFoundError
from tusserver.protocol.ids import upload_id_of

__all__ = ["ORPHAN_AGE", "remove_expired", "remove_orphans", "sweep_forever"]

# Stored things no record names are removed once nothing changed them for this long: a request that
# creates or writes one records it within seconds (a POST, a PATCH's segment), so a day is far past any.
ORPHAN_AGE = 86400.0

logger = logging.getLogger("tusserver")


async def remove_expired(tus: TusContext, now: datetime) -> list[str]:
    """Remove every upload whose expiry is past at `now`: bytes first, then the record.

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
            if isinstance(tus.storage, SupportsDelete):
                await tus.storage.delete(info.storage)
            events = outgoing.outbox(HookEvent.POST_TERMINATE, info)  # what a receiver hears of it
            await tus.state.delete(upload_id, events=events)
            outgoing.wrote(events)
    except TusError:  # gone meanwhile, or busy again
        return False
    except StorageError as exc:
        logger.warning("could not remove expired upload %s: %s", upload_id, exc)
        return False
    logger.info("removed expired upload %s", upload_id)
    await outgoing.send()
    return True


async def remove_orphans(tus: TusContext, *, older_than: float = ORPHAN_AGE) -> list[str]:
    """Remove what the storage holds that no record names and nothing changed for `older_than` seconds:
    the data of a creation that crashed before its record, segments and tails of writers that crashed or
    whose lock lapsed. Returns what was removed (nothing for a storage that cannot list what it holds)."""
    if not isinstance(tus.storage, SupportsSweep):
        return []

    async def lookup(key: str) -> StorageRef | None:
        try:
            return (await tus.state.get(upload_id_of(key) or key)).storage
        except UploadNotFoundError:
            return None

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

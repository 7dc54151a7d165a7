"""Removing expired uploads: the `tusserver cleanup` command and the server's periodic sweep."""

from __future__ import annotations

import logging
from datetime import datetime

import anyio

from storage_backends.base import SupportsDelete
from storage_backends.errors import StorageError
from tusserver.context import TusContext
from tusserver.protocol.errors import TusError

__all__ = ["remove_expired", "sweep_forever"]

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
    try:
        async with tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout):
            info = await tus.state.get(upload_id)  # again, under the lock: a PATCH may have extended it
            if not info.is_expired(now):
                return False
            if isinstance(tus.storage, SupportsDelete):
                await tus.storage.delete(info.storage)
            await tus.state.delete(upload_id)
    except TusError:  # gone meanwhile, or busy again
        return False
    except StorageError as exc:
        logger.warning("could not remove expired upload %s: %s", upload_id, exc)
        return False
    logger.info("removed expired upload %s", upload_id)
    return True


async def sweep_forever(tus: TusContext, interval: float) -> None:
    """Run `remove_expired` every `interval` seconds until cancelled; a failed sweep is logged and retried."""
    while True:
        await anyio.sleep(interval)
        try:
            removed = await remove_expired(tus, tus.clock())
        except Exception:  # a storage or state outage must not end the sweeps
            logger.exception("expired-upload sweep failed")
        else:
            logger.info("expired-upload sweep removed %d upload(s)", len(removed))

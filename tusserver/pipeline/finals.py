"""Final uploads of the concatenation extension: creating them and joining their partials.

A final upload is joined as soon as every partial is finished: at its creation, when its last partial
finishes (concatenation-unfinished), or at the latest when a HEAD or GET finds them done. Nothing needed
for the join lives only in memory, so a final created before a restart completes after it. The join is
done by the storage (`SupportsConcatenate`), so bytes need not pass through the server.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from storage_backends.base import StorageRef, SupportsConcatenate, SupportsDelete
from storage_backends.errors import BlobExistsError, StorageError
from tusserver.context import TusContext
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.requests import NO_REQUEST
from tusserver.pipeline import hooks
from tusserver.pipeline.hooks import Outgoing
from tusserver.protocol.concat import check_part_count, plan_final
from tusserver.protocol.downloads import declared_media_type
from tusserver.protocol.errors import ExtensionUnsupportedError, TusError, UploadExpiredError, UploadNotFoundError
from tusserver.protocol.headers import CreateRequest
from tusserver.protocol.model import UploadInfo

__all__ = ["create_final", "partial_completed", "settle_final"]

logger = logging.getLogger("tusserver")


async def create_final(
    tus: TusContext, create: CreateRequest, upload_id: str, queue: Outgoing | None = None
) -> UploadInfo:
    """Create the final upload `upload_id` (or return it again, for a retried POST) and join it if it can be.

    Raises:
        TooManyPartsError: more partials than `max_concat_parts` (checked before any is loaded).
        UploadNotFoundError: a listed partial upload does not exist (PROTOCOL.md item 80).
        InvalidConcatError: a listed upload is not a partial upload.
        MaxSizeExceededError: the partials add up to more than Tus-Max-Size.
    """
    assert create.concat is not None
    check_part_count(len(create.concat.parts), tus.settings.max_concat_parts)
    async with tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout):
        try:
            return await settle_final(tus, await tus.state.get(upload_id), queue)
        except UploadNotFoundError:
            pass  # the usual case: a new final upload
        plan = plan_final(await _partials(tus, create.concat.parts), max_size=tus.max_size())
        info = UploadInfo(
            id=upload_id,
            length=plan.length,
            metadata=create.metadata,  # tus §Concatenation: the partials' metadata is not carried over
            storage=await _create_storage(tus, upload_id, plan.length, declared_media_type(create.metadata)),
            created_at=tus.clock(),
            concat="final",
            parts=create.concat.parts,
            concat_header=create.concat.header,
        )  # no expiry while pending: it waits on its partials, which expire on their own
        events = queue.outbox(HookEvent.POST_CREATE, info) if queue is not None else []
        await tus.state.create(info, events=events)
        if queue is not None:
            queue.wrote(events)
        return await settle_final(tus, info, queue)


async def _create_storage(tus: TusContext, upload_id: str, length: int | None, content_type: str | None) -> StorageRef:
    # The id is derived, so a crash between storage and record leaves bytes under it; with no
    # record they belong to nobody, and the join replaces them anyway.
    try:
        return await tus.storage.create(upload_id, length=length, content_type=content_type)
    except BlobExistsError:
        if not isinstance(tus.storage, SupportsDelete):
            raise
        await tus.storage.delete(StorageRef(backend=tus.storage.scheme, key=upload_id))
        return await tus.storage.create(upload_id, length=length, content_type=content_type)


async def settle_final(tus: TusContext, info: UploadInfo, queue: Outgoing | None = None) -> UploadInfo:
    """Join a final upload whose partials are all finished; the caller holds its lock. The join fires
    pre-finish (before the storage finishes it) and post-finish, into `queue` when the request has one.

    Returns the upload as it is now: complete after a join, otherwise with its length once every
    partial's length is known (tus §Concatenation: Upload-Length "as soon as it can be computed").

    Raises:
        MaxSizeExceededError: partials whose lengths were deferred at the final's creation have
            grown past Tus-Max-Size; such a final is never joined.
    """
    if info.concat != "final" or info.is_complete:
        return info
    partials = await _live_partials(tus, info)
    # Checked again: at the final's creation, partials of deferred length counted only their bytes so far.
    plan = plan_final(partials, max_size=tus.max_size())
    if not plan.complete:
        for partial in partials:
            if not partial.is_complete:
                tus.waiting_finals.setdefault(partial.id, set()).add(info.id)
        return info.model_copy(update={"length": plan.length})
    await _storage(tus).concatenate(info.storage, [partial.storage for partial in partials])
    length = sum(partial.offset for partial in partials)  # all finished: the plan's length
    expires_at = tus.expiry(tus.clock(), complete=True)
    info = info.model_copy(update={"length": length, "offset": length, "expires_at": expires_at})
    outgoing = queue or Outgoing(tus, NO_REQUEST)
    await hooks.pre_finish(outgoing, info)
    info = info.model_copy(update={"storage": await tus.storage.complete(info.storage, length)})
    finished = outgoing.outbox(HookEvent.POST_FINISH, info)
    await tus.state.save(info, events=finished)  # recorded only once the storage holds the joined bytes
    outgoing.wrote(finished)
    if queue is None:
        await outgoing.send()
    return info


async def partial_completed(tus: TusContext, partial_id: str) -> None:
    """Join the pending finals that wait on `partial_id`, now that it is finished (best effort:
    a final that fails here is joined by its next HEAD or GET)."""
    for final_id in tus.waiting_finals.pop(partial_id, set()):
        try:
            async with tus.locker.acquire(final_id, timeout=tus.settings.lock_timeout):
                await settle_final(tus, await tus.state.get(final_id))
        except (TusError, StorageError) as exc:
            logger.warning("final upload %s not joined yet: %s", final_id, exc)


async def _partials(tus: TusContext, upload_ids: Sequence[str]) -> list[UploadInfo]:
    return [await tus.state.get(upload_id) for upload_id in upload_ids]


async def _live_partials(tus: TusContext, info: UploadInfo) -> list[UploadInfo]:
    # A pending final whose partial was deleted or expired can never complete: it is gone too (410).
    try:
        partials = await _partials(tus, info.parts)
    except UploadNotFoundError:
        raise UploadExpiredError("a partial upload of this final upload is gone") from None
    now = tus.clock()
    if any(partial.is_expired(now) for partial in partials if not partial.is_complete):
        raise UploadExpiredError("a partial upload of this final upload has expired")
    return partials


def _storage(tus: TusContext) -> SupportsConcatenate:
    if not isinstance(tus.storage, SupportsConcatenate):
        raise ExtensionUnsupportedError("this server's storage cannot join uploads")
    return tus.storage

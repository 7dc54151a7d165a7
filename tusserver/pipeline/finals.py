"""Final uploads of the concatenation extension: creating them and joining their partials.

A final upload is joined as soon as every partial is finished: at its creation, when its last partial
finishes (concatenation-unfinished), or at the latest when a HEAD or GET finds them done. Nothing needed
for the join lives only in memory, so a final created before a restart completes after it. The join is
done by the storage (`SupportsConcatenate`), so bytes need not pass through the server.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence

from storage_backends.base import StorageRef, SupportsConcatenate, SupportsDelete
from storage_backends.errors import BlobExistsError, StorageError
from tusserver.context import TusContext
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.requests import NO_REQUEST
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.pipeline import verdicts
from tusserver.pipeline.hooks import Outgoing
from tusserver.protocol.concat import check_part_count, plan_final
from tusserver.protocol.downloads import declared_disposition, declared_media_type
from tusserver.protocol.errors import ExtensionUnsupportedError, TusError, UploadExpiredError, UploadNotFoundError
from tusserver.protocol.headers import CreateRequest
from tusserver.protocol.lifecycle import ENDED, current_state
from tusserver.protocol.model import UploadInfo
from tusserver.protocol.principals import Principal, may_use

__all__ = ["create_final", "partial_completed", "settle_final"]

logger = logging.getLogger("tusserver")


async def create_final(
    tus: TusContext,
    create: CreateRequest,
    upload_id: str,
    queue: Outgoing | None = None,
    *,
    principal: Principal | None = None,
) -> UploadInfo:
    """Create the final upload `upload_id` (or return it again, for a retried POST) and join it if it can be.
    `principal` owns it, and must be allowed to use each partial: another's is as missing (`may_use`).

    Raises:
        TooManyPartsError: more partials than `max_concat_parts` (checked before any is loaded).
        UploadNotFoundError: a listed partial upload does not exist (PROTOCOL.md item 80), or is another's.
        InvalidConcatError: a listed upload is not a partial upload.
        MaxSizeExceededError: the partials add up to more than Tus-Max-Size.
    """
    assert create.concat is not None
    check_part_count(len(create.concat.parts), tus.settings.max_concat_parts)
    async with tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout):
        existing = await _existing(tus, upload_id)
        if existing is not None:  # a retried POST
            return await settle_final(tus, existing, queue)
        partials = await _partials(tus, create.concat.parts)
        if not all(may_use(principal, partial) for partial in partials):
            raise UploadNotFoundError()  # as for a missing partial: nothing says the other's exists
        plan = plan_final(partials, max_size=tus.max_size())
        info = UploadInfo(
            id=upload_id,
            length=plan.length,
            metadata=create.metadata,  # tus §Concatenation: the partials' metadata is not carried over
            storage=await _create_storage(tus, upload_id, plan.length, create.metadata),
            created_at=tus.clock(),
            concat="final",
            parts=create.concat.parts,
            concat_header=create.concat.header,
            owner=principal.id if principal is not None else None,
        )  # no expiry while pending: it waits on its partials, which expire on their own
        events = queue.outbox(HookEvent.POST_CREATE, info) if queue is not None else []
        await tus.state.create(info, events=events)
        if queue is not None:
            queue.wrote(events)
        return await settle_final(tus, info, queue)


async def _create_storage(
    tus: TusContext, upload_id: str, length: int | None, metadata: Mapping[str, str]
) -> StorageRef:
    # The id is derived, so a crash between storage and record leaves bytes under it; with no
    # record they belong to nobody, and the join replaces them anyway.
    content = {"content_type": declared_media_type(metadata), "content_disposition": declared_disposition(metadata)}
    try:
        return await tus.storage.create(upload_id, length=length, **content)
    except BlobExistsError:
        if not isinstance(tus.storage, SupportsDelete):
            raise
        await tus.storage.delete(StorageRef(backend=tus.storage.scheme, key=upload_id))
        return await tus.storage.create(upload_id, length=length, **content)


async def settle_final(tus: TusContext, info: UploadInfo, queue: Outgoing | None = None) -> UploadInfo:
    """Join a final upload whose partials are all finished; the caller holds its lock. The joined upload is
    finished as any (`verdicts.finish`: its declared digest read back, pre-finish, post-finish), into `queue`
    when the request has one.

    Returns the upload as it is now: complete after a join, otherwise with its length once every
    partial's length is known (tus §Concatenation: Upload-Length "as soon as it can be computed").
    A final that was terminated or expired is returned as it is: it is never joined again.

    Raises:
        MaxSizeExceededError: partials whose lengths were deferred at the final's creation have
            grown past Tus-Max-Size; such a final is never joined.
        UploadRejectedError: a partial was rejected: the final can never be joined (403).
    """
    if info.concat != "final" or info.is_complete or current_state(info) in ENDED or info.removed_at is not None:
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

    async def save(record: UploadInfo, events: Sequence[OutboxEvent]) -> None:
        await tus.state.save(record, events=events)  # recorded only once the storage holds the joined bytes

    info, finished = await verdicts.finish(tus, info, outgoing, save)
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


async def _existing(tus: TusContext, upload_id: str) -> UploadInfo | None:
    """The final upload recorded under `upload_id`, None if there is none. A tombstone (a final terminated or
    expired) is dropped: the id, derived from the same partials, starts a new upload."""
    try:
        info = await tus.state.get(upload_id)
    except UploadNotFoundError:
        return None  # the usual case: a new final upload
    if info.removed_at is None:
        return info
    await tus.state.delete(upload_id)
    return None


async def _partials(tus: TusContext, upload_ids: Sequence[str]) -> list[UploadInfo]:
    return [await tus.state.get(upload_id) for upload_id in upload_ids]


async def _live_partials(tus: TusContext, info: UploadInfo) -> list[UploadInfo]:
    # A pending final whose partial was deleted or expired can never complete: it is gone too (410).
    try:
        partials = await _partials(tus, info.parts)
    except UploadNotFoundError:
        raise UploadExpiredError("a partial upload of this final upload is gone") from None
    now = tus.clock()
    if any(partial.removed_at is not None or current_state(partial) in ENDED for partial in partials):
        raise UploadExpiredError("a partial upload of this final upload is gone")
    if any(partial.is_expired(now) for partial in partials if not partial.is_complete):
        raise UploadExpiredError("a partial upload of this final upload has expired")
    return partials


def _storage(tus: TusContext) -> SupportsConcatenate:
    if not isinstance(tus.storage, SupportsConcatenate):
        raise ExtensionUnsupportedError("this server's storage cannot join uploads")
    return tus.storage

"""Finishing an upload (issue 21): once its last byte is stored, its declared whole-file digest is checked, a
pre-finish hook may give the verdict, and the upload is recorded `accepted`, `rejected` or held `uploaded`.

Used wherever uploads finish: the last PATCH (or creation-with-upload POST), the creation of an empty upload,
the join of a final upload. The order keeps tusd's promise that a failing pre-finish records nothing, so the
client sends the end again, wherever the digest is known before the storage completes (hashed on the way, or
an empty file). An upload whose digest must be read back is recorded `uploaded` first, since the storage
completes before it can be read (S3), then checked, then judged; if that stops half-way, the record stays
`uploaded` without a reason (`lifecycle.verdict_due`) and the next GET finishes the job (`resume`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

import anyio

from tusserver.context import TusContext
from tusserver.coordination import metrics
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookHTTPRequest, HookHTTPResponse, HookResponse
from tusserver.coordination.hooks.outgoing import Outgoing
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.pipeline import hooks
from tusserver.pipeline.wholefile import stored_digest
from tusserver.protocol.checksums import Checksum
from tusserver.protocol.digests import DigestCheck, check_digest, declared_digest, empty_digest
from tusserver.protocol.errors import InvalidMetadataError, UploadRejectedError
from tusserver.protocol.lifecycle import Verdict, concluded, finished, rejected, verdict_due
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["Save", "finish", "rejection", "resume"]

Save = Callable[[UploadInfo, Sequence[OutboxEvent]], Awaitable[None]]
"""`await save(info, events)`: record `info` with the hook `events` it causes (each caller's own way: a fenced
save, a plain one, or the creation of the record)."""


def verdict_of(answer: HookResponse) -> Verdict:
    """A pre-finish answer's verdict: tusd's receivers answer none of these fields, and accept."""
    return Verdict(reject=answer.RejectUpload, hold=answer.HoldUpload, reason=answer.Reason or None)


async def finish(
    tus: TusContext, info: UploadInfo, queue: Outgoing, save: Save, *, computed: bytes | None = None
) -> tuple[UploadInfo, list[OutboxEvent]]:
    """Finish `info`, whose last byte is stored and whose storage is not completed yet.

    Args:
        tus: the server's context.
        info: the complete upload, as it will be recorded.
        queue: the request's events; pre-finish's answer lands in it (`hooks.shaped`, `rejection`).
        save: records the upload (called once, or with a read back first as `uploaded`, then again).
        computed: the whole file's digest, hashed on the way (`WholeFileHash`), if it was.

    Returns:
        The recorded upload, and the post-finish events it carried, for the caller to hand to `queue`
        (`wrote`) once it has queued what came before them.

    Raises:
        HookFailedError: pre-finish failed (503).
        StorageError: completing the storage, or reading it back, failed.
    """
    try:
        declared = declared_digest(info.metadata)
    except InvalidMetadataError as exc:  # changed by a pre-create hook, or recorded before this was checked
        return await _conclude(tus, info, queue, save, DigestCheck(mismatch=exc.message), completed=False)
    if declared is not None and computed is None and info.offset == 0:
        computed = empty_digest(declared.algorithm)
    if declared is None or computed is not None:
        check = check_digest(declared, computed) if declared is not None and computed is not None else DigestCheck()
        return await _conclude(tus, info, queue, save, check, completed=False)
    with anyio.CancelScope(shield=True):  # the storage completes: the record must say so, whatever happens
        info = await _completed(tus, info)
        await save(info, ())
    info, check = await _read_back(tus, info, declared, save)
    return await _conclude(tus, info, queue, save, check, completed=True)


async def _read_back(
    tus: TusContext, info: UploadInfo, declared: Checksum, save: Save
) -> tuple[UploadInfo, DigestCheck]:
    check = check_digest(declared, await stored_digest(tus, info, declared.algorithm))
    if check.digest is not None:  # recorded at once: a pre-finish that fails next need not cost another read
        info = info.model_copy(update={"digest": check.digest})
        await save(info, ())
    return info, check


async def _conclude(
    tus: TusContext, info: UploadInfo, queue: Outgoing, save: Save, check: DigestCheck, *, completed: bool
) -> tuple[UploadInfo, list[OutboxEvent]]:
    """Judge and record: a digest that does not match rejects the upload without asking pre-finish (nothing
    could make it right); otherwise pre-finish gives the verdict, before the storage completes unless it has."""
    verdict = Verdict()
    if check.mismatch is None:
        # A failure (503) records nothing more: the client sends the end again, or, for an upload recorded
        # `uploaded` before its digest was read back, its next GET asks again (`resume`).
        await hooks.pre_finish(queue, info)
        verdict = verdict_of(queue.finish_answer)
    with anyio.CancelScope(shield=True):  # bytes that reached storage get recorded, whatever happens
        if not completed:
            info = await _completed(tus, info)
        now = tus.clock()
        if check.mismatch is not None:
            info = rejected(info, check.mismatch, now)
        else:
            info = concluded(info.model_copy(update={"digest": check.digest or info.digest}), verdict, now)
        events = queue.outbox(HookEvent.POST_FINISH, info)
        await save(info, events)
    metrics.UPLOADS_FINISHED.inc()
    return info, events


async def _completed(tus: TusContext, info: UploadInfo) -> UploadInfo:
    """The upload with its storage completed (S3 CompleteMultipartUpload, Azure commit), `uploaded` from now."""
    ref = await tus.storage.complete(info.storage, info.offset)
    return finished(info.model_copy(update={"storage": ref}), tus.clock())


def rejection(info: UploadInfo, answer: HookResponse) -> UploadRejectedError | None:
    """The answer to the request that finished `info`, if it was rejected: 403 ERR_UPLOAD_REJECTED with the
    reason, or the pre-finish hook's own HTTPResponse when that hook rejected it and gave one."""
    if info.state is not UploadState.REJECTED:
        return None
    response = answer.HTTPResponse if answer.RejectUpload else HookHTTPResponse()
    return UploadRejectedError(info.reason, status=response.StatusCode, body=response.Body, headers=response.Header)


async def resume(tus: TusContext, info: UploadInfo, http: HookHTTPRequest) -> UploadInfo:
    """Finish the checks of an upload whose verdict is due (`lifecycle.verdict_due`: they stopped half-way, on a
    failure or a crash) before it is served; under its lock. Returns the upload as it is then.

    Raises:
        HookFailedError: pre-finish failed (503): the next GET tries again.
        StorageError: reading it back failed.
    """
    if not verdict_due(info):
        return info
    queue = Outgoing(tus, http)
    async with tus.locker.acquire(info.id, timeout=tus.settings.lock_timeout):
        info = await tus.state.get(info.id)
        if not verdict_due(info):
            return info

        async def save(record: UploadInfo, events: Sequence[OutboxEvent]) -> None:
            await tus.state.save(record, events=events)

        check = DigestCheck(digest=info.digest)
        try:
            declared = declared_digest(info.metadata)
        except InvalidMetadataError as exc:
            check, declared = DigestCheck(mismatch=exc.message), None
        if declared is not None and info.digest is None:
            info, check = await _read_back(tus, info, declared, save)
        info, events = await _conclude(tus, info, queue, save, check, completed=True)
        queue.wrote(events)
    await queue.send()
    return info

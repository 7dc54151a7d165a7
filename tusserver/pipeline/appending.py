"""Receiving one body into an upload: stream it into storage, record progress on the way, record the end.

The record is the truth: bytes count once a save (fenced by the lease, with Redis) names them. A long
PATCH saves its progress every `--checkpoint-size` bytes or `--checkpoint-interval` seconds, so a crash
loses at most that much of it; bytes that must first pass a checksum are recorded only at the end.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import anyio
from starlette.requests import Request

from storage_backends.base import Appended, Checkpoints, StorageRef, SupportsDiscard
from storage_backends.errors import StorageError
from storage_backends.errors import StorageFullError as NoSpaceError
from tusserver.context import TusContext
from tusserver.coordination import metrics
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookResponse
from tusserver.coordination.hooks.requests import about
from tusserver.coordination.locking import Lease
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.pipeline import finals, hooks, verdicts
from tusserver.pipeline.body import BodyReader, read_into_of, splice_of
from tusserver.pipeline.wholefile import WholeFileHash
from tusserver.protocol import rules
from tusserver.protocol.checksums import SLOW_ALGORITHMS, Checksum, Hasher, new_hasher
from tusserver.protocol.errors import StorageFullError, UploadStoppedError
from tusserver.protocol.model import UploadInfo

__all__ = ["Append", "Journal", "receive"]

logger = logging.getLogger("tusserver")


@dataclass(frozen=True, slots=True)
class Append:
    """One body to append: the upload (with any newly declared length), the byte limit, the checksum,
    and the body's declared size (Content-Length; None for a chunked body)."""

    info: UploadInfo
    limit: int | None
    checksum: Checksum | None
    was_complete: bool
    size: int | None


def hasher_is_slow(checksum: Checksum | None) -> bool:
    """True for the hashes worth a worker thread per chunk."""
    return checksum is not None and checksum.algorithm in SLOW_ALGORITHMS


class Journal:
    """The upload's record as this request last saved it; every save goes through here, fenced by the lease."""

    def __init__(self, tus: TusContext, append: Append, lease: Lease) -> None:
        self.tus, self.append, self.lease = tus, append, lease
        self.recorded = append.info

    def checkpoints(self) -> Checkpoints:
        """The storage's way to record progress; with a checksum, bytes wait for the end."""
        settings = self.tus.settings
        if self.append.checksum is not None:
            return Checkpoints(self.record)
        return Checkpoints(self.record, every=settings.checkpoint_size, interval=settings.checkpoint_interval)

    async def record(self, ref: StorageRef, length: int) -> None:
        """A checkpoint: `ref` holds `length` durable bytes. Never the last byte: completing is the end's job
        (the storage completes before the record says complete)."""
        length_declared = self.append.info.length
        if not self.append.was_complete and length_declared is not None and length >= length_declared:
            return
        await self.save(self.recorded.model_copy(update={"offset": length, "storage": ref}))

    async def fence(self) -> None:
        """Before the storage finishes the upload (S3 completes it, files join their segments), make sure this
        request still holds its lock, as far as a lock that can lapse (Redis) allows: save the record as it is,
        fenced. A writer paused past its lock gets the refusal here instead of finishing with its own bytes;
        the window left is the time between this save and the storage's own call."""
        if getattr(self.lease, "fence", None) is not None:
            await self.tus.state.save(self.recorded, lease=self.lease)

    async def save(self, info: UploadInfo, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Save `info` (fenced), with the hook `events` it causes, and remove what the record it replaces held
        that it does not."""
        with anyio.CancelScope(shield=True):  # bytes that reached storage get recorded, whatever happens
            await self.tus.state.save(info, lease=self.lease, events=events)
            old, self.recorded = self.recorded, info
            await discard(self.tus, old.storage, info.storage)


async def discard(tus: TusContext, old: StorageRef, new: StorageRef) -> None:
    """Best effort: what a failure leaves behind, the sweep finds."""
    if old != new and isinstance(tus.storage, SupportsDiscard):
        try:
            await tus.storage.discard(old, new)
        except StorageError as exc:
            logger.info("could not remove what %s no longer needs: %s", old.key, exc)


async def receive(tus: TusContext, request: Request, append: Append, lease: Lease) -> UploadInfo:
    """Stream the body into storage, record the new offset, then report how the body ended.

    Bytes that are not recorded (a checksum mismatch) stay unacknowledged: the next append
    at the recorded offset leaves them out (the storage contract).
    """
    body = BodyReader(
        request.receive,
        limit=append.limit,
        read_timeout=tus.settings.read_timeout,
        min_rate=tus.settings.min_body_rate,
        splice=splice_of(request.scope),
        read_into=read_into_of(request.scope),
    )
    lease.on_release_request(body.stop)
    hasher = new_hasher(append.checksum.algorithm) if append.checksum else None
    if hasher is not None:
        body.tap(hasher, offload=hasher_is_slow(append.checksum))
    journal = Journal(tus, append, lease)
    whole = WholeFileHash(tus, append.info)
    whole.tap(body)
    metrics.Live.uploads += 1
    try:
        return await _receive(journal, body, hasher, whole, hooks.outgoing(tus, request))
    finally:
        metrics.Live.uploads -= 1
        metrics.BYTES_RECEIVED.inc(body.received)
        request.state.bytes_received = body.received  # for the access log
        whole.settle(journal.recorded)


async def _receive(
    journal: Journal,
    body: BodyReader,
    hasher: Hasher | None,
    whole: WholeFileHash,
    queue: hooks.Outgoing,
) -> UploadInfo:
    tus, append = journal.tus, journal.append
    progress = _Progress(queue, append, body)
    full: NoSpaceError | None = None
    try:
        with progress.watching():
            stored = await tus.storage.append(
                append.info.storage, append.info.offset, body, size=append.size, checkpoints=journal.checkpoints()
            )
    except NoSpaceError as exc:  # keep what was written before the disk filled up, if it can be checked
        if exc.stored is None or hasher is not None:
            raise
        stored, full = exc.stored, exc
    end = body.end or rules.BodyEnd.COMPLETE
    if full is None:
        rules.check_received(end, append.checksum, hasher.digest() if hasher else None)
    info = await _record_end(journal, stored, queue, whole.digest_of(stored.length))
    finishing = info.is_complete and not append.was_complete
    if info.concat == "partial" and finishing:
        await finals.partial_completed(tus, info.id)
    if full is not None:
        raise StorageFullError() from full
    progress.raise_if_stopped()
    error = rules.body_end_error(end) or (verdicts.rejection(info, queue.finish_answer) if finishing else None)
    if error is not None:
        raise error
    return info


class _Progress:
    """post-receive while the body arrives, at most once per `--hooks-progress-interval` (`ProgressTicker`),
    sent in the background: the body never waits for a hook. An answer with StopUpload ends the body."""

    def __init__(self, queue: hooks.Outgoing, append: Append, body: BodyReader) -> None:
        self.queue, self.append, self.body = queue, append, body
        self.stopped: HookResponse | None = None
        self.due_at = 0.0
        self._reported = 0

    def watching(self) -> AbstractContextManager[None]:
        """While in the block, report progress (when post-receive is on)."""
        tus = self.queue.tus
        if tus.progress is None or not tus.hooks.on(HookEvent.POST_RECEIVE):
            return nullcontext()
        return tus.progress.watching(self)

    async def tick(self) -> None:
        received = self.body.received
        if received == self._reported:
            return
        self._reported = received
        tus = self.queue.tus
        info = self.append.info.model_copy(update={"offset": self.append.info.offset + received})
        request = about(tus, HookEvent.POST_RECEIVE, info, self.queue.http)
        await tus.hooks.later(HookEvent.POST_RECEIVE, request, then=self._answered)

    def _answered(self, answer: HookResponse) -> None:
        if answer.StopUpload and self.stopped is None:
            self.stopped = answer
            self.body.stop()

    def raise_if_stopped(self) -> None:
        """A stopped upload's answer: the hook's status, body and headers, or 400 ERR_UPLOAD_STOPPED."""
        if self.stopped is not None:
            response = self.stopped.HTTPResponse
            raise UploadStoppedError(status=response.StatusCode, body=response.Body, headers=dict(response.Header))


async def _record_end(journal: Journal, stored: Appended, queue: hooks.Outgoing, computed: bytes | None) -> UploadInfo:
    """Record where the body ended; an upload it finished is finished (`verdicts.finish`) with the whole file's
    digest `computed` on the way, if it was."""
    tus, append = journal.tus, journal.append
    update: dict[str, object] = {"offset": stored.length, "storage": stored.ref}
    if not append.was_complete:  # each successful PATCH extends the expiry; retention counts from completion
        complete, partial = stored.length == append.info.length, append.info.concat == "partial"
        update["expires_at"] = tus.expiry(tus.clock(), complete=complete, partial=partial)
    info = append.info.model_copy(update=update)
    events: list[OutboxEvent] = []
    if info.is_complete and not append.was_complete:
        await journal.fence()

        async def save(record: UploadInfo, finished: Sequence[OutboxEvent]) -> None:
            await journal.save(record, events=finished)

        info, events = await verdicts.finish(tus, info, queue, save, computed=computed)
    else:
        with anyio.CancelScope(shield=True):  # bytes that reached storage get recorded, whatever happens
            await journal.save(info)
    if stored.length > append.info.offset:
        queue.add(HookEvent.POST_RECEIVE, info)
    queue.wrote(events)
    return info

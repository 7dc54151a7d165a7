"""S3 storage: tus offsets onto multipart-upload parts, through aiobotocore (`tusserver[s3]`).

Layout (`layout`): each upload is one multipart upload of the object ``<prefix><key>`` with a
fixed part size P recorded in its `StorageRef`. Full parts are uploaded as they fill, under part
numbers the append reserved in the record first; the bytes of the part being filled are kept in a
tail object of the append's own, which the record names, so the recorded offset never needs a byte
that is not durable in S3, and a writer whose lock lapsed never overwrites one the record needs.
`complete` copies the recorded tail into the last part inside S3 and calls CompleteMultipartUpload;
HEAD never reaches S3 (the state store answers it).

Memory: a part is buffered before it is uploaded (S3 needs its length up front). Every buffer is
reserved from one `ByteBudget` shared by all requests, and each request uploads at most
`part_concurrency` parts at once, so memory stays bounded whatever the number of uploads.
"""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from contextlib import AsyncExitStack, suppress
from dataclasses import dataclass, replace
from functools import cache, partial
from typing import Any, ClassVar

import anyio
from aiobotocore.config import AioConfig
from aiobotocore.session import AioSession, get_session

from storage_backends._checkpoint import CheckpointClock
from storage_backends._filling import BufferPool
from storage_backends._keys import check_key
from storage_backends._tasks import run_all
from storage_backends.base import Appended, Checkpoints, Lookup, StorageRef
from storage_backends.budget import ByteBudget
from storage_backends.errors import BlobNotFoundError, StorageError
from storage_backends.s3 import sweep as s3_sweep
from storage_backends.s3.calls import DEFAULT_TIMEOUT, call_deadline, s3_errors
from storage_backends.s3.layout import (
    MAX_OBJECT_SIZE,
    PLANNED_PARTS,
    MiB,
    TailHeader,
    TargetPart,
    Upload,
    part_size_for,
    plan_concat,
    tail_prefix,
)
from storage_backends.s3.parts import BufferReader, PartWriter

__all__ = ["S3Options", "S3Storage"]

logger = logging.getLogger("tusserver.s3")

READ_CHUNK = 256 * 1024
_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]*")


@dataclass(frozen=True)
class S3Options:
    """Where and how uploads are stored in S3.

    Attributes:
        bucket: an existing bucket.
        prefix: prepended to every object key (e.g. "uploads/").
        endpoint: the URL of an S3-compatible store (path-style addressing); None for AWS.
        region: the bucket's region; None takes it from the AWS configuration.
        part_size: the preferred part size; larger for uploads that would need over 10,000 parts.
        deferred_part_size: the part size of deferred-length uploads, which caps them at
            10,000 times this size.
        buffer_budget: bytes all requests together may buffer in parts.
        part_concurrency: parts one request uploads at once.
        timeout: seconds the store may take to accept a connection, to answer `Expect: 100-continue`,
            or between two reads of an answer; each call's whole deadline adds the time its bytes
            take at a minimum rate (`call_deadline`). A call past it fails as unavailable (503).
    """

    bucket: str
    prefix: str = ""
    endpoint: str | None = None
    region: str | None = None
    part_size: int = 8 * MiB
    deferred_part_size: int = 16 * MiB
    buffer_budget: int = 256 * MiB
    part_concurrency: int = 4
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix) or self.prefix.startswith("/") or ".." in self.prefix:
            raise ValueError(f"unsafe S3 key prefix {self.prefix!r}")
        if self.part_concurrency < 1:
            raise ValueError("part_concurrency must be at least 1")

    @property
    def max_deferred_length(self) -> int:
        return min(self.deferred_part_size * PLANNED_PARTS, MAX_OBJECT_SIZE)


@cache
def _session() -> AioSession:
    # One per process: a session loads botocore's service models once (~0.1 s per new session).
    return get_session()


class S3Storage:
    """Stores each upload as an S3 multipart upload; see the module docstring for the layout.

    The client is created on first use (or by `open`, which also checks that the bucket exists).
    """

    scheme: ClassVar[str] = "s3"

    def __init__(self, options: S3Options, *, budget: ByteBudget | None = None) -> None:
        self.options = options
        self.budget = budget or ByteBudget(options.buffer_budget)
        # Kept for reuse: as many as one upload has in flight, and the one it fills.
        self.buffers = BufferPool(options.part_concurrency + 1, bytearray, len)
        self.max_length = MAX_OBJECT_SIZE
        self.max_deferred_length = options.max_deferred_length
        self._client: Any = None
        self._stack = AsyncExitStack()
        self._opening = anyio.Lock()

    async def open(self) -> None:
        """Connect, and fail with a clear message if the bucket does not exist or cannot be reached."""
        client = await self._s3()
        try:
            with s3_errors(f"bucket {self.options.bucket!r}"):
                await client.head_bucket(Bucket=self.options.bucket)
        except BlobNotFoundError:
            raise StorageError(f"the S3 bucket {self.options.bucket!r} does not exist") from None

    async def _s3(self) -> Any:
        async with self._opening:
            if self._client is None:
                secure = not self.options.endpoint or self.options.endpoint.startswith("https://")
                config = AioConfig(
                    s3={"addressing_style": "path"} if self.options.endpoint else {},
                    # Over https (AWS, or a TLS endpoint) botocore's default: a CRC32 trailer and an
                    # unsigned payload, instead of a SHA-256 of every part for the signature (~3x the
                    # CPU). Plain-http stores often reject aws-chunked trailers (SERVICES.md §2), and
                    # over http botocore signs the payload anyway.
                    request_checksum_calculation="when_supported" if secure else "when_required",
                    response_checksum_validation="when_supported" if secure else "when_required",
                    retries={"max_attempts": 3, "mode": "standard"},
                    max_pool_connections=64,
                    # aiohttp's sock_connect and sock_read: a connection, and each read of an answer
                    # (a download's too). Neither bounds the wait for `100 Continue` (botocore sends
                    # part uploads with `Expect: 100-continue`), a body the store stops reading or a
                    # wait for a pooled connection: `_call`'s deadline does.
                    connect_timeout=min(self.options.timeout, 10.0),
                    read_timeout=self.options.timeout,
                )
                creator = _session().create_client(
                    "s3", endpoint_url=self.options.endpoint, region_name=self.options.region, config=config
                )
                self._client = await self._stack.enter_async_context(creator)
        return self._client

    def _key(self, key: str) -> str:
        return self.options.prefix + check_key(key)

    async def _call(self, what: str, operation: str, **params: Any) -> Any:
        """One S3 operation, retries included, within its deadline (issue 19: a store that stops
        answering must not hold a request, and its upload's lock, for ever)."""
        client = await self._s3()
        deadline = call_deadline(self.options.timeout, operation, params)
        with s3_errors(what):
            with anyio.move_on_after(deadline):
                return await getattr(client, operation)(Bucket=self.options.bucket, **params)
            raise TimeoutError(f"no answer within {deadline:.3g} s")

    # -- the storage contract ---------------------------------------------------------------

    async def create(
        self, key: str, *, length: int | None, content_type: str | None = None, content_disposition: str | None = None
    ) -> StorageRef:
        """Start the multipart upload; the part size is fixed now, from the length."""
        object_key = self._key(key)
        options = self.options
        part_size = part_size_for(length, preferred=options.part_size, deferred=options.deferred_part_size)
        extra_params = {"ContentType": content_type} if content_type else {}
        if content_disposition:
            extra_params["ContentDisposition"] = content_disposition
        answer = await self._call(f"create {key}", "create_multipart_upload", Key=object_key, **extra_params)
        return Upload(object_key, answer["UploadId"], part_size, length, next_part=1).ref()

    async def append(
        self,
        ref: StorageRef,
        offset: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> Appended:
        """Fill parts from `offset` on, upload each full one under a reserved number, keep the rest in a
        tail object of this append's own (see `layout`)."""
        upload = Upload.of(ref)
        writer = PartWriter(self, upload, offset, CheckpointClock(checkpoints, offset))
        # Stores answer a part of a completed upload with 404, moto with 500: any StorageError may mean finished.
        finished_size = partial(self._finished_size, upload, offset)
        return await writer.append(ref, chunks, gone=StorageError, finished_size=finished_size)

    async def _delete_quietly(self, key: str) -> None:
        try:
            await self._call(f"delete {key}", "delete_object", Key=key)
        except StorageError as exc:  # garbage at worst, removed with the upload
            logger.info("could not delete %s: %s", key, exc)

    async def upload_part(self, upload: Upload, number: int, data: bytes | bytearray) -> str:
        answer = await self._call(
            f"part {number} of {upload.key}",
            "upload_part",
            Key=upload.key,
            UploadId=upload.upload_id,
            PartNumber=number,
            Body=BufferReader(data),
            ContentLength=len(data),
        )
        etag: str = answer["ETag"]
        return etag

    async def put(self, key: str, data: bytes | bytearray, **params: Any) -> None:
        body = BufferReader(data)
        await self._call(f"put {key}", "put_object", Key=key, Body=body, ContentLength=len(data), **params)

    async def get_range(self, key: str, start: int, end: int) -> bytes:
        """Bytes `start` to `end` (exclusive) of an object: small ranges only (gathered parts)."""
        return await self.get(key, Range=f"bytes={start}-{end - 1}")

    async def get(self, key: str, **params: Any) -> bytes:
        """A whole small object (a tail: at most one part and its header), or a range of one."""
        answer = await self._call(f"read {key}", "get_object", Key=key, **params)
        body = answer["Body"]
        try:
            with s3_errors(f"read {key}"):
                data: bytes = await body.read()
        finally:
            body.close()
        return data

    async def read_tail(self, upload: Upload, offset: int) -> tuple[TailHeader, int, memoryview]:
        """The header of the tail object that holds the bytes up to `offset`, where its bytes start,
        and those bytes.

        Raises:
            BlobNotFoundError: there is no such tail object.
            StorageError: the object is not a tail.
        """
        source = upload.tail_key(offset)
        data = await self.get(source)
        try:
            header, size = TailHeader.decode(data)
        except ValueError:
            raise StorageError(f"{source} is not a tail object") from None
        return header, size, memoryview(data)[size:]

    async def stored_length(self, ref: StorageRef) -> int:
        """The finished object's size, or the bytes in full parts plus those of the recorded tail."""
        upload = Upload.of(ref)
        if upload.tail is None:
            try:
                return await self._object_size(ref.key)
            except BlobNotFoundError:
                await self._call(f"list parts of {ref.key}", "list_parts", Key=ref.key, UploadId=upload.upload_id)
                return 0  # a new upload: nothing stored yet
        header, _, tail = await self.read_tail(upload, 0)
        return len(header.parts) * upload.part_size + len(tail)

    async def _has_object(self, key: str, size: int) -> bool:
        try:
            return await self._object_size(key) == size
        except BlobNotFoundError:
            return False

    async def _finished_size(self, upload: Upload, offset: int) -> int | None:
        """The size of the finished object if there is one that holds `offset` bytes and, for a known
        length, all of them."""
        try:
            size = await self._object_size(upload.key)
        except StorageError:
            return None
        if size < offset or (upload.length is not None and size != upload.length):
            return None
        return size

    async def _object_size(self, key: str) -> int:
        answer = await self._call(f"head {key}", "head_object", Key=key)
        size: int = answer["ContentLength"]
        return size

    async def complete(self, ref: StorageRef, length: int) -> StorageRef:
        """Copy the recorded tail into the last part (inside S3) and complete the multipart upload.

        Repeating it after a crash is harmless: a finished object of the right size is left as it is.
        """
        upload = Upload.of(ref)
        finished = replace(upload, tail=None, next_part=None).ref()
        if length == 0:  # S3 cannot complete a multipart upload without parts
            await self.put(upload.key, b"")
            await self._abort(upload)
            return finished
        try:
            header, start, tail = await self.read_tail(upload, length)
            rest = length - len(header.parts) * upload.part_size
            if not 0 <= rest <= len(tail):
                raise StorageError(f"the last tail of {upload.key} holds fewer bytes than {length}")
            parts = [{"PartNumber": number, "ETag": etag} for number, etag in header.parts]
            if rest:
                number = upload.next_part or len(header.parts) + 1  # above every reserved number
                etag = await self._copy_part(upload, number, upload.tail_key(length), start, start + rest)
                parts.append({"PartNumber": number, "ETag": etag})
            await self._finish(upload, parts)
        except BlobNotFoundError:  # completed before (a crash before the record): the object is there
            if await self._object_size(upload.key) != length:
                raise
        return finished

    async def _copy_part(self, upload: Upload, number: int, source: str, start: int, end: int) -> str:
        answer = await self._call(
            f"copy {source} into part {number} of {upload.key}",
            "upload_part_copy",
            Key=upload.key,
            UploadId=upload.upload_id,
            PartNumber=number,
            CopySource={"Bucket": self.options.bucket, "Key": source},
            CopySourceRange=f"bytes={start}-{end - 1}",
        )
        etag: str = answer["CopyPartResult"]["ETag"]
        return etag

    async def _finish(self, upload: Upload, parts: list[dict[str, Any]]) -> None:
        await self._call(
            f"complete {upload.key}",
            "complete_multipart_upload",
            Key=upload.key,
            UploadId=upload.upload_id,
            MultipartUpload={"Parts": parts},
        )
        await self._delete_tails(upload.key)

    async def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the finished object (or a byte range of it) in pieces of READ_CHUNK bytes."""
        if end is not None and end <= start:
            return
        byte_range = {"Range": f"bytes={start}-{'' if end is None else end - 1}"} if start or end else {}
        answer = await self._call(f"read {ref.key}", "get_object", Key=ref.key, **byte_range)
        body = answer["Body"]
        try:
            while True:
                with s3_errors(f"read {ref.key}"):
                    piece: bytes = await body.read(READ_CHUNK)
                if not piece:
                    return
                yield piece
        finally:
            body.close()

    async def concatenate(self, ref: StorageRef, parts: Sequence[StorageRef]) -> None:
        """Join finished uploads into `ref` inside S3 (UploadPartCopy of byte ranges), gathering only
        ranges under 5 MiB through the server; completes the multipart upload."""
        upload = Upload.of(ref)
        sources = [part.key for part in parts]
        sizes = [await self._object_size(source) for source in sources]
        if await self._has_object(upload.key, sum(sizes)):
            return  # joined before (a crash before the record); finished parts never change
        try:
            plan = plan_concat(sizes)
        except ValueError as exc:
            raise StorageError(str(exc)) from exc
        if not plan:
            await self.put(upload.key, b"")
            await self._abort(upload)
            return
        etags: dict[int, str] = {}
        limiter = anyio.CapacityLimiter(self.options.part_concurrency)

        async def build(target: TargetPart) -> None:
            async with limiter:
                etags[target.number] = await self._build_part(upload, target, sources)

        await run_all([partial(build, target) for target in plan])
        await self._finish(upload, [{"PartNumber": number, "ETag": etags[number]} for number in sorted(etags)])

    async def _build_part(self, upload: Upload, target: TargetPart, sources: list[str]) -> str:
        if target.copied:
            segment = target.segments[0]
            return await self._copy_part(upload, target.number, sources[segment.source], segment.start, segment.end)
        reserved = await self.budget.acquire(target.size)
        try:
            pieces = [await self.get_range(sources[s.source], s.start, s.end) for s in target.segments]
            return await self.upload_part(upload, target.number, b"".join(pieces))
        finally:
            self.budget.release(reserved)

    async def discard(self, old: StorageRef, new: StorageRef) -> None:
        """Delete the tail object `old` named, once the record names another (or none)."""
        previous = Upload.of(old).tail
        if previous is not None and previous != Upload.of(new).tail:
            await self._delete_quietly(tail_prefix(old.key) + previous)

    async def delete(self, ref: StorageRef) -> None:
        """Abort the multipart upload and remove the object and every tail object; idempotent."""
        if "upload_id" in ref.extra:
            await self._abort(Upload.of(ref))
        await self._delete_tails(ref.key)
        await self._call(f"delete {ref.key}", "delete_object", Key=ref.key)

    async def _abort(self, upload: Upload) -> None:
        with suppress(BlobNotFoundError):  # completed or aborted already
            await self._call(f"abort {upload.key}", "abort_multipart_upload", Key=upload.key, UploadId=upload.upload_id)

    async def _delete_tails(self, key: str) -> None:
        """Delete every tail object of `key`, a page of up to 1,000 per DeleteObjects call."""
        while keys := await self._tail_keys(key):
            objects = [{"Key": tail} for tail in keys]
            answer = await self._call(
                f"delete tails of {key}", "delete_objects", Delete={"Objects": objects, "Quiet": True}
            )
            if answer.get("Errors"):
                failed = answer["Errors"][0]
                raise StorageError(f"cannot delete {failed.get('Key')}: {failed.get('Code')} {failed.get('Message')}")

    async def _tail_keys(self, key: str) -> list[str]:
        listing = await self._call(f"list tails of {key}", "list_objects_v2", Prefix=tail_prefix(key))
        return [item["Key"] for item in listing.get("Contents", [])]

    async def sweep(self, lookup: Lookup, *, older_than: float) -> list[str]:
        """Remove the objects and multipart uploads that no record names (see `sweep`)."""
        return await s3_sweep.sweep(self, lookup, older_than=older_than)

    async def aclose(self) -> None:
        """Close the client's connections."""
        await self._stack.aclose()
        self._client = None

"""Protocol decisions: what a request may do to an upload, as pure functions that raise `TusError`.

The endpoints follow one order: parse (pure) -> lock -> load -> decide (here) -> I/O -> render.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from tusserver.protocol.checksums import Checksum
from tusserver.protocol.digests import declared_digest
from tusserver.protocol.errors import (
    ChecksumMismatchError,
    ExtensionUnsupportedError,
    InvalidContentTypeError,
    InvalidLengthError,
    MaxSizeExceededError,
    ModifyFinalError,
    OffsetMismatchError,
    ReadTimeoutError,
    SizeExceededError,
    TusError,
    UploadInterruptedError,
)
from tusserver.protocol.headers import CreateRequest, PatchRequest
from tusserver.protocol.lifecycle import check_usable
from tusserver.protocol.model import Extension, UploadInfo

__all__ = [
    "BodyEnd",
    "CreatePlan",
    "PatchPlan",
    "body_end_error",
    "check_not_expired",
    "check_received",
    "expiry",
    "plan_create",
    "plan_patch",
    "supported_extensions",
]


class BodyEnd(StrEnum):
    """Why a request body stopped; the bytes read so far are stored in every case."""

    COMPLETE = "complete"
    DISCONNECTED = "disconnected"  # the client went away mid-body
    INTERRUPTED = "interrupted"  # another request for the upload asked for the lock
    TIMEOUT = "timeout"  # no byte arrived within the read timeout
    LIMIT_EXCEEDED = "limit_exceeded"  # more bytes than the upload (or max size) allows


@dataclass(frozen=True, slots=True)
class CreatePlan:
    """What a creation POST will do.

    Attributes:
        length: the upload's length, None if deferred.
        metadata: the pairs to store.
        read_body: the POST carries data to append (creation-with-upload).
        body_limit: the most bytes the body may carry, None for no limit.
    """

    length: int | None
    metadata: dict[str, str]
    read_body: bool
    body_limit: int | None


@dataclass(frozen=True, slots=True)
class PatchPlan:
    """What a PATCH will do: the length after it (a deferred length may get declared) and the byte limit."""

    length: int | None
    body_limit: int | None


def supported_extensions(*, can_delete: bool, expires: bool, can_concatenate: bool = False) -> tuple[Extension, ...]:
    """The extensions to advertise and route, derived from what the storage and settings provide.

    tus §Tus-Extension lists exactly the supported extensions, so a capability the backend
    lacks removes both the name and the route (405), never a silent no-op. Checksums are
    verified by the server itself, so every backend gets them.
    """
    extensions = [Extension.CREATION, Extension.CREATION_WITH_UPLOAD, Extension.CREATION_DEFER_LENGTH]
    if expires:
        # tus §Expiration: advertised when the server removes unfinished uploads.
        extensions.append(Extension.EXPIRATION)
    extensions.append(Extension.CHECKSUM)
    if can_delete:
        extensions.append(Extension.TERMINATION)
    if can_concatenate:
        # Finals may list unfinished partials: they complete once every partial has.
        extensions += [Extension.CONCATENATION, Extension.CONCATENATION_UNFINISHED]
    return tuple(extensions)


def expiry(
    now: datetime, *, complete: bool, expiration: float | None, retention: float | None, partial: bool = False
) -> datetime | None:
    """When an upload expires, counted from `now` (its creation, last PATCH or completion).

    Unfinished uploads expire `expiration` seconds after their last successful PATCH; finished
    ones are kept until deleted, or for `retention` seconds when configured. A partial upload
    (concatenation) is only there to be joined into finals, which copy its bytes: finished, it
    expires like an unfinished one, so that partials do not pile up (issue 21).
    """
    seconds = retention if complete and not partial else expiration
    return None if seconds is None else now + timedelta(seconds=seconds)


def check_not_expired(info: UploadInfo, now: datetime) -> None:
    """Raise what a HEAD or PATCH of an upload that cannot be used answers (`lifecycle.check_usable`): 410
    past its expiry while the record is kept (tus §Upload-Expires), 403 once rejected, 404 once removed."""
    check_usable(info, now)


def check_received(end: BodyEnd, checksum: Checksum | None, digest: bytes | None) -> None:
    """With Upload-Checksum, decide whether the received bytes may be kept; raise if not.

    tus §Checksum: a body that does not match MUST be discarded (460), and one that did not
    arrive whole cannot be verified, so it is discarded too (PROTOCOL.md item 64).
    """
    if checksum is None:
        return
    if end is not BodyEnd.COMPLETE:
        raise body_end_error(end) or ChecksumMismatchError("the body ended early; nothing was stored")
    if digest != checksum.digest:
        raise ChecksumMismatchError()


def _body_limit(length: int | None, offset: int, max_size: int | None) -> int | None:
    if length is not None:
        return length - offset
    # PROTOCOL.md item 56: while the length is deferred, cap the body at Tus-Max-Size.
    return None if max_size is None else max_size - offset


def _check_content_length(content_length: int | None, limit: int | None) -> None:
    # PROTOCOL.md items 23 and 45: refuse a body known to be too long before reading it.
    if content_length is not None and limit is not None and content_length > limit:
        raise SizeExceededError()


def plan_create(req: CreateRequest, *, max_size: int | None, extensions: Collection[Extension]) -> CreatePlan:
    """Decide a creation POST.

    Raises:
        ExtensionUnsupportedError: deferred length, a body or Upload-Concat without the extension.
        ModifyFinalError: a final upload with a body (403).
        MaxSizeExceededError: Upload-Length is over Tus-Max-Size (tus §POST: MUST 413).
        InvalidContentTypeError: a body that is not application/offset+octet-stream (item 44).
        SizeExceededError: Content-Length is larger than Upload-Length.
        InvalidMetadataError: the metadata declares a whole-file digest that cannot be checked (`digests`).
    """
    declared_digest(req.metadata)
    if req.concat is not None:
        if Extension.CONCATENATION not in extensions:
            raise ExtensionUnsupportedError("this server does not support concatenation")
        if req.concat.kind == "final" and req.has_body:
            raise ModifyFinalError("a final upload takes no body")  # PROTOCOL.md item 47
    if req.defer_length and Extension.CREATION_DEFER_LENGTH not in extensions:
        raise ExtensionUnsupportedError("this server does not support creation-defer-length")
    if req.length is not None and max_size is not None and req.length > max_size:
        raise MaxSizeExceededError(max_size=max_size)
    if req.has_body:
        if Extension.CREATION_WITH_UPLOAD not in extensions:
            raise ExtensionUnsupportedError("this server does not support creation-with-upload")
        if not req.body_is_offset_stream:
            raise InvalidContentTypeError()
    limit = _body_limit(req.length, 0, max_size)
    _check_content_length(req.content_length, limit)
    return CreatePlan(length=req.length, metadata=req.metadata, read_body=req.has_body, body_limit=limit)


def _declared_length(info: UploadInfo, declared: int | None, max_size: int | None) -> int | None:
    if declared is None:
        return info.length
    if info.length is not None:
        # tus §Upload-Length: once set, the length MUST NOT change; the same value again is harmless.
        if declared != info.length:
            raise InvalidLengthError("Upload-Length cannot change once it is set")
        return info.length
    if declared < info.offset:
        raise InvalidLengthError("Upload-Length is smaller than the bytes already uploaded")
    if max_size is not None and declared > max_size:
        raise MaxSizeExceededError(max_size=max_size)
    return declared


def plan_patch(info: UploadInfo, req: PatchRequest, *, max_size: int | None) -> PatchPlan:
    """Decide a PATCH against the stored upload.

    Raises:
        ModifyFinalError: the upload is a final upload (tus §Concatenation: 403).
        OffsetMismatchError: tus §PATCH: "If the offsets do not match, the Server MUST respond
            with the 409 Conflict status without modifying the upload resource."
        InvalidLengthError: Upload-Length changes a known length or is below the offset.
        MaxSizeExceededError: a declared length over Tus-Max-Size.
        SizeExceededError: Content-Length runs past the length.
    """
    if info.concat == "final":
        raise ModifyFinalError()
    if req.offset != info.offset:
        raise OffsetMismatchError(info.offset)
    length = _declared_length(info, req.length, max_size)
    limit = _body_limit(length, info.offset, max_size)
    _check_content_length(req.content_length, limit)
    return PatchPlan(length=length, body_limit=limit)


def body_end_error(end: BodyEnd) -> TusError | None:
    """The error to answer once the received bytes are stored, or None for success.

    A disconnect is not an error: the client is gone, and per tus §PATCH the server stores
    "as much of the received data as possible".
    """
    if end is BodyEnd.LIMIT_EXCEEDED:
        return SizeExceededError()
    if end is BodyEnd.INTERRUPTED:
        return UploadInterruptedError()
    if end is BodyEnd.TIMEOUT:
        return ReadTimeoutError()
    return None

"""Protocol constants, the extension names and the persisted upload record."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel

from storage_backends.base import StorageRef

__all__ = ["OFFSET_OCTET_STREAM", "OWS", "TUS_RESUMABLE", "TUS_VERSION", "Extension", "UploadInfo", "UploadState"]

TUS_RESUMABLE = "1.0.0"
TUS_VERSION = "1.0.0"  # comma-separated, most preferred first (tus §Tus-Version)
OFFSET_OCTET_STREAM = "application/offset+octet-stream"
# RFC 9110 §5.6.3: optional whitespace is spaces and horizontal tabs only. Header values are trimmed of
# these, never with a bare str.strip(), which also drops Unicode whitespace such as "\xa0" (latin-1 NBSP).
OWS = " \t"


class Extension(StrEnum):
    """The tus 1.0 extension names, as listed in Tus-Extension (tus §Protocol Extensions)."""

    CREATION = "creation"
    CREATION_WITH_UPLOAD = "creation-with-upload"
    CREATION_DEFER_LENGTH = "creation-defer-length"
    EXPIRATION = "expiration"
    CHECKSUM = "checksum"
    TERMINATION = "termination"
    CONCATENATION = "concatenation"
    CONCATENATION_UNFINISHED = "concatenation-unfinished"


class UploadState(StrEnum):
    """Where an upload is in its life (issue 21): `uploading` until every byte is stored, then `uploaded`;
    a verdict (a pre-finish hook's, an admin's, or the declared whole-file digest's) makes it `accepted` or
    `rejected` (without one it is accepted at once). `terminated` (DELETE) and `expired` end it."""

    UPLOADING = "uploading"
    UPLOADED = "uploaded"
    ACCEPTED = "accepted"
    REJECTED = "rejected"
    TERMINATED = "terminated"
    EXPIRED = "expired"


class UploadInfo(BaseModel, frozen=True):
    """Everything the server knows about one upload; what the state store persists.

    Attributes:
        id: the upload id, the last segment of the upload URL.
        length: the declared Upload-Length, or None while it is deferred.
        offset: bytes stored and acknowledged so far; never runs ahead of the storage.
        metadata: Upload-Metadata pairs, values still base64 as received ("" for no value).
        storage: where the bytes are, as the storage backend described it.
        created_at: creation time (UTC).
        expires_at: when the upload expires (tus §Expiration), None if it never does; for a record whose bytes
            are removed (`removed_at`), when the record itself goes.
        concat: "partial" or "final" for the concatenation extension, None for a plain upload.
        parts: a final upload's partial upload ids, in order.
        concat_header: Upload-Concat as received, echoed on HEAD (tus §Concatenation).
        owner: the principal that created the upload (authorization), None without authorization.
        state: where it is in its life (`UploadState`).
        reason: why it was rejected (or what the verdict said), for the client and the status API.
        digest: the whole file's digest once verified or computed, "<algorithm> <base64>" with the checksum
            extension's algorithm names (e.g. "sha256 n4bQgYhMfWWaL+qgxVrQFaO/TxsrC4Is0V1sFbDwCgg=").
        finished_at: when the last byte was stored (UTC), None before.
        removed_at: when its bytes were removed (terminated, expired, or rejected and cleaned up), None while
            they are kept: the record stays, without them, as a tombstone that tells what became of the upload.
    """

    id: str
    length: int | None
    offset: int = 0
    metadata: dict[str, str] = {}
    storage: StorageRef
    created_at: datetime
    expires_at: datetime | None = None
    concat: Literal["partial", "final"] | None = None
    parts: tuple[str, ...] = ()
    concat_header: str | None = None
    owner: str | None = None
    state: UploadState = UploadState.UPLOADING
    reason: str | None = None
    digest: str | None = None
    finished_at: datetime | None = None
    removed_at: datetime | None = None

    def is_expired(self, now: datetime) -> bool:
        """True once `expires_at` has passed; the record may still be kept until cleanup."""
        return self.expires_at is not None and now >= self.expires_at

    @property
    def is_complete(self) -> bool:
        """True once the length is known and every byte of it is stored."""
        return self.length is not None and self.offset == self.length

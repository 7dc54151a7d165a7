"""Parsing and serialising tus request headers: pure functions over lower-case header maps.

Every parser either returns a value or raises the `TusError` that names what is wrong, so the
endpoints never see a malformed header.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from tusserver.protocol.checksums import Checksum, parse_checksum
from tusserver.protocol.errors import (
    InvalidConcatError,
    InvalidContentTypeError,
    InvalidLengthError,
    InvalidMetadataError,
    InvalidOffsetError,
    UnsupportedVersionError,
    UploadNotFoundError,
)
from tusserver.protocol.model import OFFSET_OCTET_STREAM, OWS, TUS_RESUMABLE

if TYPE_CHECKING:
    from tusserver.protocol.concat import Concat  # concat builds on this module

__all__ = [
    "MAX_METADATA_LENGTH",
    "UPLOAD_ID",
    "CreateRequest",
    "PatchRequest",
    "check_tus_resumable",
    "check_upload_id",
    "decode_metadata",
    "is_offset_octet_stream",
    "parse_create",
    "parse_metadata",
    "parse_non_negative_int",
    "parse_patch",
    "serialize_metadata",
]

Headers = Mapping[str, str]

MAX_METADATA_LENGTH = 32 * 1024
_MAX_INT = 2**63 - 1  # what tusd, S3 and every client can represent
_DIGITS = re.compile(r"[0-9]{1,19}")
# tus §Upload-Metadata: "The key MUST NOT contain spaces and commas"; keys SHOULD be ASCII.
_KEY = re.compile(r"[\x21-\x2b\x2d-\x7e]+")
# Standard, padded base64 (RFC 4648 §4), the encoding tus §Upload-Metadata requires.
_BASE64 = re.compile(r"(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
UPLOAD_ID = re.compile(r"(?!\.\.?\Z)[A-Za-z0-9._~-]{1,128}")  # ours, or a hook's (`ids.CUSTOM_ID`)


@dataclass(frozen=True, slots=True)
class CreateRequest:
    """A parsed creation POST.

    Attributes:
        length: Upload-Length, or None when deferred.
        defer_length: Upload-Defer-Length: 1 was sent.
        metadata: the Upload-Metadata pairs (values still base64).
        content_length: Content-Length, None if absent (chunked or no body).
        has_body: the request carries a body (creation-with-upload).
        body_is_offset_stream: Content-Type is application/offset+octet-stream.
        checksum: Upload-Checksum for the body, if sent.
        concat: Upload-Concat, if sent.
    """

    length: int | None
    defer_length: bool
    metadata: dict[str, str]
    content_length: int | None
    has_body: bool
    body_is_offset_stream: bool
    checksum: Checksum | None = None
    concat: Concat | None = None


@dataclass(frozen=True, slots=True)
class PatchRequest:
    """A parsed PATCH: the client's offset, an optional late Upload-Length, Content-Length and checksum."""

    offset: int
    length: int | None
    content_length: int | None
    checksum: Checksum | None = None


def parse_non_negative_int(value: str | None) -> int | None:
    """Parse a strict decimal, non-negative integer ("5", not "+5", "5.0" or " 5"); None if invalid."""
    if value is None or not _DIGITS.fullmatch(value):
        return None
    number = int(value)
    return number if number <= _MAX_INT else None


def check_tus_resumable(value: str | None) -> None:
    """Raise unless the client speaks tus 1.0.0.

    tus §Tus-Resumable: "If the Client's version is not supported by the Server, it MUST respond
    with the 412 Precondition Failed status". A missing header is treated alike (PROTOCOL.md item 3).
    """
    if value is None or value.strip(OWS) != TUS_RESUMABLE:
        raise UnsupportedVersionError()


def check_upload_id(upload_id: str) -> str:
    """Return `upload_id` if it could be one of ours; anything else is simply not found."""
    if not UPLOAD_ID.fullmatch(upload_id):
        raise UploadNotFoundError()
    return upload_id


def is_offset_octet_stream(content_type: str | None) -> bool:
    """True for `application/offset+octet-stream`, parameters and case ignored."""
    if content_type is None:
        return False
    return content_type.split(";", 1)[0].strip(OWS).lower() == OFFSET_OCTET_STREAM


def parse_metadata(value: str | None) -> dict[str, str]:
    """Parse Upload-Metadata strictly (tus §Upload-Metadata); values stay base64.

    Pairs are `key base64value` or a bare `key` (empty value), separated by commas; spaces
    after a comma are tolerated, as tusd does. Keys must be unique (spec MUST).

    Raises:
        InvalidMetadataError: the header breaks the grammar, repeats a key or is too long.
    """
    if value is None or not value.strip(OWS):
        return {}
    if len(value) > MAX_METADATA_LENGTH:
        raise InvalidMetadataError(f"Upload-Metadata is longer than {MAX_METADATA_LENGTH} characters")
    pairs: dict[str, str] = {}
    for pair in value.split(","):
        key, encoded = _parse_pair(pair.lstrip(" "))
        if key in pairs:
            raise InvalidMetadataError(f"Upload-Metadata repeats the key {key!r}")
        pairs[key] = encoded
    return pairs


def _parse_pair(pair: str) -> tuple[str, str]:
    key, _, encoded = pair.partition(" ")
    if not _KEY.fullmatch(key):
        raise InvalidMetadataError("Upload-Metadata has an empty or invalid key")
    if not _BASE64.fullmatch(encoded):
        raise InvalidMetadataError(f"Upload-Metadata value of {key!r} is not padded base64")
    return key, encoded


def serialize_metadata(metadata: Mapping[str, str]) -> str:
    """The Upload-Metadata header value for stored pairs (a bare key for an empty value)."""
    return ",".join(f"{key} {value}" if value else key for key, value in metadata.items())


def decode_metadata(metadata: Mapping[str, str]) -> dict[str, bytes]:
    """Decode stored base64 values into bytes."""
    return {key: base64.b64decode(value) for key, value in metadata.items()}


def _optional_length(headers: Headers, name: str) -> int | None:
    """Content-Length or Upload-Length: absent, or a non-negative integer.

    tus §Upload-Length: "Its value MUST be a non-negative integer."
    """
    raw = headers.get(name.lower())
    if raw is None:
        return None
    length = parse_non_negative_int(raw)
    if length is None:
        raise InvalidLengthError(f"{name} is not a non-negative integer")
    return length


def _defer_length(headers: Headers) -> bool:
    raw = headers.get("upload-defer-length")
    if raw is None:
        return False
    # tus §Upload-Defer-Length: "its value MUST be 1"; other values "should" give 400.
    if raw.strip(OWS) != "1":
        raise InvalidLengthError("Upload-Defer-Length must be 1")
    return True


def parse_create(headers: Headers, concat: Concat | None = None) -> CreateRequest:
    """Parse a creation POST's headers, given its already parsed Upload-Concat.

    Raises:
        InvalidLengthError: neither or both of Upload-Length and Upload-Defer-Length, or bad values.
        InvalidConcatError: a final upload with a length header (it takes its partials' lengths).
        InvalidMetadataError: Upload-Metadata is malformed.
        ChecksumAlgorithmError, InvalidChecksumError: Upload-Checksum is unsupported or malformed.
    """
    length = _optional_length(headers, "Upload-Length")
    defer = _defer_length(headers)
    if concat is not None and concat.kind == "final":
        # tus §Concatenation: "the Client MUST NOT include the Upload-Length header in the final upload".
        if length is not None or defer:
            raise InvalidConcatError("a final upload takes its length from its partial uploads")
    elif (length is None) == (not defer):
        # tus §POST: the Client MUST send Upload-Length or Upload-Defer-Length: 1, never both.
        raise InvalidLengthError("send exactly one of Upload-Length and Upload-Defer-Length: 1")
    content_length = _optional_length(headers, "Content-Length")
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    return CreateRequest(
        length=length,
        defer_length=defer,
        metadata=parse_metadata(headers.get("upload-metadata")),
        content_length=content_length,
        has_body=bool(content_length) or (content_length is None and chunked),
        body_is_offset_stream=is_offset_octet_stream(headers.get("content-type")),
        checksum=parse_checksum(headers.get("upload-checksum")),
        concat=concat,
    )


def parse_patch(headers: Headers) -> PatchRequest:
    """Parse a PATCH's headers.

    Raises:
        InvalidContentTypeError: Content-Type is not application/offset+octet-stream.
        InvalidOffsetError: Upload-Offset is missing or not a non-negative integer.
        InvalidLengthError: Upload-Length or Content-Length is malformed.
        ChecksumAlgorithmError, InvalidChecksumError: Upload-Checksum is unsupported or malformed.
    """
    # tus §PATCH: "All PATCH requests MUST use Content-Type: application/offset+octet-stream,
    # otherwise the server SHOULD return a 415 Unsupported Media Type status."
    if not is_offset_octet_stream(headers.get("content-type")):
        raise InvalidContentTypeError()
    offset = parse_non_negative_int(headers.get("upload-offset"))
    if offset is None:
        raise InvalidOffsetError()
    return PatchRequest(
        offset=offset,
        length=_optional_length(headers, "Upload-Length"),
        content_length=_optional_length(headers, "Content-Length"),
        checksum=parse_checksum(headers.get("upload-checksum")),
    )

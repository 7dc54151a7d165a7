"""GET downloads of finished uploads: Range, conditional requests and safe content headers, all pure.

tus 1.0 does not define GET; this follows tusd's download handler (`filterContentType`) and HTTP
itself: RFC 9110 §14 (ranges), §13 (conditional requests), §8.8.3 (ETag), RFC 6266 and RFC 8187
(Content-Disposition with a UTF-8 `filename*`). Headers come in as a map with lower-case names.
"""

from __future__ import annotations

import base64
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import quote

from tusserver.protocol.digests import repr_digest
from tusserver.protocol.errors import RangeNotSatisfiableError, UploadNotFinishedError
from tusserver.protocol.headers import decode_metadata
from tusserver.protocol.lifecycle import check_usable
from tusserver.protocol.model import OWS, UploadInfo

__all__ = [
    "INLINE_TYPES",
    "ByteRange",
    "DownloadPlan",
    "content_headers",
    "etag",
    "if_range_matches",
    "none_match",
    "parse_range",
    "plan_download",
]

# tusd's mimeInlineBrowserWhitelist: types a browser shows without running script. SVG and HTML are
# missing on purpose: served inline from this origin they could run script (stored XSS).
INLINE_TYPES = frozenset(
    {
        "image/png", "image/jpeg", "image/gif", "image/bmp", "image/webp",
        "audio/wave", "audio/wav", "audio/x-wav", "audio/x-pn-wav", "audio/webm", "audio/ogg",
        "video/mp4", "video/webm", "video/ogg",
        "text/plain",
    }
)  # fmt: skip
OCTET_STREAM = "application/octet-stream"
# Revalidate every time (cheap with the ETag), so a deleted or expired upload stops being served.
CACHE_CONTROL = "no-cache"
MAX_FILENAME = 255  # characters; what most file systems allow, and it keeps the header small

# RFC 9110 §14.1.1: int-range = first-pos "-" [ last-pos ], suffix-range = "-" suffix-length.
_RANGE_SPEC = re.compile(r"[ \t]*([0-9]*)-([0-9]*)[ \t]*")
_HUGE = 2**63  # past any stored length; keeps int() away from absurdly long digit strings
# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE (commas may appear inside the quotes).
_ENTITY_TAG = re.compile(r'(W/)?"([\x21\x23-\x7e\x80-\xff]*)"')
# RFC 9110 §8.3.1: media-type = type "/" subtype, both tokens (§5.6.2).
_MEDIA_TYPE = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+/[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# The quoted fallback keeps printable ASCII minus '"' and '\' (escapes are unevenly supported) and
# '%' (some user agents percent-decode it): RFC 6266 Appendix D.
_UNSAFE_ASCII = re.compile(r'[^\x20-\x7e]|["\\%]')
# RFC 8187 §3.2.1: attr-char = ALPHA / DIGIT / "!" / "#" / "$" / "&" / "+" / "-" / "." / "^" / "_" / "`" / "|" / "~"
_ATTR_CHAR_PUNCTUATION = "!#$&+-.^_`|~"
# Controls, format characters (e.g. U+202E, which flips "exe.txt" into view), line separators, and
# unassigned or private-use code points, which nothing can show reliably.
_INVISIBLE = frozenset({"Cc", "Cf", "Cn", "Co", "Zl", "Zp"})


@dataclass(frozen=True, slots=True)
class ByteRange:
    """A satisfiable byte range of a representation of `length` bytes: `start` to `end` (exclusive)."""

    start: int
    end: int

    @property
    def length(self) -> int:
        """The number of bytes in the range."""
        return self.end - self.start

    def content_range(self, length: int) -> str:
        """RFC 9110 §14.4: `bytes first-last/complete-length`, both positions inclusive."""
        return f"bytes {self.start}-{self.end - 1}/{length}"


@dataclass(frozen=True, slots=True)
class DownloadPlan:
    """What a GET answers: the status (200, 206 or 304), the bytes `start` to `end` and the headers."""

    status: int
    start: int
    end: int
    headers: dict[str, str] = field(default_factory=dict)


def _position(digits: str) -> int:
    digits = digits.lstrip("0") or "0"
    return int(digits) if len(digits) < 19 else _HUGE


def parse_range(value: str | None, length: int) -> ByteRange | None:
    """The single byte range a `Range` header asks for, or None to serve the whole body.

    None for an absent, malformed or multi-range header and for an empty upload: RFC 9110 §14.2
    lets a server ignore Range, and "MUST ignore a Range header field that contains a range unit it
    does not understand". One range is enough for media players and resumed downloads.

    Args:
        value: the Range header, if any.
        length: the upload's length.

    Raises:
        RangeNotSatisfiableError: the range starts at or past the end, or is `bytes=-0` (416).
    """
    if value is None or length == 0:
        return None
    unit, equals, spec = value.partition("=")
    # RFC 9110 §14.1: range units are compared case-insensitively.
    if not equals or unit.strip(OWS).lower() != "bytes" or "," in spec:
        return None
    match = _RANGE_SPEC.fullmatch(spec)
    if match is None or match.group(1) == match.group(2) == "":
        return None
    if match.group(1) == "":
        return _suffix_range(_position(match.group(2)), length)
    return _int_range(match.group(1), match.group(2), length)


def _suffix_range(suffix: int, length: int) -> ByteRange:
    # RFC 9110 §14.1.3: a suffix-range is satisfiable if its suffix-length is non-zero; a longer
    # suffix than the representation selects all of it.
    if suffix == 0:
        raise RangeNotSatisfiableError(length)
    return ByteRange(max(0, length - suffix), length)


def _int_range(first: str, last: str, length: int) -> ByteRange | None:
    start, end = _position(first), _position(last) + 1 if last else length
    if last and end <= start:
        return None  # RFC 9110 §14.1.1: last-pos below first-pos makes the range-spec invalid
    if start >= length:
        # RFC 9110 §14.1.1: an int-range is satisfiable only if first-pos is below the length.
        raise RangeNotSatisfiableError(length)
    return ByteRange(start, min(end, length))  # §14.1.2: last-pos past the end means "to the end"


def etag(info: UploadInfo) -> str:
    """A strong ETag (RFC 9110 §8.8.3): a finished upload's bytes never change, so its id, length and
    creation time name them; the time tells apart a later upload that reuses the id."""
    created = int(info.created_at.timestamp() * 1_000_000)
    return f'"{info.id}-{info.length}-{created:x}"'


def _entity_tags(value: str) -> list[tuple[bool, str]]:
    return [(weak == "W/", opaque) for weak, opaque in _ENTITY_TAG.findall(value)]


def none_match(value: str | None, current: str) -> bool:
    """True if `If-None-Match` holds, i.e. the GET should be answered normally rather than with 304.

    RFC 9110 §13.1.2: false if the value is "*" or lists an entity tag matching `current` by weak
    comparison (the opaque tags are equal, either or both may be weak).
    """
    if value is None:
        return True
    if value.strip(OWS) == "*":
        return False
    opaque = current.strip('"')
    return all(tag != opaque for _, tag in _entity_tags(value))


def if_range_matches(value: str | None, current: str) -> bool:
    """True if `If-Range` lets the Range header apply (RFC 9110 §13.1.5).

    An entity tag must match `current` by strong comparison (neither weak). An HTTP-date never
    matches: downloads send no Last-Modified, and a date is only a strong validator if it equals
    one, so the condition is false and the whole body is sent, which is always correct.
    """
    if value is None:
        return True
    # `current` is strong, so equal text is a strong match; a weak tag or an HTTP-date never is.
    return value.strip(OWS) == current


def _media_type(value: bytes | None) -> str | None:
    """The `type/subtype` of a `filetype` value, lower-cased, parameters dropped; None if invalid."""
    if value is None:
        return None
    media_type = value.decode("utf-8", "replace").split(";", 1)[0].strip().lower()
    return media_type if _MEDIA_TYPE.fullmatch(media_type) else None


def declared_media_type(metadata: Mapping[str, str]) -> str | None:
    """The media type an upload's metadata declares (`filetype` or `type`, base64 values), if valid:
    what object stores record as the object's Content-Type."""
    raw = metadata.get("filetype", metadata.get("type"))
    try:
        return _media_type(base64.b64decode(raw, validate=True)) if raw else None
    except ValueError:
        return None


def declared_disposition(metadata: Mapping[str, str]) -> str | None:
    """The Content-Disposition GET sends for an upload whose metadata (base64 values) names its file, None
    if it names none: what object stores record with the object, so that it keeps its name when fetched
    from the store itself. Plain ASCII (the name goes in RFC 8187's `filename*`), as Azure's headers need."""
    decoded = decode_metadata(metadata)
    if "filename" not in decoded and "name" not in decoded:
        return None
    return content_headers(decoded)["Content-Disposition"]


def _base_name(value: bytes) -> str | None:
    """The file name without any directory part or invisible characters; None if nothing useful is left."""
    name = value.decode("utf-8", "replace").replace("\\", "/").rsplit("/", 1)[-1]
    name = "".join("_" if unicodedata.category(char) in _INVISIBLE else char for char in name).strip()
    if name in {"", ".", ".."}:
        return None
    if len(name) > MAX_FILENAME:
        stem, dot, extension = name.rpartition(".")
        keep = f"{dot}{extension}" if dot and len(extension) < 16 else ""
        name = (stem if keep else name)[: MAX_FILENAME - len(keep)] + keep
    return name


def _disposition(kind: str, metadata: Mapping[str, bytes]) -> str:
    raw = metadata.get("filename", metadata.get("name"))
    name = _base_name(raw) if raw is not None else None
    if name is None:
        return kind
    fallback = _UNSAFE_ASCII.sub("_", name)
    encoded = quote(name, safe=_ATTR_CHAR_PUNCTUATION, encoding="utf-8")
    # RFC 6266 §4.3 and Appendix D: the plain `filename` first for old user agents, then the
    # RFC 8187 `filename*`, which user agents that understand it prefer.
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


def content_headers(metadata: Mapping[str, bytes]) -> dict[str, str]:
    """Content-Type, Content-Disposition and X-Content-Type-Options for decoded upload metadata.

    The type comes from `filetype` (or `type`) and is served inline only if it is in
    `INLINE_TYPES`; anything else, or none, is sent as an `application/octet-stream` attachment.
    `text/plain` gets `charset=utf-8`: the true charset is unknown, and a fixed one keeps
    browsers from guessing. `nosniff` stops browsers from second-guessing the type.

    Args:
        metadata: the upload's metadata, values decoded from base64.

    Returns:
        The three headers.
    """
    media_type = _media_type(metadata.get("filetype", metadata.get("type")))
    if media_type not in INLINE_TYPES:
        media_type, kind = OCTET_STREAM, "attachment"
    else:
        kind = "inline"
    if media_type == "text/plain":
        media_type += "; charset=utf-8"
    return {
        "Content-Type": media_type,
        "Content-Disposition": _disposition(kind, metadata),
        "X-Content-Type-Options": "nosniff",
    }


def plan_download(info: UploadInfo, headers: Mapping[str, str], now: datetime) -> DownloadPlan:
    """Decide how to answer a GET of `info`.

    Conditional headers are evaluated in RFC 9110 §13.2.2's order: If-None-Match, then If-Range
    (If-Match and the date conditions are not supported: there is no Last-Modified).

    Args:
        info: the upload.
        headers: the request headers, lower-case names.
        now: the current time, for expiry.

    Returns:
        200 with the whole body, 206 with one range, or 304 Not Modified.

    Raises:
        UploadExpiredError: the upload has expired (410).
        UploadRejectedError: the upload was rejected (403, with the reason; issue 21).
        UploadNotFoundError: only its tombstone is left (404).
        UploadNotFinishedError: bytes are still missing (409).
        RangeNotSatisfiableError: the Range starts past the end (416).
    """
    check_usable(info, now)
    if not info.is_complete or info.length is None:
        raise UploadNotFinishedError()
    tag, length = etag(info), info.length
    validators = {"ETag": tag, "Cache-Control": CACHE_CONTROL}
    if not none_match(headers.get("if-none-match"), tag):
        # RFC 9110 §13.1.2: a GET whose If-None-Match fails "MUST respond with 304 (Not Modified)".
        return DownloadPlan(304, 0, 0, validators)
    common = validators | {"Accept-Ranges": "bytes"} | content_headers(decode_metadata(info.metadata))
    common |= repr_digest(info)  # RFC 9530 §3: the whole representation's digest, on a 206 too
    # RFC 9110 §13.1.5: "A server MUST ignore an If-Range header field received in a request that
    # does not contain a Range header field"; if the condition is false, Range is ignored.
    byte_range = parse_range(headers.get("range"), length) if if_range_matches(headers.get("if-range"), tag) else None
    if byte_range is None:
        return DownloadPlan(200, 0, length, common | {"Content-Length": str(length)})
    partial = {"Content-Range": byte_range.content_range(length), "Content-Length": str(byte_range.length)}
    return DownloadPlan(206, byte_range.start, byte_range.end, common | partial)

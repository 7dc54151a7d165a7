"""Response builders: pure functions from upload state to status and headers.

`Tus-Resumable` is added to every response by the middleware (tus §Tus-Resumable: "MUST be
included in every request and response except for OPTIONS requests"), so builders leave it out.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from email.utils import formatdate
from functools import lru_cache

from tusserver.protocol.checksums import ALGORITHMS
from tusserver.protocol.digests import repr_digest
from tusserver.protocol.errors import TusError
from tusserver.protocol.headers import serialize_metadata
from tusserver.protocol.model import TUS_VERSION, Extension, UploadInfo

__all__ = [
    "TusResponse",
    "created_response",
    "deleted_response",
    "error_response",
    "head_response",
    "options_response",
    "patch_response",
]


@dataclass(frozen=True, slots=True)
class TusResponse:
    """A response to send: status, headers and (rarely) a body."""

    status: int
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""


def options_response(extensions: Collection[Extension], max_size: int | None) -> TusResponse:
    """tus §OPTIONS: Tus-Version, Tus-Extension (omitted if empty), Tus-Max-Size if limited.

    200 rather than 204: some browsers reject a 204 to a CORS preflight (PROTOCOL.md item 7).
    """
    headers = {"Tus-Version": TUS_VERSION}
    if extensions:
        headers["Tus-Extension"] = ",".join(extensions)
    if Extension.CHECKSUM in extensions:
        # tus §Checksum: the OPTIONS response MUST list the algorithms, sha1 included.
        headers["Tus-Checksum-Algorithm"] = ",".join(ALGORITHMS)
    if max_size is not None:
        headers["Tus-Max-Size"] = str(max_size)
    return TusResponse(200, headers)


def _length_headers(info: UploadInfo) -> dict[str, str]:
    if info.length is None:
        # tus §Upload-Defer-Length: HEAD MUST send Upload-Defer-Length: 1 while the length is unknown.
        return {"Upload-Defer-Length": "1"}
    return {"Upload-Length": str(info.length)}


def _expires_headers(info: UploadInfo) -> dict[str, str]:
    # tus §Upload-Expires: for unfinished uploads that will expire, as an RFC 9110 IMF-fixdate.
    if info.expires_at is None or info.is_complete:
        return {}
    return {"Upload-Expires": _imf_fixdate(int(info.expires_at.timestamp()))}


@lru_cache(maxsize=64)
def _imf_fixdate(seconds: int) -> str:
    # Cached: concurrent uploads expire within the same few seconds, and formatting costs ~10 µs.
    return formatdate(seconds, usegmt=True)


def created_response(location: str, info: UploadInfo) -> TusResponse:
    """tus §POST: 201 Created with the upload URL; the offset tells creation-with-upload clients
    how much of the body was stored."""
    headers = {"Location": location, "Upload-Offset": str(info.offset), **_expires_headers(info)}
    if info.concat == "final" and not info.is_complete:
        del headers["Upload-Offset"]  # tus §Concatenation: no offset until the join is done
    return TusResponse(201, headers)


def head_response(info: UploadInfo) -> TusResponse:
    """tus §HEAD: Upload-Offset always (even 0), the length, the metadata, and no caching; a finished upload's
    verified whole-file digest as RFC 9530's Repr-Digest (issue 21)."""
    headers = {"Upload-Offset": str(info.offset), **_length_headers(info), "Cache-Control": "no-store"}
    if info.metadata:
        headers["Upload-Metadata"] = serialize_metadata(info.metadata)
    if info.concat_header is not None:
        headers["Upload-Concat"] = info.concat_header
    if info.concat == "final" and not info.is_complete:
        # tus §Concatenation: no Upload-Offset until the join is done; Upload-Length once it is known.
        del headers["Upload-Offset"]
        headers.pop("Upload-Defer-Length", None)
    return TusResponse(200, headers | _expires_headers(info) | repr_digest(info))


def patch_response(info: UploadInfo) -> TusResponse:
    """tus §PATCH: 204 No Content with the new offset (and the extended expiry)."""
    return TusResponse(204, {"Upload-Offset": str(info.offset), **_expires_headers(info)})


def deleted_response() -> TusResponse:
    """tus §DELETE: 204 No Content."""
    return TusResponse(204)


def error_response(error: TusError, *, with_body: bool = True) -> TusResponse:
    """`"{code}: {message}\\n"` as text/plain, plus the error's own headers; no body for HEAD."""
    headers = {"Content-Type": "text/plain; charset=utf-8", **error.headers()}
    body = error.text().encode() if with_body else b""
    return TusResponse(error.http_status, headers, body)

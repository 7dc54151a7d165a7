"""Whole-file digests (issue 21): the digest a client declares in metadata, its check, and `Repr-Digest`.

A client declares the file's digest in the metadata pair `checksum`, valued `<algorithm> <base64 digest>` with
any algorithm of the checksum extension (`checksums.ALGORITHMS`), as Upload-Checksum names them. The record
keeps a verified digest in the same form; GET and HEAD send it as RFC 9530's `Repr-Digest` where the
algorithm has a key in IANA's "Hash Algorithms for HTTP Digest Fields" registry.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from dataclasses import dataclass

from tusserver.protocol.checksums import ALGORITHMS, Checksum, new_hasher, parse_checksum
from tusserver.protocol.errors import InvalidMetadataError, TusError
from tusserver.protocol.model import UploadInfo

__all__ = [
    "DECLARED_KEY",
    "REPR_DIGEST_KEYS",
    "DigestCheck",
    "check_digest",
    "declared_digest",
    "empty_digest",
    "repr_digest",
]

DECLARED_KEY = "checksum"
# RFC 9530 §7.2: sha-256 and sha-512 are "Active"; md5 and sha (SHA-1) "Deprecated", which §5 still allows "to
# preserve integrity against corruption", this header's use here. crc32 (the registry has crc32c, another
# polynomial) and the xxHash family have no key: those digests stay in the record (the status API) only.
REPR_DIGEST_KEYS = {"sha256": "sha-256", "sha512": "sha-512", "md5": "md5", "sha1": "sha"}
_MALFORMED = f"metadata {DECLARED_KEY!r} must be '<algorithm> <base64 digest>' with one of {', '.join(ALGORITHMS)}"


def declared_digest(metadata: Mapping[str, str]) -> Checksum | None:
    """The whole-file digest declared in `metadata` (base64 values, as recorded), None if none is.

    Raises:
        InvalidMetadataError: the value is no `<algorithm> <base64>` of a supported algorithm (400 at creation:
            a digest that could never be checked must not pass silently).
    """
    raw = metadata.get(DECLARED_KEY)
    if raw is None:
        return None
    try:
        return parse_checksum(base64.b64decode(raw, validate=True).decode("ascii"))
    except (TusError, ValueError):  # ValueError: not base64, or not ASCII (UnicodeDecodeError is one)
        raise InvalidMetadataError(_MALFORMED) from None


@dataclass(frozen=True, slots=True)
class DigestCheck:
    """The outcome of a check: the digest to record ("<algorithm> <base64>"), or why the upload is rejected."""

    digest: str | None = None
    mismatch: str | None = None


def check_digest(declared: Checksum, computed: bytes) -> DigestCheck:
    """Compare the digest computed over the stored file with the declared one."""
    found = base64.b64encode(computed).decode()
    if computed != declared.digest:
        wanted = base64.b64encode(declared.digest).decode()
        return DigestCheck(mismatch=f"checksum mismatch: the file's {declared.algorithm} is {found}, not {wanted}")
    return DigestCheck(digest=f"{declared.algorithm} {found}")


def empty_digest(algorithm: str) -> bytes:
    """The digest of no bytes at all (an upload of length 0)."""
    return new_hasher(algorithm).digest()


def repr_digest(info: UploadInfo) -> dict[str, str]:
    """`Repr-Digest` for a finished upload with a verified digest whose algorithm RFC 9530 names, else nothing.

    RFC 9530 §3: `Repr-Digest: sha-256=:<base64>:`, a Structured Fields dictionary whose values are byte
    sequences; it is the digest of the whole selected representation, so a 206 carries it too.
    """
    if info.digest is None:
        return {}
    algorithm, _, encoded = info.digest.partition(" ")
    key = REPR_DIGEST_KEYS.get(algorithm)
    return {"Repr-Digest": f"{key}=:{encoded}:"} if key else {}

"""The checksum extension's algorithms and the Upload-Checksum header (tus §Checksum).

Digests are computed while the body streams, chunk by chunk; nothing here does I/O. Names are the
lower-case ones tus clients send ("sha1" is what tuspy sends; the spec requires sha1 support), plus
the xxHash family from the `xxhash` package.
"""

from __future__ import annotations

import base64
import hashlib
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import xxhash

from tusserver.protocol.errors import ChecksumAlgorithmError, InvalidChecksumError
from tusserver.protocol.model import OWS

__all__ = ["ALGORITHMS", "SLOW_ALGORITHMS", "Checksum", "Hasher", "new_hasher", "parse_checksum"]


class Hasher(Protocol):
    """What hashlib, xxhash and `_Crc32` objects have in common."""

    def update(self, data: bytes | memoryview, /) -> None: ...

    def digest(self) -> bytes: ...

    def copy(self) -> Hasher: ...


class _Crc32:
    """zlib's CRC-32 as a hasher; the digest is the 4-byte big-endian value."""

    def __init__(self) -> None:
        self._value = 0

    def update(self, data: bytes | memoryview, /) -> None:
        self._value = zlib.crc32(data, self._value)

    def digest(self) -> bytes:
        return self._value.to_bytes(4, "big")

    def copy(self) -> _Crc32:
        twin = _Crc32()
        twin._value = self._value
        return twin


# name -> (factory, digest size in bytes); sha1 first, as Tus-Checksum-Algorithm lists it.
ALGORITHMS: dict[str, tuple[Callable[[], Hasher], int]] = {
    "sha1": (hashlib.sha1, 20),
    "md5": (hashlib.md5, 16),
    "sha256": (hashlib.sha256, 32),
    "sha512": (hashlib.sha512, 64),
    "crc32": (_Crc32, 4),
    "xxh32": (xxhash.xxh32, 4),
    "xxh64": (xxhash.xxh64, 8),
    "xxh3": (xxhash.xxh3_64, 8),
    "xxh128": (xxhash.xxh3_128, 16),
}
# Hashes that cost seconds per GiB here (no SHA-NI; PERF.md A3): worth a worker thread per chunk.
SLOW_ALGORITHMS = frozenset({"sha1", "md5", "sha256", "sha512"})


@dataclass(frozen=True, slots=True)
class Checksum:
    """A parsed Upload-Checksum: the algorithm's name and the expected digest."""

    algorithm: str
    digest: bytes


def new_hasher(algorithm: str) -> Hasher:
    """A fresh hasher for a name from ALGORITHMS."""
    return ALGORITHMS[algorithm][0]()


def parse_checksum(value: str | None) -> Checksum | None:
    """Parse `Upload-Checksum: <algorithm> <base64 digest>`; None when the header is absent.

    A well-formed digest of the wrong length for its algorithm is kept as it is: it is a digest the
    body cannot match, so the request ends in 460 like any other mismatch (PROTOCOL.md item 63).

    Raises:
        ChecksumAlgorithmError: tus §Checksum: an unsupported algorithm MUST give 400 (names are
            lower case, so "SHA1" is unsupported too).
        InvalidChecksumError: no digest, or one that is not base64 (non-ASCII bytes included): 400.
    """
    if value is None:
        return None
    algorithm, _, encoded = value.strip(OWS).partition(" ")
    if algorithm not in ALGORITHMS:
        raise ChecksumAlgorithmError(f"Upload-Checksum algorithm {algorithm[:20]!r} is not supported")
    encoded = encoded.strip(OWS)
    if not encoded:
        raise InvalidChecksumError("Upload-Checksum has no digest")
    try:
        # ValueError, not only binascii.Error: b64decode refuses a str holding non-ASCII characters with it.
        digest = base64.b64decode(encoded, validate=True)
    except ValueError:
        raise InvalidChecksumError("Upload-Checksum digest is not base64") from None
    return Checksum(algorithm, digest)

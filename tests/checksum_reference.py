"""Expected digests of every checksum algorithm, computed without tusserver.protocol.checksums."""

from __future__ import annotations

import hashlib
import zlib
from collections.abc import Callable

import xxhash

REFERENCE: dict[str, Callable[[bytes], bytes]] = {
    "sha1": lambda data: hashlib.sha1(data).digest(),
    "md5": lambda data: hashlib.md5(data).digest(),
    "sha256": lambda data: hashlib.sha256(data).digest(),
    "sha512": lambda data: hashlib.sha512(data).digest(),
    "crc32": lambda data: zlib.crc32(data).to_bytes(4, "big"),
    "xxh32": xxhash.xxh32_digest,
    "xxh64": xxhash.xxh64_digest,
    "xxh3": xxhash.xxh3_64_digest,
    "xxh128": xxhash.xxh3_128_digest,
}

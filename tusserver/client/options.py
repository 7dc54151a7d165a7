"""What a transfer may be asked to do, in one frozen value shared by the sync and async clients and the CLI."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tusserver.client.session import RetryPolicy
from tusserver.protocol.checksums import ALGORITHMS

__all__ = ["DEFAULT_CHUNK", "ProgressCallback", "TransferOptions"]

# One PATCH per 64 MiB: 16 requests per GiB cost nothing measurable, and the chunk bounds what a proxy that
# buffers bodies must hold and what a checksum mismatch (460) makes the client send again.
DEFAULT_CHUNK = 64 * 1024 * 1024

ProgressCallback = Callable[[Path, int, int], None]
"""`callback(path, transferred, length)`: called as bytes go out or come in; `transferred` may go back when
the server kept less than was sent (a dropped connection, a checksum mismatch)."""


@dataclass(frozen=True, slots=True)
class TransferOptions:
    """Options of uploads and downloads.

    Attributes:
        chunk_size: the most bytes one PATCH carries.
        parallel: streams at once: the parts of one large file (concatenation) and files of a directory.
        checksum: an algorithm the server offers (`Tus-Checksum-Algorithm`): every PATCH then carries
            `Upload-Checksum`, and the server discards a chunk that arrived damaged (460) for it to be sent again.
        digest: the algorithm of the whole-file digest declared in the `checksum` metadata and verified by
            downloads; None declares none.
        headers: sent with every request, e.g. `{"Authorization": "Bearer ..."}`.
        metadata: more `Upload-Metadata` pairs for every upload, beside `filename`, `filetype` and `checksum`.
        timeout: seconds to connect, and the most any one read or write may wait.
        retry: how long a transfer keeps trying without progress.
    """

    chunk_size: int = DEFAULT_CHUNK
    parallel: int = 1
    checksum: str | None = None
    digest: str | None = "xxh128"
    headers: Mapping[str, str] = field(default_factory=dict)
    metadata: Mapping[str, str] = field(default_factory=dict)
    timeout: float = 60.0
    retry: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be at least 1 byte")
        if not 1 <= self.parallel <= 100:
            raise ValueError("parallel must be between 1 and 100")
        for name, algorithm in (("checksum", self.checksum), ("digest", self.digest)):
            if algorithm is not None and algorithm not in ALGORITHMS:
                raise ValueError(f"{name}: unknown algorithm {algorithm!r} (known: {', '.join(ALGORITHMS)})")

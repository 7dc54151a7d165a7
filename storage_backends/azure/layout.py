"""Pure arithmetic of the Azure backend: how tus offsets map onto staged blocks of a block blob.

An upload has one fixed block size B (`block_size_for`, from `pieces`): byte `n` lives in block
`n // B`. A block is staged (Put Block) once it is full; the bytes of the block being filled are the
upload's *tail*, kept in a small blob of their own (`pieces.tail_key`) that the upload's record names, so
the recorded offset never needs a byte that is not durable in Azure. Staged blocks stay uncommitted
until completion commits the block list (Put Block List) with the last tail's bytes as the last block.
A tail with no bytes past the full blocks (a PATCH that ended on a block boundary, a checkpoint there) is
*inline*: its header travels in the record itself (`Blob.inline`, up to `INLINE_MAX` bytes), not in a blob, which
spares a chunked upload a Put Blob per PATCH (half the server's CPU of an 8 MiB PATCH, BENCHMARKS.md).

Block IDs have one fixed width (Azure requires it within a blob) and sort by name in byte order:
``<index, 6 digits>-<writer token, 12 hex digits>``. Each append (a *writer*) stages blocks under a token
of its own, so a writer whose lock lapsed (a paused process) never overwrites a block that another
holder's record needs: no reservation is needed, unlike S3's part numbers. The tail's header lists which
writer staged which blocks, as runs (`TailHeader`): one per append that filled a block, not one per block.

Azure limits: 50,000 committed blocks of at most 4000 MiB each (so ~190.7 TiB a blob), 100,000
uncommitted blocks, and uncommitted blocks are dropped when a blob sees no Put Block or Put Block List
for about a week (`UNCOMMITTED_LIFETIME`), which bounds how long an unfinished upload may rest.
"""

from __future__ import annotations

import base64
from collections import OrderedDict
from dataclasses import dataclass, field, replace

from storage_backends import pieces
from storage_backends.base import StorageRef
from storage_backends.pieces import MiB, TargetPart, decode_header, encode_header, tail_prefix

__all__ = [
    "INLINE_MAX",
    "JOIN_BLOCK_SIZE",
    "MAX_BLOB_SIZE",
    "MAX_BLOCKS",
    "MAX_BLOCK_SIZE",
    "UNCOMMITTED_LIFETIME",
    "Blob",
    "TailHeader",
    "block_id",
    "block_size_for",
    "plan_join",
]

MAX_BLOCKS = 50_000  # committed blocks per blob
MAX_BLOCK_SIZE = 4000 * MiB  # Put Block
MAX_BLOB_SIZE = MAX_BLOCKS * MAX_BLOCK_SIZE
# Put Block From URL copies one range per call; 100 MiB keeps each call short (and within the limit of
# every service version), and still joins 4.7 TiB within 50,000 blocks.
JOIN_BLOCK_SIZE = 100 * MiB
UNCOMMITTED_LIFETIME = 7 * 86400  # seconds: Azure's garbage collection of uncommitted blocks
TOKEN_LENGTH = 12  # hex digits of a writer's token
# Bytes of a header kept in the record (about 1,700 runs: 13 GiB in 8 MiB PATCHes); a longer one goes into a tail
# blob, a Put Blob per PATCH. At 4 KiB (200 runs), 8 MiB PATCHes past the 200th cost 13-18 % more CPU (BENCHMARKS.md).
INLINE_MAX = 32 * 1024
# Blocks have no minimum size; every block of an upload counts (no numbers are reserved, unlike S3's parts).
_LIMITS = pieces.PieceLimits(1, MAX_BLOCK_SIZE, MAX_BLOCKS, MAX_BLOB_SIZE, "Azure block blob")


def block_size_for(length: int | None, *, preferred: int, deferred: int) -> int:
    """The block size of a new upload: `preferred`, or larger so that `length` fits 50,000 blocks.

    A deferred-length upload (None) gets `deferred`, which caps its length at 50,000 times that.

    Raises:
        ValueError: `length` exceeds the largest block blob (50,000 blocks of 4000 MiB).
    """
    return pieces.piece_size_for(length, preferred=preferred, deferred=deferred, limits=_LIMITS)


def block_id(index: int, token: str) -> str:
    """The ID of block `index` staged by writer `token`: one width for every block, in byte order by name.
    (The SDK base64-encodes it on the wire.)"""
    return f"{index:06d}-{token}"


def plan_join(sizes: list[int]) -> list[TargetPart]:
    """The blocks of a blob that joins blobs of `sizes`: every range copied inside Azure (blocks have no
    minimum size, so nothing passes through the server), at most `JOIN_BLOCK_SIZE` each.

    Raises:
        ValueError: the join needs more than 50,000 blocks.
    """
    return pieces.plan_concat(sizes, min_part=1, max_part=JOIN_BLOCK_SIZE, max_parts=MAX_BLOCKS, store="Azure")


_TAIL_MAGIC = b"tus-azure-tail/"


@dataclass(frozen=True, slots=True)
class TailHeader:
    """The start of a tail blob: which writer staged the full blocks before it, as runs of
    (writer token, block count) in block order."""

    runs: tuple[tuple[str, int], ...] = ()
    count: int = field(init=False, compare=False)
    """How many full blocks come before the tail (summed once: an upload in many PATCHes has many runs)."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "count", sum(count for _, count in self.runs))

    def block_ids(self) -> list[str]:
        """The IDs of the full blocks, in order."""
        ids: list[str] = []
        start = 0
        for token, count in self.runs:
            ids.extend(block_id(index, token) for index in range(start, start + count))
            start += count
        return ids

    def extended(self, token: str, count: int) -> TailHeader:
        """These runs followed by `count` blocks of writer `token` (merged with its own last run)."""
        if count <= 0:
            return self
        if self.runs and self.runs[-1][0] == token:
            return TailHeader((*self.runs[:-1], (token, self.runs[-1][1] + count)))
        return TailHeader((*self.runs, (token, count)))

    def encode(self) -> bytes:
        """The header's bytes; one short enough to be inline is remembered (`of_inline`)."""
        data = encode_header(_TAIL_MAGIC, 1, {"runs": self.runs})
        if len(data) <= INLINE_MAX:
            _inline.remember(data, self)
        return data

    @classmethod
    def decode(cls, data: bytes) -> tuple[TailHeader, int]:
        """The header at the start of `data`, and where the tail's bytes begin.

        Raises:
            ValueError: `data` does not start with a tail header.
        """
        _, decoded, start = decode_header(_TAIL_MAGIC, data)
        try:
            return cls(tuple((str(token), int(count)) for token, count in decoded["runs"])), start
        except (ValueError, KeyError, TypeError):
            raise ValueError("not a tail object") from None

    @staticmethod
    def of_inline(data: bytes) -> TailHeader:
        """The header of an inline tail (`Blob.inline`), decoded once: a chunked upload's next PATCH finds the one
        its last PATCH wrote, most often on this server, which remembers what it encoded (one run per PATCH, so
        decoding costs more with every PATCH).

        Raises:
            ValueError: `data` is not a tail header alone.
        """
        header = _inline.known(data)
        if header is None:
            header, start = TailHeader.decode(data)
            if start != len(data):
                raise ValueError("not an inline tail")
            _inline.remember(data, header)
        return header


class _Remembered:
    """The inline headers last encoded or decoded here, by their bytes, as many as fit `budget` bytes of them."""

    def __init__(self, budget: int) -> None:
        self._budget = budget
        self._size = 0
        self._headers: OrderedDict[bytes, TailHeader] = OrderedDict()

    def known(self, data: bytes) -> TailHeader | None:
        header = self._headers.get(data)
        if header is not None:
            self._headers.move_to_end(data)
        return header

    def remember(self, data: bytes, header: TailHeader) -> None:
        if data not in self._headers:
            self._size += len(data)
        self._headers[data] = header
        self._headers.move_to_end(data)
        while self._size > self._budget:
            self._size -= len(self._headers.popitem(last=False)[0])


_inline = _Remembered(4 * MiB)


@dataclass(frozen=True)
class Blob:
    """What a `StorageRef` of this backend says: the blob, its block size and length, the tail blob that
    holds the bytes past the full blocks (None once the upload is finished), the content headers the
    blob gets when it is committed, and a token of its creation: two creations of one key (a final
    upload's derived key, after a crash) name their tails apart, so that finishing one leaves the other's.
    An inline tail (no bytes past the full blocks) is not a blob: its content is `inline`."""

    key: str
    block_size: int
    length: int | None
    tail: str | None
    content_type: str | None = None
    content_disposition: str | None = None
    upload: str = ""
    inline: bytes | None = None

    @classmethod
    def of(cls, ref: StorageRef) -> Blob:
        extra = ref.extra
        length = extra.get("length")
        inline = extra.get("inline")
        return cls(
            ref.key,
            int(extra["block_size"]),
            int(length) if length else None,
            extra.get("tail"),
            extra.get("content_type"),
            extra.get("content_disposition"),
            extra.get("upload", ""),
            None if inline is None else base64.b64decode(inline),
        )

    def ref(self) -> StorageRef:
        extra = {"block_size": str(self.block_size)}
        optional = {
            "length": self.length,
            "tail": self.tail,
            "content_type": self.content_type,
            "content_disposition": self.content_disposition,
            "upload": self.upload or None,
            "inline": None if self.inline is None else base64.b64encode(self.inline).decode(),
        }
        extra.update({name: str(value) for name, value in optional.items() if value is not None})
        return StorageRef(backend="azure", key=self.key, extra=extra)

    @property
    def tail_name(self) -> str:
        """The tail blob's full name."""
        assert self.tail is not None, "a finished upload has no tail"
        return tail_prefix(self.key) + self.tail

    @property
    def tails(self) -> str:
        """The prefix of every tail of this creation."""
        return f"{tail_prefix(self.key)}{self.upload}-"

    def tail_key(self, count: int, writer: str, position: int) -> str:
        """The full name of the tail that writer `writer` writes after `count` full blocks, holding `position`
        bytes in all: ``<key>.tail-<creation>-<block number, from 1>-<writer><length in hex>``."""
        return f"{self.tails}{count + 1:05d}-{writer}{position:x}"

    @property
    def tail_token(self) -> str:
        """The token of the writer that wrote the tail."""
        assert self.tail is not None, "a finished upload has no tail"
        return self.tail.rsplit("-", 1)[1][:TOKEN_LENGTH]

    def with_tail(self, name: str | None, *, inline: bytes | None = None) -> Blob:
        """This upload with the tail blob `name` (a full name, or None when finished), or with the inline tail
        `inline` under that name."""
        tail = None if name is None else name.removeprefix(tail_prefix(self.key))
        return replace(self, tail=tail, inline=inline)

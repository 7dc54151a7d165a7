"""Pure arithmetic of the S3 backend: how tus offsets map onto multipart-upload parts.

An upload has one fixed part size P (`part_size_for`). Byte `n` lives in the `n // P + 1`-th part; a
part is uploaded only once it is full, and the bytes of the part being filled (the *tail*) live in a
small object of their own (`tail_key`), which starts with a header (`TailHeader`) listing the number
and ETag of every full part so far: the ETags come from the upload requests themselves, never from
ListParts, which cannot tell two uploads of one part number apart (SeaweedFS lists both, in random
order; SERVICES.md §2). The upload's record names its current tail; completion reads it.

Nothing a writer stores is shared with another writer: every append writes tails under names of
its own, and uploads parts only under numbers it reserved in the record beforehand (a fenced save).
Part numbers need not be consecutive, only rising (CompleteMultipartUpload), so a writer whose lock
lapsed (a paused process) can go on uploading parts and tails when it wakes without touching a
byte that another holder's record names; its reserved numbers are simply never used again. The part
size leaves room for that: uploads are planned for `PLANNED_PARTS`, under S3's 10,000.

Concatenation (`plan_concat`) maps byte ranges of finished objects onto the new upload's parts:
a range of at least 5 MiB (or the last one) is copied inside S3 (UploadPartCopy); shorter
ranges are gathered into one part that passes through the server, at most 2 x 5 MiB at a time.

What S3 shares with Azure's blocks (piece sizes, tail names and headers, join plans) is in `pieces`;
this module adds S3's limits and its tail header (ETags).
"""

from __future__ import annotations

from dataclasses import dataclass

from storage_backends import pieces
from storage_backends.base import StorageRef
from storage_backends.pieces import MiB, Segment, TargetPart, decode_header, encode_header, tail_key, tail_prefix

__all__ = [
    "MAX_OBJECT_SIZE",
    "MAX_PARTS",
    "MAX_PART_SIZE",
    "MIN_PART_SIZE",
    "PLANNED_PARTS",
    "MiB",
    "Segment",
    "TailHeader",
    "TargetPart",
    "Upload",
    "part_size_for",
    "plan_concat",
    "tail_key",
    "tail_prefix",
]

MIN_PART_SIZE = 5 * MiB  # S3: every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
PLANNED_PARTS = 9_000  # the rest are for the reservations of writers that never finished (a crash, a pause)
MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MiB  # 5 TiB
_LIMITS = pieces.PieceLimits(MIN_PART_SIZE, MAX_PART_SIZE, PLANNED_PARTS, MAX_OBJECT_SIZE, "S3")


def part_size_for(length: int | None, *, preferred: int, deferred: int) -> int:
    """The part size of a new upload: `preferred`, or larger so that `length` fits `PLANNED_PARTS` parts.

    Rounded up to whole MiB; a deferred-length upload (None) gets `deferred`, which caps its
    length at `deferred * PLANNED_PARTS`.

    Raises:
        ValueError: `length` exceeds the 5 TiB object limit.
    """
    return pieces.piece_size_for(length, preferred=preferred, deferred=deferred, limits=_LIMITS)


_TAIL_MAGIC = b"tus-s3-tail/"


@dataclass(frozen=True, slots=True)
class TailHeader:
    """The start of a tail object: the number and ETag of each full part before it, in byte order."""

    parts: tuple[tuple[int, str], ...]

    def encode(self) -> bytes:
        return encode_header(_TAIL_MAGIC, 2, {"parts": self.parts})

    @classmethod
    def decode(cls, data: bytes) -> tuple[TailHeader, int]:
        """The header at the start of `data` and its length, where the part's bytes begin.

        Raises:
            ValueError: `data` does not start with a tail header.
        """
        version, decoded, start = decode_header(_TAIL_MAGIC, data)
        try:
            if version == b"1":  # parts numbered 1, 2, ... in order
                return cls(tuple(enumerate((str(etag) for etag in decoded["etags"]), start=1))), start
            return cls(tuple((int(number), str(etag)) for number, etag in decoded["parts"])), start
        except (ValueError, KeyError, TypeError):
            raise ValueError("not a tail object") from None


def plan_concat(sizes: list[int], *, min_part: int = MIN_PART_SIZE, max_part: int = MAX_PART_SIZE) -> list[TargetPart]:
    """The parts of an upload that joins sources of `sizes`, in order (`pieces.plan_concat` with S3's rules:
    every part but the last between 5 MiB and 5 GiB, at most 10,000 parts).

    Raises:
        ValueError: the join needs more than 10,000 parts.
    """
    return pieces.plan_concat(sizes, min_part=min_part, max_part=max_part, max_parts=MAX_PARTS, store="S3")


@dataclass(frozen=True)
class Upload:
    """What a `StorageRef` of this backend says: the object, its multipart upload, its part size, and
    where its bytes are: the current tail object (None before the first byte) and the lowest part
    number no writer has reserved (None in records written before reservations)."""

    key: str
    upload_id: str
    part_size: int
    length: int | None
    tail: str | None = None
    next_part: int | None = None

    @classmethod
    def of(cls, ref: StorageRef) -> Upload:
        extra = ref.extra
        length, next_part = extra.get("length"), extra.get("next")
        return cls(
            ref.key,
            extra["upload_id"],
            int(extra["part_size"]),
            int(length) if length else None,
            extra.get("tail"),
            int(next_part) if next_part else None,
        )

    def ref(self) -> StorageRef:
        extra = {"upload_id": self.upload_id, "part_size": str(self.part_size)}
        optional = {"length": self.length, "tail": self.tail, "next": self.next_part}
        extra.update({name: str(value) for name, value in optional.items() if value is not None})
        return StorageRef(backend="s3", key=self.key, extra=extra)

    def tail_key(self, offset: int) -> str:
        """The tail object that holds the bytes up to `offset` (named by the record; before tails had
        names of their own, by the number of the part it fills)."""
        if self.tail is not None:
            return tail_prefix(self.key) + self.tail
        return tail_key(self.key, offset // self.part_size + 1)

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
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from storage_backends.base import StorageRef

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

MiB = 1024 * 1024
MIN_PART_SIZE = 5 * MiB  # S3: every part but the last
MAX_PART_SIZE = 5 * 1024 * MiB
MAX_PARTS = 10_000
PLANNED_PARTS = 9_000  # the rest are for the reservations of writers that never finished (a crash, a pause)
MAX_OBJECT_SIZE = 5 * 1024 * 1024 * MiB  # 5 TiB


def part_size_for(length: int | None, *, preferred: int, deferred: int) -> int:
    """The part size of a new upload: `preferred`, or larger so that `length` fits `PLANNED_PARTS` parts.

    Rounded up to whole MiB; a deferred-length upload (None) gets `deferred`, which caps its
    length at `deferred * PLANNED_PARTS`.

    Raises:
        ValueError: `length` exceeds the 5 TiB object limit.
    """
    if length is None:
        return deferred
    if length > MAX_OBJECT_SIZE:
        raise ValueError(f"an S3 object holds at most {MAX_OBJECT_SIZE} bytes")
    needed = -(-length // PLANNED_PARTS)
    size = max(preferred, MIN_PART_SIZE, -(-needed // MiB) * MiB)
    return min(size, MAX_PART_SIZE)


def tail_prefix(key: str) -> str:
    """The prefix of every tail object of the upload stored under `key`."""
    return f"{key}.tail-"


def tail_key(key: str, part_number: int, token: str = "") -> str:
    """The object holding the first bytes of the `part_number`-th part while it is not full, written by
    the writer `token` (tails written before tokens existed have none)."""
    return f"{tail_prefix(key)}{part_number:05d}" + (f"-{token}" if token else "")


_TAIL_MAGIC = b"tus-s3-tail/"


@dataclass(frozen=True, slots=True)
class TailHeader:
    """The start of a tail object: the number and ETag of each full part before it, in byte order."""

    parts: tuple[tuple[int, str], ...]

    def encode(self) -> bytes:
        return _TAIL_MAGIC + b"2 " + json.dumps({"parts": self.parts}).encode() + b"\n"

    @classmethod
    def decode(cls, data: bytes) -> tuple[TailHeader, int]:
        """The header at the start of `data` and its length, where the part's bytes begin.

        Raises:
            ValueError: `data` does not start with a tail header.
        """
        end = data.find(b"\n")
        if not data.startswith(_TAIL_MAGIC) or end < 0:
            raise ValueError("not a tail object")
        version, _, fields = data[len(_TAIL_MAGIC) : end].partition(b" ")
        try:
            decoded = json.loads(fields)
            if version == b"1":  # parts numbered 1, 2, ... in order
                return cls(tuple(enumerate((str(etag) for etag in decoded["etags"]), start=1))), end + 1
            return cls(tuple((int(number), str(etag)) for number, etag in decoded["parts"])), end + 1
        except (ValueError, KeyError, TypeError):
            raise ValueError("not a tail object") from None


@dataclass(frozen=True, slots=True)
class Segment:
    """Bytes `start` to `end` (exclusive) of source object number `source`."""

    source: int
    start: int
    end: int

    @property
    def size(self) -> int:
        return self.end - self.start


@dataclass(frozen=True, slots=True)
class TargetPart:
    """One part of the joined upload: copied inside S3 if it is a single segment, else gathered."""

    number: int
    segments: tuple[Segment, ...]

    @property
    def copied(self) -> bool:
        return len(self.segments) == 1

    @property
    def size(self) -> int:
        return sum(segment.size for segment in self.segments)


def plan_concat(sizes: list[int], *, min_part: int = MIN_PART_SIZE, max_part: int = MAX_PART_SIZE) -> list[TargetPart]:
    """The parts of an upload that joins sources of `sizes`, in order.

    Every part but the last is between `min_part` and `max_part` bytes (S3's rules). Ranges of a
    source that can stand alone become copied parts; shorter ones are gathered with their
    neighbours into a part of at least `min_part` bytes (and under 2 x `min_part`).

    Raises:
        ValueError: the join needs more than 10,000 parts.
    """
    groups: list[list[Segment]] = []
    gathering: list[Segment] = []
    for source, size in enumerate(sizes):
        position = 0
        if gathering and size:  # top up the gathered part from this source first
            take = min(size, min_part - sum(segment.size for segment in gathering))
            gathering.append(Segment(source, 0, take))
            position = take
            if sum(segment.size for segment in gathering) >= min_part:
                groups.append(gathering)
                gathering = []
        remaining = size - position
        if remaining >= min_part:
            groups.extend([segment] for segment in _split(source, position, size, max_part))
        elif remaining:
            gathering.append(Segment(source, position, size))
    if gathering:
        groups.append(gathering)
    if len(groups) > MAX_PARTS:
        raise ValueError(f"joining these uploads needs {len(groups)} parts, more than S3's {MAX_PARTS}")
    return [TargetPart(number, tuple(group)) for number, group in enumerate(groups, start=1)]


def _split(source: int, start: int, end: int, max_part: int) -> list[Segment]:
    """`start`..`end` in equal pieces of at most `max_part` bytes (each at least half of it)."""
    count = -(-(end - start) // max_part)
    step = -(-(end - start) // count)
    return [Segment(source, offset, min(offset + step, end)) for offset in range(start, end, step)]


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

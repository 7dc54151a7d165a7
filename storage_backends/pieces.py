"""Pure arithmetic shared by the object stores (S3 parts, Azure blocks): how tus offsets map onto pieces.

Both stores keep an upload as numbered pieces that are joined when it completes (S3 multipart parts,
Azure staged blocks). Each upload has one fixed piece size P (`piece_size_for`): byte `n` lives in
piece `n // P`, a piece is stored once it is full, and the bytes of the piece being filled (the
*tail*) live in a small object of their own (`tail_key`), named by the upload's record, which starts
with a header (`encode_header`) saying which pieces came before it. A tail is written under a name of
its writer's own, so a writer whose lock lapsed never overwrites one that a record names.

A join (`plan_concat`) maps byte ranges of finished objects onto the pieces of a new one, copied inside
the store; ranges too short to stand alone (S3's 5 MiB minimum) are gathered with their neighbours.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MiB",
    "PieceLimits",
    "Segment",
    "TargetPart",
    "decode_header",
    "encode_header",
    "piece_size_for",
    "plan_concat",
    "tail_key",
    "tail_prefix",
]

MiB = 1024 * 1024


@dataclass(frozen=True, slots=True)
class PieceLimits:
    """A store's rules for pieces: their smallest and largest size, how many an upload is planned for, the
    largest object, and the store's name (for messages)."""

    minimum: int
    maximum: int
    planned: int
    largest: int
    store: str


def piece_size_for(length: int | None, *, preferred: int, deferred: int, limits: PieceLimits) -> int:
    """The piece size of a new upload: `preferred`, or larger so that `length` fits `limits.planned` pieces.

    Grown in whole MiB, never under `limits.minimum` or over `limits.maximum`; a deferred-length
    upload (None) gets `deferred`, which caps its length at `deferred * limits.planned`.

    Raises:
        ValueError: `length` exceeds `limits.largest`, the store's largest object.
    """
    if length is None:
        return deferred
    if length > limits.largest:
        raise ValueError(f"an {limits.store} object holds at most {limits.largest} bytes")
    size, needed = max(preferred, limits.minimum), -(-length // limits.planned)
    if needed > size:
        size = -(-needed // MiB) * MiB
    return min(size, limits.maximum)


def tail_prefix(key: str) -> str:
    """The prefix of every tail object of the upload stored under `key`."""
    return f"{key}.tail-"


def tail_key(key: str, piece: int, token: str = "") -> str:
    """The object holding the first bytes of piece number `piece` (counted from 1) while it is not full,
    written by the writer `token` (S3 tails written before tokens existed have none)."""
    return f"{tail_prefix(key)}{piece:05d}" + (f"-{token}" if token else "")


def encode_header(magic: bytes, version: int, fields: dict[str, Any]) -> bytes:
    """A tail's header: `magic`, a format version and JSON fields, on one line before the tail's bytes."""
    return magic + str(version).encode() + b" " + json.dumps(fields, separators=(",", ":")).encode() + b"\n"


def decode_header(magic: bytes, data: bytes) -> tuple[bytes, Any, int]:
    """The version and the decoded JSON fields of the header at the start of `data`, and where its bytes begin.

    Raises:
        ValueError: `data` does not start with a header of `magic`.
    """
    end = data.find(b"\n")
    if not data.startswith(magic) or end < 0:
        raise ValueError("not a tail object")
    version, _, fields = data[len(magic) : end].partition(b" ")
    try:
        return version, json.loads(fields), end + 1
    except ValueError:
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
    """One piece of the joined upload: copied inside the store if it is a single segment, else gathered."""

    number: int
    segments: tuple[Segment, ...]

    @property
    def copied(self) -> bool:
        return len(self.segments) == 1

    @property
    def size(self) -> int:
        return sum(segment.size for segment in self.segments)


def plan_concat(sizes: list[int], *, min_part: int, max_part: int, max_parts: int, store: str) -> list[TargetPart]:
    """The pieces of an upload that joins sources of `sizes`, in order, numbered from 1.

    Every piece but the last is between `min_part` and `max_part` bytes. Ranges of a source that can
    stand alone become copied pieces; shorter ones are gathered with their neighbours into a piece of at
    least `min_part` bytes (and under 2 x `min_part`). With `min_part` 1 nothing is ever gathered.

    Raises:
        ValueError: the join needs more than `max_parts` pieces.
    """
    groups: list[list[Segment]] = []
    gathering: list[Segment] = []
    for source, size in enumerate(sizes):
        position = 0
        if gathering and size:  # top up the gathered piece from this source first
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
    if len(groups) > max_parts:
        raise ValueError(f"joining these uploads needs {len(groups)} parts, more than {store}'s {max_parts}")
    return [TargetPart(number, tuple(group)) for number, group in enumerate(groups, start=1)]


def _split(source: int, start: int, end: int, max_part: int) -> list[Segment]:
    """`start`..`end` in equal pieces of at most `max_part` bytes (each at least half of it)."""
    count = -(-(end - start) // max_part)
    step = -(-(end - start) // count)
    return [Segment(source, offset, min(offset + step, end)) for offset in range(start, end, step)]

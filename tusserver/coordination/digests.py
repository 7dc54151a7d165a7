"""Whole-file digests hashed as the bytes arrive (issue 21), so that a declared digest is checked without
reading the file again: one running hash per upload that this process has received in order so far.

A running hash is only ever used at the offset it has reached, for the upload it was started for: an upload
that moved on in another process (several instances), after a restart, or after an append whose bytes were
not all recorded, has none that fits, and its digest is read back from the storage once its last byte is in.
"""

from __future__ import annotations

from collections import OrderedDict

from tusserver.protocol.checksums import Hasher, new_hasher
from tusserver.protocol.model import UploadInfo

__all__ = ["RunningDigest", "RunningDigests"]

# Entries are a few hundred bytes (a hash state); past this many, the least recently used goes (its upload
# is then checked by a re-read). Far above the uploads one process receives at once.
CAPACITY = 4096


class RunningDigest:
    """The hash of an upload's first `offset` bytes, fed as they pass (a `Hasher` that counts)."""

    __slots__ = ("algorithm", "created_at", "hasher", "offset", "upload_id")

    def __init__(self, info: UploadInfo, algorithm: str, hasher: Hasher, offset: int) -> None:
        self.upload_id, self.created_at, self.algorithm = info.id, info.created_at, algorithm
        self.hasher, self.offset = hasher, offset

    def update(self, data: bytes | memoryview, /) -> None:
        self.hasher.update(data)
        self.offset += len(data)

    def digest(self) -> bytes:
        return self.hasher.digest()

    def copy(self) -> RunningDigest:
        twin = RunningDigest.__new__(RunningDigest)
        twin.upload_id, twin.created_at, twin.algorithm = self.upload_id, self.created_at, self.algorithm
        twin.hasher, twin.offset = self.hasher.copy(), self.offset
        return twin

    def fits(self, info: UploadInfo, algorithm: str) -> bool:
        """Whether this hash covers exactly the recorded bytes of `info` (the same upload: an id reused after
        its removal has another creation time)."""
        same = (self.upload_id, self.created_at, self.algorithm) == (info.id, info.created_at, algorithm)
        return same and self.offset == info.offset


class RunningDigests:
    """The running hashes of one process, by upload id, least recently used first."""

    def __init__(self, capacity: int = CAPACITY) -> None:
        self._capacity = capacity
        self._running: OrderedDict[str, RunningDigest] = OrderedDict()

    def take(self, info: UploadInfo, algorithm: str) -> RunningDigest | None:
        """The running hash that goes on from `info`'s recorded offset, taken out until `keep` puts one back;
        a new one at offset 0; None if this process has not hashed every byte up to the offset."""
        running = self._running.pop(info.id, None)
        if running is not None and running.fits(info, algorithm):
            return running
        return RunningDigest(info, algorithm, new_hasher(algorithm), 0) if info.offset == 0 else None

    def keep(self, running: RunningDigest) -> None:
        """Keep `running` for the upload's next append."""
        self._running[running.upload_id] = running
        self._running.move_to_end(running.upload_id)
        while len(self._running) > self._capacity:
            self._running.popitem(last=False)

    def __len__(self) -> int:
        return len(self._running)

    def __contains__(self, upload_id: object) -> bool:
        return upload_id in self._running

"""The state-store contract: where upload records live (embedded SQLite, memory, later Redis)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime
from typing import Protocol, runtime_checkable

from tusserver.coordination.locking import Lease
from tusserver.protocol.model import UploadInfo

__all__ = ["SupportsPeek", "UploadStateStore"]


class UploadStateStore(Protocol):
    """Persists `UploadInfo` records. Writers hold the upload's lock, so records need no merging."""

    async def create(self, info: UploadInfo) -> None:
        """Store a new record.

        Raises:
            UploadExistsError: a record with this id exists.
        """
        ...

    async def get(self, upload_id: str) -> UploadInfo:
        """Load a record.

        Raises:
            UploadNotFoundError: no record with this id.
        """
        ...

    async def save(self, info: UploadInfo, *, lease: Lease | None = None) -> None:
        """Replace an existing record atomically; the caller holds the lock for `info.id`.

        Args:
            info: the new record.
            lease: the caller's lease; a store whose locks can be lost (Redis) saves only while the
                lease still holds the lock (a fencing check), so a former holder cannot record.

        Raises:
            UploadNotFoundError: the record was deleted meanwhile (a save never resurrects it).
            UploadLockedError: the lease no longer holds the lock.
        """
        ...

    async def delete(self, upload_id: str) -> None:
        """Remove a record; succeeds if it is already gone."""
        ...

    def expiring(self, before: datetime) -> AsyncIterator[str]:
        """The ids of uploads whose `expires_at` is at or before `before` (for cleanup)."""
        ...

    async def aclose(self) -> None:
        """Release connections and files."""
        ...


@runtime_checkable
class SupportsPeek(Protocol):
    """Stores that keep the locks too (Redis) and can read a record with its lock in one round trip."""

    async def peek(self, upload_id: str) -> tuple[UploadInfo, bool]:
        """The record of `upload_id` and whether its lock is held right now.

        Raises:
            UploadNotFoundError: no record with this id.
        """
        ...

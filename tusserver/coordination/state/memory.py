"""In-process state for tests and throwaway servers: lost when the process exits."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from tusserver.coordination.locking import Lease
from tusserver.protocol.errors import UploadExistsError, UploadNotFoundError
from tusserver.protocol.model import UploadInfo

__all__ = ["MemoryStateStore"]


class MemoryStateStore:
    """Keeps records in a dict (see `UploadStateStore`)."""

    def __init__(self) -> None:
        self._records: dict[str, UploadInfo] = {}

    async def create(self, info: UploadInfo) -> None:
        """Store a new record; raises UploadExistsError for a duplicate id."""
        if info.id in self._records:
            raise UploadExistsError()
        self._records[info.id] = info

    async def get(self, upload_id: str) -> UploadInfo:
        """Load a record; raises UploadNotFoundError."""
        try:
            return self._records[upload_id]
        except KeyError:
            raise UploadNotFoundError() from None

    async def save(self, info: UploadInfo, *, lease: Lease | None = None) -> None:
        """Replace a record; raises UploadNotFoundError if it was deleted."""
        if info.id not in self._records:
            raise UploadNotFoundError()
        self._records[info.id] = info

    async def delete(self, upload_id: str) -> None:
        """Forget a record."""
        self._records.pop(upload_id, None)

    async def expiring(self, before: datetime) -> AsyncIterator[str]:
        """Ids of records that expire at or before `before`."""
        for info in list(self._records.values()):
            if info.is_expired(before):
                yield info.id

    async def aclose(self) -> None:
        """Nothing to release."""

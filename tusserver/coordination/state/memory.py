"""In-process state for tests and throwaway servers: lost when the process exits, hook outbox included."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime, timedelta

from tusserver.coordination.locking import Lease
from tusserver.coordination.state.listing import Position, select
from tusserver.coordination.state.outbox import OutboxEvent, oldest_first
from tusserver.protocol.errors import UploadExistsError, UploadNotFoundError
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["MemoryStateStore"]


class MemoryStateStore:
    """Keeps records and the hook outbox in dicts (see `UploadStateStore`, `SupportsListing` and `SupportsOutbox`)."""

    def __init__(self) -> None:
        self._records: dict[str, UploadInfo] = {}
        self._outbox: dict[str, OutboxEvent] = {}

    def _record(self, events: Sequence[OutboxEvent]) -> None:
        for event in events:
            self._outbox.setdefault(event.id, event)

    async def create(self, info: UploadInfo, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Store a new record and its events; raises UploadExistsError for a duplicate id."""
        if info.id in self._records:
            raise UploadExistsError()
        self._records[info.id] = info
        self._record(events)

    async def get(self, upload_id: str) -> UploadInfo:
        """Load a record; raises UploadNotFoundError."""
        try:
            return self._records[upload_id]
        except KeyError:
            raise UploadNotFoundError() from None

    async def save(self, info: UploadInfo, *, lease: Lease | None = None, events: Sequence[OutboxEvent] = ()) -> None:
        """Replace a record and record its events; raises UploadNotFoundError if it was deleted."""
        if info.id not in self._records:
            raise UploadNotFoundError()
        self._records[info.id] = info
        self._record(events)

    async def delete(self, upload_id: str, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Forget a record; its events are recorded if it was there."""
        if self._records.pop(upload_id, None) is not None:
            self._record(events)

    async def expiring(self, before: datetime) -> AsyncIterator[str]:
        """Ids of records that expire at or before `before`."""
        for info in list(self._records.values()):
            if info.is_expired(before):
                yield info.id

    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        state: UploadState | None = None,
        before: Position | None = None,
        limit: int = 100,
    ) -> list[UploadInfo]:
        """One page of records (see `SupportsListing`), by a scan of every record: fine for what this store is."""
        return select(self._records.values(), owner=owner, state=state, before=before, limit=limit)

    async def outbox_due(self, now: datetime, *, limit: int, claim_for: float) -> list[OutboxEvent]:
        """Claim due events (see `SupportsOutbox.outbox_due`); a stable sort keeps ties in recording order."""
        due = sorted((event for event in self._outbox.values() if event.not_before <= now), key=_not_before)
        until = now + timedelta(seconds=claim_for)
        claimed = [
            event.model_copy(update={"not_before": until, "attempts": event.attempts + 1}) for event in due[:limit]
        ]
        self._outbox.update((event.id, event) for event in claimed)
        return oldest_first(claimed)

    async def outbox_done(self, *event_ids: str) -> None:
        """Remove events."""
        for event_id in event_ids:
            self._outbox.pop(event_id, None)

    async def outbox_resume(self, now: datetime) -> None:
        """Nothing to end: no earlier process left anything here."""

    async def outbox_retry(self, event_id: str, not_before: datetime) -> None:
        """Make an event due at `not_before`."""
        if (event := self._outbox.get(event_id)) is not None:
            self._outbox[event_id] = event.model_copy(update={"not_before": not_before})

    async def aclose(self) -> None:
        """Nothing to release."""


def _not_before(event: OutboxEvent) -> datetime:
    return event.not_before

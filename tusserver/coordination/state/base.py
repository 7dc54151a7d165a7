"""The state-store contract: where upload records live (embedded SQLite, memory, Redis), and the hook
outbox they keep with them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Protocol, runtime_checkable

from tusserver.coordination.locking import Lease
from tusserver.coordination.state.listing import Position
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["SupportsListing", "SupportsOutbox", "SupportsPeek", "UploadStateStore"]


class UploadStateStore(Protocol):
    """Persists `UploadInfo` records. Writers hold the upload's lock, so records need no merging."""

    async def create(self, info: UploadInfo, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Store a new record.

        Args:
            info: the record.
            events: hook events recorded in the outbox in the same atomic step, only if the record is.

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

    async def save(self, info: UploadInfo, *, lease: Lease | None = None, events: Sequence[OutboxEvent] = ()) -> None:
        """Replace an existing record atomically; the caller holds the lock for `info.id`.

        Args:
            info: the new record.
            lease: the caller's lease; a store whose locks can be lost (Redis) saves only while the
                lease still holds the lock (a fencing check), so a former holder cannot record.
            events: hook events recorded in the same atomic step, only if the record is saved (a save
                refused for any of the reasons below records none).

        Raises:
            UploadNotFoundError: the record was deleted meanwhile (a save never resurrects it).
            UploadLockedError: the lease no longer holds the lock.
            OffsetMismatchError: (a store shared by instances) the stored offset is ahead of this one.
        """
        ...

    async def delete(self, upload_id: str, *, events: Sequence[OutboxEvent] = ()) -> None:
        """Remove a record; succeeds if it is already gone.

        Args:
            upload_id: the record's id.
            events: hook events recorded in the same atomic step, only if this call removed the record
                (whoever removed it first recorded theirs).
        """
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


@runtime_checkable
class SupportsListing(Protocol):
    """Stores that list their records for the status API (all of tusserver's), from indexes that each
    `create`, `save` and `delete` keeps in step with the records, in the same atomic step."""

    async def list_uploads(
        self,
        *,
        owner: str | None = None,
        state: UploadState | None = None,
        before: Position | None = None,
        limit: int = 100,
    ) -> list[UploadInfo]:
        """One page of records, newest first (`tusserver.coordination.state.listing`).

        Args:
            owner: only the records this principal owns; None for every record, ownerless ones included.
            state: only the records in this state, as `current_state` reads it; None for every state.
            before: only the records strictly before this position (the previous page's last); None from
                the newest.
            limit: the most records returned (at least 1).

        Returns:
            The records, ordered by (created_at, id) descending: `limit` of them unless fewer match.
        """
        ...


@runtime_checkable
class SupportsOutbox(Protocol):
    """Stores that keep a hook outbox (all of tusserver's): events recorded by `create`, `save` and `delete`
    wait here until a deliverer has delivered them, across restarts.

    Delivery is at least once: a deliverer claims events for a while (`outbox_due`); if it neither finishes
    (`outbox_done`) nor reschedules them (`outbox_retry`) before the claim ends, as when it crashed, they are
    due again for any deliverer. Deliverers on several instances sharing one store never hold a claim on the
    same event at once.
    """

    async def outbox_due(self, now: datetime, *, limit: int, claim_for: float) -> list[OutboxEvent]:
        """Claim up to `limit` events due at `now` (`not_before <= now`), earliest `not_before` first.

        Each one's `not_before` moves to `now + claim_for` and its `attempts` grow by one, atomically,
        so no other caller gets it until then.

        Args:
            now: the caller's current time (timezone-aware); claims of deliverers whose clocks differ
                end early or late by the difference.
            limit: the most events to claim.
            claim_for: seconds the caller has to deliver them.

        Returns:
            The claimed events as they are now stored (attempts and not_before updated), ordered by
            `created_at`.
        """
        ...

    async def outbox_done(self, *event_ids: str) -> None:
        """Remove events (delivered, or given up), all in one step; ids that are gone are skipped.

        Args:
            event_ids: the events' ids.
        """
        ...

    async def outbox_resume(self, now: datetime) -> None:
        """A deliverer starts: end the claims that only an earlier process can hold, so that what it claimed
        and did not deliver before it stopped is due at once. A store that several processes share (Redis)
        keeps every claim: the process that holds one may be running.

        Args:
            now: the current time (timezone-aware).
        """
        ...

    async def outbox_retry(self, event_id: str, not_before: datetime) -> None:
        """Make an event due again at `not_before`, keeping its attempts; nothing happens if it is gone.

        Args:
            event_id: the event's id.
            not_before: when it is due (timezone-aware).
        """
        ...

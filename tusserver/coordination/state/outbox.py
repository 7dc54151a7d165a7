"""The hook outbox's record: an event recorded with the change that causes it, delivered later.

A state store writes events in the same step as the record change (`create`, `save`, `delete` with
`events=`), so a crash can lose neither one without the other; a background deliverer takes them with
`SupportsOutbox.outbox_due`. Times are kept as whole microseconds since the epoch, exact in a SQLite
INTEGER and in a Redis sorted-set score (a double holds integers up to 2**53, the year 2255 in µs).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime, timedelta

from pydantic import AwareDatetime, BaseModel

__all__ = ["OutboxEvent", "from_micros", "micros", "oldest_first"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)


class OutboxEvent(BaseModel, frozen=True):
    """One hook event waiting for delivery.

    Attributes:
        id: unique (32 hex characters); receivers drop duplicates by it. Recording an id
            that the outbox already holds is a no-op.
        event: the hook event's name, e.g. "post-finish".
        upload_id: the upload it is about.
        payload: the JSON request the receiver gets, as sent.
        created_at: when it was recorded (UTC).
        attempts: how many times a deliverer has claimed it (`outbox_due` adds one).
        not_before: the earliest time it is due again: its first try, a retry, or the end of a claim.
    """

    id: str
    event: str
    upload_id: str
    payload: str
    created_at: AwareDatetime
    attempts: int = 0
    not_before: AwareDatetime


def micros(moment: datetime) -> int:
    """Whole microseconds since the epoch (exact integer arithmetic; `moment` must be timezone-aware)."""
    return (moment - _EPOCH) // _MICROSECOND


def from_micros(value: int) -> datetime:
    """The UTC datetime `micros` made `value` from."""
    return _EPOCH + value * _MICROSECOND


def oldest_first(events: Iterable[OutboxEvent]) -> list[OutboxEvent]:
    """Events in the order they were recorded (by `created_at`; a stable sort keeps ties as they came)."""
    return sorted(events, key=lambda event: event.created_at)

"""Listing upload records for the status API (issue 21): newest first, by owner and state, page by page.

Records are ordered by (created_at, id), both descending, and a page continues strictly after the position of
the previous page's last record: a keyset, not an offset. Uploads created while a client pages through the
list are newer than every page it has seen, so they never shift a later page (an offset would repeat records)
and the client sees each older record exactly once. The id breaks ties between records created in the same
microsecond; ids are ASCII (`UPLOAD_ID`), so every store compares them alike (SQLite's BINARY collation,
Redis's byte-wise lexicographic order, Python's code points).

The state a record is listed under is `current_state`: what the status API shows.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC

from tusserver.coordination.state.outbox import micros
from tusserver.protocol.lifecycle import current_state
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = ["Position", "matching", "position_of", "select"]


@dataclass(frozen=True, slots=True, order=True)
class Position:
    """Where a record sits in the listing; a page lists the records strictly before one.

    Attributes:
        created: the record's `created_at`, whole microseconds since the epoch.
        upload_id: the record's id.
    """

    created: int
    upload_id: str


def position_of(info: UploadInfo) -> Position:
    """The record's position in the listing."""
    created = info.created_at if info.created_at.tzinfo else info.created_at.replace(tzinfo=UTC)
    return Position(micros(created), info.id)


def matching(info: UploadInfo, *, owner: str | None, state: UploadState | None) -> bool:
    """Whether a listing for `owner` (None: any) and `state` (None: any) includes the record."""
    return (owner is None or info.owner == owner) and (state is None or current_state(info) is state)


def select(
    records: Iterable[UploadInfo],
    *,
    owner: str | None = None,
    state: UploadState | None = None,
    before: Position | None = None,
    limit: int = 100,
) -> list[UploadInfo]:
    """One page of `records` as `SupportsListing.list_uploads` defines it, by a full scan: for the memory
    store, and as the reference the other stores are tested against."""
    kept = (
        info
        for info in records
        if matching(info, owner=owner, state=state) and (before is None or position_of(info) < before)
    )
    return sorted(kept, key=position_of, reverse=True)[:limit]

"""TusContext: the configuration and pluggable parts every handler works with."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from storage_backends.base import StorageBackend, SupportsLimits
from tusserver.coordination.hooks.dispatch import Hooks

if TYPE_CHECKING:
    from tusserver.coordination.hooks.delivery import Deliverer
    from tusserver.coordination.hooks.progress import ProgressTicker
from tusserver.coordination.digests import RunningDigests
from tusserver.coordination.locking import Locker
from tusserver.coordination.state.base import UploadStateStore
from tusserver.protocol import rules
from tusserver.protocol.model import Extension
from tusserver.protocol.urls import TrustedProxies
from tusserver.settings import Settings

__all__ = ["TusContext", "utcnow"]


def utcnow() -> datetime:
    """The current time in UTC: the default clock."""
    return datetime.now(UTC)


def _new_upload_id() -> str:
    # 128 random bits: unguessable upload URLs, as the RUFH draft recommends (PROTOCOL.md item 37).
    return secrets.token_hex(16)


@dataclass
class TusContext:
    """What the endpoints work with: configuration and the pluggable parts."""

    settings: Settings
    storage: StorageBackend
    state: UploadStateStore
    locker: Locker
    extensions: tuple[Extension, ...]
    trusted_proxies: TrustedProxies
    hooks: Hooks = field(default_factory=Hooks)
    deliverer: Deliverer | None = None  # of the outbox: post-create, post-finish, post-terminate
    progress: ProgressTicker | None = None  # post-receive during PATCHes, when it is on
    clock: Callable[[], datetime] = field(default=utcnow)
    new_upload_id: Callable[[], str] = field(default=_new_upload_id)
    # partial id -> pending final ids, so a final is joined the moment its last partial finishes.
    # Only a shortcut: after a restart, the next HEAD or GET of the final joins it.
    waiting_finals: dict[str, set[str]] = field(default_factory=dict)
    # Whole-file digests hashed as bytes arrive in order (issue 21), so a declared digest needs no re-read.
    running_digests: RunningDigests = field(default_factory=RunningDigests)
    # Set when the server drains for a shutdown (SIGTERM): new requests get 503 (`tusserver.pipeline.operations`).
    draining: bool = False

    def expiry(self, now: datetime, *, complete: bool, partial: bool = False) -> datetime | None:
        """When an upload expires if it was created, appended to or completed at `now` (`rules.expiry`)."""
        settings = self.settings
        return rules.expiry(
            now, complete=complete, expiration=settings.expiration, retention=settings.retention, partial=partial
        )

    def tombstone_expiry(self, now: datetime) -> datetime | None:
        """Until when the record of an upload whose bytes are removed at `now` is kept; None: not at all."""
        seconds = self.settings.tombstone_retention
        return None if seconds is None else now + timedelta(seconds=seconds)

    def __post_init__(self) -> None:
        # Decided once: an isinstance check against a runtime Protocol costs microseconds per request.
        storage, configured = self.storage, self.settings.max_size
        self._max_size = self._max_deferred = configured
        if isinstance(storage, SupportsLimits):
            self._max_size = _smallest(configured, storage.max_length)
            self._max_deferred = _smallest(configured, storage.max_deferred_length)

    def max_size(self, *, deferred: bool = False) -> int | None:
        """The largest upload: the configured limit, capped by the storage's largest object, or for a
        deferred-length upload by its largest deferred length (its part size was fixed blind)."""
        return self._max_deferred if deferred else self._max_size

    async def aclose(self) -> None:
        """Close the state store and the storage."""
        await self.hooks.aclose()
        await self.state.aclose()
        await self.storage.aclose()


def _smallest(*limits: int | None) -> int | None:
    known = [limit for limit in limits if limit is not None]
    return min(known) if known else None

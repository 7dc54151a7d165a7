"""A controllable clock and an app built on it, for expiration tests without sleeping."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from starlette.applications import Starlette

from storage_backends.base import StorageBackend
from tusserver import Settings, create_app
from tusserver.coordination.state.base import UploadStateStore

START = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # a Sunday
LIFETIME = 60


class FakeClock:
    """A controllable UTC clock for `create_app(clock=...)`: time moves only when a test advances it."""

    def __init__(self, now: datetime = START) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


def clocked_app(
    clock: FakeClock, storage: StorageBackend, state: UploadStateStore, tmp: Path, **settings: Any
) -> Starlette:
    """An app on the given backends and clock; `expiration` defaults to LIFETIME seconds."""
    configured = Settings(data_dir=tmp / "data", **({"expiration": LIFETIME} | settings))
    return create_app(configured, storage=storage, state=state, clock=clock)

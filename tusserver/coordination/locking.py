"""Per-upload locks: one request at a time may touch an upload's data and record.

A request that wants a busy upload first asks the holder to release (tusd's lock-release
request): a PATCH holding the lock stops reading its body, stores what arrived and lets go.
If the holder does not let go within the timeout, the waiter gets 423 Locked, the one status
on which tus-js-client retries a resume HEAD (STYLE.md B.5).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Protocol, runtime_checkable

import anyio
from anyio.abc import TaskStatus

from tusserver.protocol.errors import UploadLockedError

__all__ = ["Lease", "Locker", "MemoryLease", "MemoryLocker", "SupportsServe"]


class Lease(Protocol):
    """A held lock; tells its holder when another request wants the upload."""

    @property
    def release_requested(self) -> bool:
        """True once another request asked for this upload."""
        ...

    def on_release_request(self, callback: Callable[[], None]) -> None:
        """Call `callback` when another request asks for the upload (at once if it already did)."""
        ...


class Locker(Protocol):
    """Hands out per-upload leases."""

    async def held(self, upload_id: str) -> bool:
        """True while some request holds the lock on `upload_id`."""
        ...

    def acquire(self, upload_id: str, *, timeout: float) -> AbstractAsyncContextManager[Lease]:
        """Hold the lock on `upload_id` for the `async with` block.

        Asks the current holder to release, then waits up to `timeout` seconds.

        Raises:
            UploadLockedError: the lock was not free within `timeout` (423).
        """
        ...


@runtime_checkable
class SupportsServe(Protocol):
    """Lockers with work to do for the app's lifetime (the Redis locker's shared subscription)."""

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled; with `TaskGroup.start`, report when ready."""
        ...


class MemoryLease:
    """A lease of `MemoryLocker`."""

    def __init__(self) -> None:
        self._released: anyio.Event | None = None  # made by the first waiter: most leases never have one
        self._done = False
        self._release_requested = False
        self._callbacks: list[Callable[[], None]] = []

    @property
    def release_requested(self) -> bool:
        """True once another request asked for this upload."""
        return self._release_requested

    def on_release_request(self, callback: Callable[[], None]) -> None:
        """Register `callback` for a release request."""
        if self._release_requested:
            callback()
        else:
            self._callbacks.append(callback)

    async def wait_released(self) -> None:
        """Wait until the holder has let go."""
        if not self._done:
            if self._released is None:
                self._released = anyio.Event()
            await self._released.wait()

    def mark_released(self) -> None:
        """Wake the waiters: the holder has let go."""
        self._done = True
        if self._released is not None:
            self._released.set()

    def request_release(self) -> None:
        """Ask the holder to let go (idempotent)."""
        if not self._release_requested:
            self._release_requested = True
            for callback in self._callbacks:
                callback()


class MemoryLocker:
    """Locks within one server process (see `Locker`)."""

    def __init__(self) -> None:
        self._held: dict[str, MemoryLease] = {}

    async def held(self, upload_id: str) -> bool:
        """True while a request in this process holds the lock on `upload_id`."""
        return upload_id in self._held

    @asynccontextmanager
    async def acquire(self, upload_id: str, *, timeout: float) -> AsyncIterator[MemoryLease]:
        """Hold the lock on `upload_id` (see `Locker.acquire`)."""
        lease = await self._take(upload_id, timeout)
        try:
            yield lease
        finally:
            del self._held[upload_id]
            lease.mark_released()

    async def _take(self, upload_id: str, timeout: float) -> MemoryLease:
        if upload_id not in self._held:  # the common case: no timer needed
            lease = self._held[upload_id] = MemoryLease()
            return lease
        with anyio.move_on_after(timeout):
            while (holder := self._held.get(upload_id)) is not None:
                holder.request_release()
                await holder.wait_released()
            lease = self._held[upload_id] = MemoryLease()
            return lease
        raise UploadLockedError()

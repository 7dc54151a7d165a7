"""When one append records its progress (`Checkpoints`): after so many bytes or so many seconds."""

from __future__ import annotations

import anyio

from storage_backends.base import Checkpoints, StorageRef

__all__ = ["CheckpointClock"]


class CheckpointClock:
    """The next checkpoint of one append that started at `position`; without progress checkpoints, never due."""

    def __init__(self, checkpoints: Checkpoints | None, position: int) -> None:
        self.checkpoints = checkpoints
        self._next = 0
        self.deadline: float | None = None
        self.passed(position)

    def passed(self, position: int) -> None:
        """A checkpoint (or the start) at `position`: the next one is a full interval away."""
        checkpoints = self.checkpoints
        if checkpoints is not None and checkpoints.every is not None and checkpoints.interval is not None:
            self._next = position + checkpoints.every
            self.deadline = anyio.current_time() + checkpoints.interval

    def bytes_left(self, position: int) -> int | None:
        """Bytes to write from `position` before the next checkpoint is due (None: no checkpoints)."""
        return None if self.deadline is None else max(1, self._next - position)

    def due(self, position: int) -> bool:
        """True when a checkpoint should record `position` now."""
        if self.deadline is None:
            return False
        return position >= self._next or anyio.current_time() >= self.deadline

    async def record(self, ref: StorageRef, position: int) -> None:
        """Record `position` in `ref` (a fenced save; raises once the lock is lost) and restart the clock."""
        assert self.checkpoints is not None
        await self.checkpoints.record(ref, position)
        self.passed(position)

"""The body side of the stores that keep each piece in memory until it is sent (S3 parts, Azure blocks): filling
the buffer of the piece being filled, from the body's pieces or, where the body can (`base.ReadsInto`:
tusserver's on uvicorn), read into it straight from the socket, and handing each full piece on.

Buffers are kept for the next pieces (`BufferPool`): a new buffer of a piece's size is mapped afresh by glibc
(it is above the mmap threshold, `serving/_malloc`) and faults in page by page as it is first filled, 2,048
faults for 8 MiB, about a tenth of what receiving the piece costs; a kept one is filled without any.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Generic, TypeVar

import anyio

from storage_backends._checkpoint import CheckpointClock
from storage_backends.base import ReadsInto

__all__ = ["BufferPool", "Filler"]

B = TypeVar("B")


class BufferPool(Generic[B]):
    """Piece buffers kept for reuse, at most `keep` of them; `make(size)` makes one, `size_of` tells its size."""

    def __init__(self, keep: int, make: Callable[[int], B], size_of: Callable[[B], int]) -> None:
        self._keep, self._make, self._size_of = keep, make, size_of
        self._free: list[B] = []

    def take(self, size: int) -> B:
        """A buffer of exactly `size` bytes (their values undefined)."""
        for index, buffer in enumerate(self._free):
            if self._size_of(buffer) == size:
                return self._free.pop(index)
        return self._make(size)

    def give_back(self, buffer: B) -> bool:
        """Keep `buffer` for `take`; False when `keep` buffers are kept already (the caller frees it)."""
        if len(self._free) >= self._keep:
            return False
        self._free.append(buffer)
        return True


class Filler(ABC):
    """Fills the buffer of the piece being filled (`_piece`, of which `filled` bytes are in) and hands each full
    piece on (`_piece_full`), recording progress when `clock` says so."""

    position: int  # the upload's bytes up to the end of what is in the buffer
    filled: int
    clock: CheckpointClock
    checkpointing: bool  # a checkpoint is being recorded
    new_bytes: bool  # bytes came since the last record

    @property
    @abstractmethod
    def piece_size(self) -> int:
        """The upload's piece size (its last piece may be shorter)."""

    @abstractmethod
    def _piece(self) -> memoryview:
        """The buffer of the piece being filled, writable."""

    @abstractmethod
    async def _piece_full(self) -> None:
        """Hand the full piece on, and take the next buffer."""

    @abstractmethod
    def _checkpoint_soon(self) -> None:
        """Record the progress at this piece boundary, while the body goes on."""

    @abstractmethod
    async def checkpoint(self) -> None:
        """Record the progress now."""

    @abstractmethod
    def raise_failure(self) -> None:
        """Raise what failed in the pieces handed on, if anything did."""

    async def write(self, chunk: bytes) -> None:
        """Take the body's next piece. Bytes past the upload's length (a full short last piece) are not taken: only
        a writer whose lock lapsed sends them (the pipeline ends a body at the length), and its record is refused."""
        view = memoryview(chunk)
        while view:
            with self._piece() as piece:
                count = min(len(view), len(piece) - self.filled)
                piece[self.filled : self.filled + count] = view[:count]
            if count == 0:
                break
            view = view[count:]
            await self._filled(count)
        await self._checkpoint_if_late()

    async def fill(self, body: ReadsInto) -> None:
        """Have the body read into the piece buffers until it ends (or into the rest of a short last piece)."""
        while True:
            with self._piece() as piece:
                count = await body.read_into(piece[self.filled : self.piece_size], until=self.clock.deadline)
            if count == 0:
                return
            await self._filled(count)
            self.raise_failure()
            await self._checkpoint_if_late()

    async def _filled(self, count: int) -> None:
        """`count` more bytes are in the buffer: a full piece is handed on, and progress recorded when due."""
        self.filled += count
        self.position += count
        self.new_bytes = self.new_bytes or count > 0
        if self.filled == self.piece_size:
            await self._piece_full()
            if self.clock.due(self.position) and not self.checkpointing:
                self._checkpoint_soon()

    async def _checkpoint_if_late(self) -> None:
        if self.clock.deadline is not None and anyio.current_time() >= self.clock.deadline and not self.checkpointing:
            await self.checkpoint()  # a slow body: at most a piece's worth is waiting, not worth a task

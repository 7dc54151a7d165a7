"""The write side of an Azure append: the writer that cuts a request body into staged blocks (see
`storage_backends.azure.layout` for the layout).

Each block is filled in a buffer of its size (`_filling.Filler`: from the body's pieces, or read into it straight
from the socket), kept for the next blocks once staged (`AzureBlobStorage.buffers`)."""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

import anyio
from anyio.abc import TaskGroup

from storage_backends._checkpoint import CheckpointClock
from storage_backends._piece_writer import PieceWriter
from storage_backends.azure.calls import Body
from storage_backends.azure.layout import INLINE_MAX, TOKEN_LENGTH, Blob, TailHeader, block_id
from storage_backends.errors import BlobNotFoundError, StorageError

if TYPE_CHECKING:
    from storage_backends.azure.store import AzureBlobStorage

__all__ = ["BlockWriter"]


class BlockWriter(PieceWriter[Blob]):
    """One append: fills block buffers from the body, stages each full one under an ID of this writer's own,
    and records progress through tails of its own."""

    def __init__(self, storage: AzureBlobStorage, blob: Blob, offset: int, clock: CheckpointClock) -> None:
        self.storage, self.blob, self.position, self.clock = storage, blob, offset, clock
        self.token = secrets.token_hex(TOKEN_LENGTH // 2)
        self.before = TailHeader()  # the blocks staged before this append, by earlier writers
        self.first = 0  # the index of this writer's first block
        self.count = 0  # blocks before the one being filled (staged, or staging)
        self.recorded = (blob, offset)  # what the record holds: the tail that has every byte to here
        self.buffer: Body | None = None  # the block being filled (`_reserve_buffer`), its first `filled` bytes
        self.filled = 0
        self.reserved = 0
        self.tasks: TaskGroup | None = None
        self.slots = anyio.Semaphore(storage.options.block_concurrency)
        self.failure: StorageError | None = None
        self.new_bytes = False
        self.in_flight: dict[int, anyio.Event] = {}  # block index -> set once that block is staged
        self.checkpointing = False
        self._recording = anyio.Lock()

    async def load_tail(self) -> None:
        """Start from the recorded tail: the blocks before it, and its bytes up to `position` (leaving out any
        unacknowledged rest). The tail is read even at offset 0: it is what says the upload still exists (an inline
        one is in the record itself)."""
        if self.blob.tail is None:
            raise BlobNotFoundError(f"{self.blob.key} is finished")
        await self._reserve_buffer()
        header, tail = await self.storage.read_tail(self.blob)
        kept = self.position - header.count * self.blob.block_size
        if not 0 <= kept <= len(tail):
            raise StorageError(f"the tail of {self.blob.key} holds fewer bytes than the recorded offset")
        self.before, self.first = header, header.count
        self.count = header.count
        self._piece()[:kept] = tail[:kept]
        self.filled = kept

    async def _reserve_buffer(self) -> None:
        size = block_size = self.blob.block_size
        if self.blob.length is not None:  # the last block may be shorter
            size = min(size, self.blob.length - self.position // block_size * block_size)
        self.reserved = await self.storage.budget.acquire(max(size, 1))
        self.buffer, self.filled = self.storage.buffers.take(size), 0

    @property
    def piece_size(self) -> int:
        return self.blob.block_size

    @property
    def pieces_handed_on(self) -> int:
        return self.count

    def _piece(self) -> memoryview:
        """The buffer of the block being filled, as a writable view (released before the buffer is sent)."""
        assert self.buffer is not None
        return self.buffer.getbuffer()

    async def _piece_full(self) -> None:
        """Stage the full block in the background (at most `block_concurrency` at once)."""
        await self.slots.acquire()
        data, reserved, index = self.buffer, self.reserved, self.count
        assert data is not None
        self.buffer, self.reserved = None, 0
        self.count += 1
        self.in_flight[index] = anyio.Event()
        assert self.tasks is not None
        self.tasks.start_soon(self._stage, index, data, reserved)
        await self._reserve_buffer()

    async def _stage(self, index: int, data: Body, reserved: int) -> None:
        staged = False
        try:
            await self.storage.stage(self.blob, block_id(index, self.token), data)
            staged = True
        except StorageError as exc:
            self._fail(exc)
        finally:
            # A call that failed or was cancelled may still have the buffer in an HTTP client's hands: not reused.
            if not (staged and self.storage.buffers.give_back(data)):
                data.free()
            self.storage.budget.release(reserved)
            self.slots.release()
            self.in_flight.pop(index).set()

    async def _record(self, blob: Blob, position: int) -> None:
        checkpoints = self.clock.checkpoints
        if checkpoints is None:
            return
        async with self._recording:
            await checkpoints.record(blob.ref(), position)
            self.recorded = (blob, position)

    async def finish(self) -> tuple[Blob, int]:
        """Once every block has answered: the upload (with this writer's last tail) and its length."""
        if not self.new_bytes:
            return self.recorded
        with self._piece() as block:
            return await self._write_tail(self.count, block[: self.filled]), self.position

    async def _write_tail(self, count: int, rest: bytes | memoryview) -> Blob:
        header = self.before.extended(self.token, count - self.first)
        position = count * self.blob.block_size + len(rest)
        name = self.blob.tail_key(count, self.token, position)
        encoded = header.encode()
        if not rest and len(encoded) <= INLINE_MAX:  # no bytes to keep in Azure: the record carries it
            return self.blob.with_tail(name, inline=encoded)
        with Body(encoded) as body:  # the header, then the rest: one copy of the rest, not two
            body.seek(0, 2)
            body.write(rest)
            await self.storage.put(name, body)
            body.free()
        return self.blob.with_tail(name)

    def release(self) -> None:
        self.storage.budget.release(self.reserved)
        self.reserved = 0
        if self.buffer is not None and not self.storage.buffers.give_back(self.buffer):
            self.buffer.free()
        self.buffer = None

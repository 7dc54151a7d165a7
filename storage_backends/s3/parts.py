"""The write side of an S3 append: a part buffer sent without copies, and the writer that fills
parts from a request body (see `storage_backends.s3.store` for the layout), in buffers of a part's size
(`_filling.Filler`: from the body's pieces, or read into them straight from the socket), kept for the
next parts once uploaded (`S3Storage.buffers`)."""

from __future__ import annotations

import io
import secrets
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from storage_backends._checkpoint import CheckpointClock
from storage_backends._piece_writer import PieceWriter
from storage_backends.errors import StorageError
from storage_backends.s3.layout import MAX_PARTS, MiB, TailHeader, Upload, tail_key, tail_prefix

if TYPE_CHECKING:
    from storage_backends.s3.store import S3Storage

__all__ = ["BufferReader", "PartWriter"]

DEFAULT_WINDOW_BYTES = 64 * MiB  # part numbers reserved at once without progress checkpoints


class BufferReader(io.RawIOBase):
    """A buffered part as a file that the HTTP client reads piece by piece.

    Given bytes or a bytearray, aiohttp copies the whole body two or three times while sending it
    (slices, a join with the headers, the transport's buffer), so a part would cost ~3x what the
    budget reserved for it. Read in pieces, it costs one piece at a time. Seekable, so botocore can
    rewind it for a retry.
    """

    def __init__(self, data: bytes | bytearray | memoryview) -> None:
        super().__init__()
        self._view = memoryview(data)
        self._position = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        # One copy (RawIOBase.read would copy twice); botocore reads the body this way to sign it.
        end = len(self._view) if size is None or size < 0 else self._position + size
        piece = bytes(self._view[self._position : end])
        self._position += len(piece)
        return piece

    def readinto(self, buffer: Any) -> int:
        piece = self._view[self._position : self._position + len(buffer)]
        buffer[: len(piece)] = piece
        self._position += len(piece)
        return len(piece)

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._position, io.SEEK_END: len(self._view)}[whence]
        self._position = max(0, base + offset)
        return self._position

    def tell(self) -> int:
        return self._position


class PartWriter(PieceWriter[Upload]):
    """One append: fills part buffers from the body, uploads each full one under a part number it
    reserved, and records progress through tails of its own (see `storage_backends.s3.layout`)."""

    def __init__(self, storage: S3Storage, upload: Upload, offset: int, clock: CheckpointClock) -> None:
        self.storage, self.upload, self.position, self.clock = storage, upload, offset, clock
        self.part_start = offset - offset % upload.part_size
        self.parts: list[tuple[int, str]] = []  # (number, ETag) of the full parts, "" while uploading
        self.next_part = self.reserved_until = upload.next_part or 1
        self.recorded = (upload, offset)  # what the record holds: the tail that has every byte to here
        self.token = secrets.token_hex(6)
        self.buffer = bytearray()  # the part being filled (`_reserve_buffer`), its first `filled` bytes
        self.filled = 0
        self.reserved = 0
        self.tasks: TaskGroup | None = None
        self.slots = anyio.Semaphore(storage.options.part_concurrency)
        self.failure: StorageError | None = None
        self.new_bytes = False
        self.in_flight: dict[int, anyio.Event] = {}  # index in `parts` -> set once that part is stored
        self.checkpointing = False
        self._recording = anyio.Lock()  # records go out one at a time, each with every number reserved so far

    async def load_tail(self) -> None:
        """Start from the recorded bytes of the part being filled (leaving out any unacknowledged rest)
        and the numbers and ETags of the parts before it."""
        await self._reserve_buffer()
        if self.position == 0:
            return
        header, _, tail = await self.storage.read_tail(self.upload, self.position)
        kept = self.position - len(header.parts) * self.upload.part_size
        if not 0 <= kept <= len(tail):
            raise StorageError(f"the tail of {self.upload.key} holds fewer bytes than the recorded offset")
        self.parts = list(header.parts)
        self.buffer[:kept] = tail[:kept]
        self.filled = kept
        if self.upload.next_part is None:  # a record from before reservations: parts numbered 1, 2, ...
            self.next_part = self.reserved_until = len(self.parts) + 1

    async def _reserve_buffer(self) -> None:
        size = self.upload.part_size
        if self.upload.length is not None:
            size = min(size, self.upload.length - self.part_start)
        self.reserved = await self.storage.budget.acquire(max(size, 1))
        self.buffer, self.filled = self.storage.buffers.take(size), 0

    @property
    def piece_size(self) -> int:
        return self.upload.part_size

    @property
    def pieces_handed_on(self) -> int:
        return len(self.parts)

    def _piece(self) -> memoryview:
        return memoryview(self.buffer)

    async def _piece_full(self) -> None:
        """Upload the full part in the background (at most `part_concurrency` at once), under a reserved number."""
        if self.next_part >= self.reserved_until:
            await self._reserve_numbers()
        await self.slots.acquire()
        data, reserved, number = self.buffer, self.reserved, self.next_part
        self.buffer, self.reserved = bytearray(), 0
        self.parts.append((number, ""))  # the ETag is filled in when the upload answers
        self.in_flight[len(self.parts) - 1] = anyio.Event()
        self.next_part += 1
        self.part_start += self.upload.part_size
        assert self.tasks is not None
        self.tasks.start_soon(self._upload, len(self.parts) - 1, number, data, reserved)
        await self._reserve_buffer()

    async def _reserve_numbers(self) -> None:
        """Record that part numbers from `next_part` on are this writer's, before it uploads any of them."""
        until = min(self.next_part + self._window(), MAX_PARTS + 1)
        if self.next_part > MAX_PARTS:
            raise StorageError(f"{self.upload.key} has used all {MAX_PARTS} part numbers")
        self.reserved_until = until  # used only once recorded: this writer waits here until then
        await self._record()

    async def _record(self, upload: Upload | None = None, position: int = 0) -> None:
        """`PieceWriter._record`, with every part number reserved so far (None: what is recorded already, for a
        reservation)."""
        checkpoints = self.clock.checkpoints
        if checkpoints is None:
            return
        async with self._recording:
            if upload is None:
                upload, position = self.recorded
            upload = replace(upload, next_part=self.reserved_until)
            await checkpoints.record(upload.ref(), position)
            self.recorded = (upload, position)

    def _window(self) -> int:
        """How many numbers one reservation takes: about one checkpoint's worth of parts."""
        every = self.clock.checkpoints.every if self.clock.checkpoints is not None else None
        return max(1, min(64, (every or DEFAULT_WINDOW_BYTES) // self.upload.part_size))

    async def _upload(self, index: int, number: int, data: bytearray, reserved: int) -> None:
        try:
            self.parts[index] = (number, await self.storage.upload_part(self.upload, number, data))
            # Only then kept: a call that failed or was cancelled may still have it in an HTTP client's hands.
            self.storage.buffers.give_back(data)
        except StorageError as exc:
            self._fail(exc)
        finally:
            del data
            self.storage.budget.release(reserved)
            self.slots.release()
            self.in_flight.pop(index).set()

    async def finish(self) -> tuple[Upload, int]:
        """Once every part upload has answered: the upload (with this writer's last tail) and its length."""
        if not self.new_bytes:
            return self.recorded
        upload = await self._write_tail(len(self.parts), self._rest())
        return replace(upload, next_part=self.next_part), self.position  # done: numbers it did not use are free

    def _rest(self) -> memoryview:
        """The bytes of the part being filled."""
        return memoryview(self.buffer)[: self.filled]

    async def _write_tail(self, count: int, rest: bytes | memoryview) -> Upload:
        name = tail_key(self.upload.key, count + 1, f"{self.token}{count * self.upload.part_size + len(rest):x}")
        await self.storage.put(name, TailHeader(tuple(self.parts[:count])).encode() + rest)
        return replace(self.upload, tail=name.removeprefix(tail_prefix(self.upload.key)))

    def release(self) -> None:
        self.storage.budget.release(self.reserved)
        self.reserved = 0
        if self.buffer:
            self.storage.buffers.give_back(self.buffer)
            self.buffer = bytearray()

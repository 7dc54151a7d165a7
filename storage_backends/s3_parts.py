"""The write side of an S3 append: a part buffer sent without copies, and the writer that fills
parts from a request body (see `storage_backends.s3` for the layout)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING, Any

import anyio
from anyio.abc import TaskGroup

from storage_backends.errors import StorageError
from storage_backends.s3_layout import TailHeader, tail_key

if TYPE_CHECKING:
    from storage_backends.s3 import S3Storage, Upload

__all__ = ["BufferReader", "PartWriter"]


class BufferReader(io.RawIOBase):
    """A buffered part as a file that the HTTP client reads piece by piece.

    Given bytes or a bytearray, aiohttp copies the whole body two or three times while sending it
    (slices, a join with the headers, the transport's buffer), so a part would cost ~3x what the
    budget reserved for it. Read in pieces, it costs one piece at a time. Seekable, so botocore can
    rewind it for a retry.
    """

    def __init__(self, data: bytes | bytearray) -> None:
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


class PartWriter:
    """One append: fills part buffers from the body, uploads each full one, then writes the tail."""

    def __init__(self, storage: S3Storage, upload: Upload, offset: int) -> None:
        self.storage, self.upload, self.position = storage, upload, offset
        self.started_in = self.part_number = offset // upload.part_size + 1
        self.part_start = (self.part_number - 1) * upload.part_size
        self.etags: list[str] = []
        self.buffer = bytearray()
        self.reserved = 0
        self.tasks: TaskGroup | None = None
        self.slots = anyio.Semaphore(storage.options.part_concurrency)
        self.failure: StorageError | None = None
        self.new_bytes = False

    async def load_tail(self) -> int | None:
        """Start from the recorded bytes of the part being filled (dropping any unacknowledged rest)
        and the ETags of the parts before it; returns a tail that is no longer needed, if any."""
        await self._reserve()
        if self.position == 0:
            return None
        source = tail_key(self.upload.key, self.part_number)
        header, _, tail = await self.storage.read_tail(self.upload, self.part_number)
        kept = self.position - self.part_start
        if len(header.etags) != self.part_number - 1 or len(tail) < kept:
            raise StorageError(f"{source} holds fewer bytes than the recorded offset")
        self.etags = list(header.etags)
        self.buffer += tail[:kept]
        return header.started_in if header.started_in < self.part_number else None

    async def _reserve(self) -> None:
        size = self.upload.part_size
        if self.upload.length is not None:
            size = min(size, self.upload.length - self.part_start)
        self.reserved = await self.storage.budget.acquire(max(size, 1))

    async def write(self, chunk: bytes) -> None:
        view = memoryview(chunk)
        while view:
            take = self.upload.part_size - len(self.buffer)
            self.buffer += view[:take]
            self.position += min(take, len(view))
            self.new_bytes = True
            view = view[take:]
            if len(self.buffer) == self.upload.part_size:
                await self._send_full_part()

    async def _send_full_part(self) -> None:
        await self.slots.acquire()
        data, reserved, number = self.buffer, self.reserved, self.part_number
        self.buffer, self.reserved = bytearray(), 0
        self.etags.append("")  # filled in when the upload answers
        self.part_number += 1
        self.part_start += self.upload.part_size
        assert self.tasks is not None
        self.tasks.start_soon(self._upload, number, data, reserved)
        await self._reserve()

    async def _upload(self, number: int, data: bytearray, reserved: int) -> None:
        try:
            self.etags[number - 1] = await self.storage.upload_part(self.upload, number, data)
        except StorageError as exc:
            self.failure = self.failure or exc
            assert self.tasks is not None
            self.tasks.cancel_scope.cancel()
        finally:
            del data
            self.storage.budget.release(reserved)
            self.slots.release()

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    async def write_tail(self) -> None:
        """Record the ETags of all full parts and the bytes of the part still being filled, under
        that part's own tail object; called once every part upload has answered."""
        if self.new_bytes:
            header = TailHeader(self.started_in, tuple(self.etags)).encode()
            await self.storage.put(tail_key(self.upload.key, self.part_number), header + self.buffer)

    def release(self) -> None:
        self.storage.budget.release(self.reserved)
        self.reserved = 0

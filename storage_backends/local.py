"""Local-file storage: one plain file per upload, appended in place.

Layout: ``<root>/<key>``, holding exactly the upload's bytes, so a finished upload is a normal
file that other tools can read. Keys are checked against ``[A-Za-z0-9_-]`` (``_keys.check_key``),
so nothing is ever written outside ``root``.

Crash safety: the caller records an offset only after `append` returned, so the file may hold
more bytes than the recorded offset (a crash between the write and the record) but never fewer,
unless the machine lost power with ``fsync=False``. The next `append` truncates the unacknowledged
tail. With ``fsync=True`` the data is fdatasync'd before `append` returns (on a worker thread,
so the event loop keeps serving), and new files' directory entries are synced too.

Performance: chunks are written on the event loop as they arrive. Writes into the page cache
are cheaper than a thread hop per chunk on small machines (PERF.md §4), so only fsync leaves
the loop. Reads for downloads do leave it, a MiB at a time: a read of a file that is not in the
page cache waits for the disk, and the loop must not wait with it.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import AsyncIterable, AsyncIterator, Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar, cast

import anyio.to_thread

from storage_backends._keys import check_key
from storage_backends._reserve import Reservation
from storage_backends.base import SplicesInto, StorageRef
from storage_backends.errors import BlobExistsError, BlobNotFoundError, StorageError

__all__ = ["LocalStorage"]

READ_CHUNK = 1024 * 1024


class LocalStorage:
    """Stores each upload as one file under `root`.

    Args:
        root: the directory for upload files; created if missing.
        fsync: fdatasync data (and directory entries) before acknowledging; survives power loss.
    """

    scheme: ClassVar[str] = "file"

    def __init__(self, root: str | os.PathLike[str], *, fsync: bool = False) -> None:
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self.fsync = fsync
        self._prefix = f"{self.root}{os.sep}"

    def _path(self, key: str) -> str:
        # A string, not a Path: pathlib's joining costs more than the system call it feeds.
        return self._prefix + check_key(key)

    async def create(self, key: str, *, length: int | None, content_type: str | None = None) -> StorageRef:
        """Create an empty file for the upload (see `StorageBackend.create`)."""
        path = self._path(key)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError as exc:
            raise BlobExistsError(f"{key} exists") from exc
        except OSError as exc:
            raise StorageError(f"cannot create {key}: {exc.strerror}") from exc
        if self.fsync:
            await anyio.to_thread.run_sync(_fsync_dir, self.root)
        return StorageRef(backend=self.scheme, key=key)

    async def append(
        self, ref: StorageRef, offset: int, chunks: AsyncIterable[bytes], *, size: int | None = None
    ) -> int:
        """Write `chunks` at `offset`, dropping any unacknowledged tail (see `StorageBackend.append`)."""
        fd = self._open_at(ref.key, offset)
        reservation, position = Reservation(fd, offset, None if size is None else offset + size), offset
        try:
            # A body the kernel can move (on uvicorn; see base.py). Not isinstance(): against a
            # Protocol it costs ~7 µs, 1.5 % of a small upload.
            if hasattr(chunks, "splice_into"):
                position += await cast(SplicesInto, chunks).splice_into(fd, position, reservation.before_write)
            async for chunk in chunks:
                reservation.before_write(position, len(chunk))
                _write_all(fd, chunk)
                position += len(chunk)
            if self.fsync and position > offset:
                await anyio.to_thread.run_sync(os.fdatasync, fd)
        except OSError as exc:
            raise StorageError(f"cannot write {ref.key}: {exc.strerror}") from exc
        finally:
            reservation.release(position)
            os.close(fd)
        return position

    def _open_at(self, key: str, offset: int) -> int:
        try:
            fd = os.open(self._path(key), os.O_WRONLY | os.O_CLOEXEC)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"no data file for {key}") from exc
        size = os.fstat(fd).st_size
        if size < offset:
            os.close(fd)
            raise StorageError(f"{key} holds {size} bytes, fewer than the recorded offset {offset}")
        if size > offset:
            os.ftruncate(fd, offset)  # bytes past the acknowledged offset were never acknowledged
        os.lseek(fd, offset, os.SEEK_SET)
        return fd

    async def stored_length(self, ref: StorageRef) -> int:
        """The data file's size (see `StorageBackend.stored_length`)."""
        try:
            return os.stat(self._path(ref.key)).st_size
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"no data file for {ref.key}") from exc

    async def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the file from `start` to `end` in pieces of READ_CHUNK bytes."""
        try:
            file = await anyio.to_thread.run_sync(_open_for_reading, self._path(ref.key))
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"no data file for {ref.key}") from exc
        with file:
            file.seek(start)
            position = start
            while end is None or position < end:
                size = READ_CHUNK if end is None else min(READ_CHUNK, end - position)
                piece = await anyio.to_thread.run_sync(file.read, size)
                if not piece:
                    return
                position += len(piece)
                yield piece

    async def concatenate(self, ref: StorageRef, parts: Sequence[StorageRef]) -> None:
        """Rewrite the file as the parts joined, copied by the kernel on a worker thread."""
        target, sources = self._path(ref.key), [self._path(part.key) for part in parts]
        try:
            await anyio.to_thread.run_sync(self._join, target, sources)
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"a part of {ref.key} is gone") from exc
        except OSError as exc:
            raise StorageError(f"cannot join {ref.key}: {exc.strerror}") from exc

    def _join(self, target: str, sources: list[str]) -> None:
        with open(target, "wb") as out:  # truncates: a repeated join starts over
            for source in sources:
                with open(source, "rb") as part:
                    _copy_file(part.fileno(), out.fileno())
            if self.fsync:
                os.fdatasync(out.fileno())

    async def complete(self, ref: StorageRef, length: int) -> None:
        """Nothing to do: the file is complete as it stands."""

    async def delete(self, ref: StorageRef) -> None:
        """Remove the data file; succeeds if it is already gone."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(ref.key))

    async def aclose(self) -> None:
        """No handles stay open between calls."""


def _copy_file(source: int, target: int) -> None:
    """Append all of `source` to `target`: copy_file_range (no copy through user space, reflinks
    where the file system has them), falling back to sendfile across file systems."""
    size, offset = os.fstat(source).st_size, 0
    while offset < size:
        try:
            copied = os.copy_file_range(source, target, size - offset, offset)
        except OSError as exc:
            if exc.errno not in (errno.EXDEV, errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
                raise
            copied = os.sendfile(target, source, offset, size - offset)
        if copied == 0:
            raise OSError(errno.EIO, "the part shrank while it was copied")
        offset += copied


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _open_for_reading(path: str) -> BinaryIO:
    return open(path, "rb", buffering=0)  # on a worker thread, like the reads: a cold open can wait for the disk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

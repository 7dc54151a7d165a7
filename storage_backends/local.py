"""Local-file storage: one plain file per upload, appended in place.

Layout: ``<root>/<key>``, holding exactly the upload's bytes once it is finished, so a finished
upload is a normal file that other tools can read. Keys are checked against ``[A-Za-z0-9_-]``
(``_keys.check_key``), so nothing is ever written outside ``root``. An unfinished upload may also
have segments, ``<root>/<key>.segments/<start>-<token>``, holding its bytes from ``start`` on; they are
joined into ``<key>`` when it completes.

One writer per file: an append holds an exclusive `flock` on the file it writes, for as long as it
has it open. A writer whose upload lock lapsed (a paused process, with Redis locks) keeps its file
and its flock; the next holder finds the flock taken and writes a new segment instead, so bytes
that a record holds are never written twice, whatever a stale writer does when it wakes. A file is
only truncated (its unacknowledged tail dropped) by a holder that has its flock and has just
recorded, fenced, that the record is still the one it read (`Checkpoints.record`).

Crash safety: the caller records an offset only after `append` returned (or through a checkpoint,
after the bytes were written and, with ``fsync``, synced), so files may hold more bytes than the
record says but never fewer, unless the machine lost power with ``fsync=False``. With
``fsync=True`` data is fdatasync'd before it is recorded (on a worker thread, so the event loop
keeps serving), and new files' directory entries are synced too. A full disk ends an append with
`StorageFullError`, which carries what was stored before it.

Performance: chunks are written on the event loop as they arrive. Writes into the page cache
are cheaper than a thread hop per chunk on small machines (PERF.md §4), so only fsync leaves
the loop. Reads for downloads do leave it, a MiB at a time: a read of a file that is not in the
page cache waits for the disk, and the loop must not wait with it.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import os
import secrets
import shutil
import time
from collections.abc import AsyncIterable, AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import BinaryIO, ClassVar, cast

import anyio.to_thread

from storage_backends._checkpoint import CheckpointClock
from storage_backends._keys import KEY_PATTERN, check_key
from storage_backends._reserve import Reservation
from storage_backends.base import Appended, Checkpoints, Lookup, SplicesInto, StorageRef
from storage_backends.errors import BlobExistsError, BlobNotFoundError, StorageError, StorageFullError

__all__ = ["LocalStorage"]

READ_CHUNK = 1024 * 1024
FULL_DISK_SLACK = 1024 * 1024  # what an append that filled the disk frees again (not recorded: sent again)
SEGMENTS = ".segments"  # <key>.segments/: the upload's segments and joins in progress


class LocalStorage:
    """Stores each upload as one file under `root` (and segments while it is unfinished).

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

    def _segment_path(self, key: str, name: str) -> str:
        return f"{self._path(key)}{SEGMENTS}{os.sep}{name}"

    def _files(self, ref: StorageRef) -> list[tuple[int, str]]:
        """Where each of the upload's files starts, and its path: the upload's own file, then its segments."""
        files = [(0, self._path(ref.key))]
        for name in ref.extra.get("segments", "").split():
            files.append((int(name.split("-", 1)[0]), self._segment_path(ref.key, name)))
        return files

    async def create(
        self, key: str, *, length: int | None, content_type: str | None = None, content_disposition: str | None = None
    ) -> StorageRef:
        """Create an empty file for the upload (see `StorageBackend.create`)."""
        path = self._path(key)
        try:
            os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666))
        except FileExistsError as exc:
            raise BlobExistsError(f"{key} exists") from exc
        except OSError as exc:
            raise _storage_error(f"cannot create {key}", exc) from exc
        if self.fsync:
            await anyio.to_thread.run_sync(_fsync_dir, self.root)
        return StorageRef(backend=self.scheme, key=key)

    async def append(
        self,
        ref: StorageRef,
        offset: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> Appended:
        """Write `chunks` at `offset` into the upload's last file, or a new segment when a writer
        still holds that file (see the module docstring and `StorageBackend.append`)."""
        fd, ref = await self._open_for_append(ref, offset, checkpoints)
        start = self._files(ref)[-1][0]
        reservation = Reservation(fd, offset - start, None if size is None else offset - start + size)
        writer = _Writer(fd, start, offset, self.fsync, CheckpointClock(checkpoints, offset))
        try:
            await writer.write(ref, chunks, reservation)
        except OSError as exc:
            raise await writer.failed(ref, exc) from exc
        finally:
            reservation.release(writer.position - start)
            os.close(fd)  # also lets go of the flock
        return Appended(writer.position, ref)

    async def _open_for_append(
        self, ref: StorageRef, offset: int, checkpoints: Checkpoints | None
    ) -> tuple[int, StorageRef]:
        """The descriptor to write at `offset` (positioned there, flocked) and the reference that holds it."""
        start, path = self._files(ref)[-1]
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)  # readable: a hashed body is hashed from the file
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"no data file for {ref.key}") from exc
        if not _try_flock(fd):  # a writer (one whose lock lapsed) still has it: leave it its file
            os.close(fd)
            return await self._new_segment(ref, offset)
        try:
            await self._truncate_to(fd, ref, offset - start, offset, checkpoints)
        except BaseException:
            os.close(fd)
            raise
        return fd, ref

    async def _truncate_to(
        self, fd: int, ref: StorageRef, size: int, offset: int, checkpoints: Checkpoints | None
    ) -> None:
        """Position `fd` at `size`, dropping bytes past it that were never acknowledged."""
        stored = os.fstat(fd).st_size
        if stored < size:
            held = stored - size + offset
            raise StorageError(f"{ref.key} holds {held} bytes, fewer than the recorded offset {offset}")
        if stored > size:
            if checkpoints is not None:  # fenced: the record is still the one this writer read
                await checkpoints.record(ref, offset)
            os.ftruncate(fd, size)  # bytes past the acknowledged offset were never acknowledged
        os.lseek(fd, size, os.SEEK_SET)

    async def _new_segment(self, ref: StorageRef, offset: int) -> tuple[int, StorageRef]:
        name = f"{offset}-{secrets.token_hex(8)}"
        directory = self._path(ref.key) + SEGMENTS
        try:
            os.makedirs(directory, exist_ok=True)
            fd = os.open(f"{directory}{os.sep}{name}", os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        except OSError as exc:
            raise _storage_error(f"cannot create a segment of {ref.key}", exc) from exc
        _try_flock(fd)
        if self.fsync:
            await anyio.to_thread.run_sync(_fsync_dir, Path(directory))
        names = [*ref.extra.get("segments", "").split(), name]
        return fd, ref.model_copy(update={"extra": {**ref.extra, "segments": " ".join(names)}})

    async def stored_length(self, ref: StorageRef) -> int:
        """The bytes in the upload's files: where its last segment starts, plus that segment's size."""
        start, path = self._files(ref)[-1]
        try:
            return start + os.stat(path).st_size
        except FileNotFoundError as exc:
            raise BlobNotFoundError(f"no data file for {ref.key}") from exc

    async def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the file from `start` to `end` in pieces of READ_CHUNK bytes (a finished upload's)."""
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
        """Write the parts joined into a new file, copied by the kernel on a worker thread, then put it
        in place: a join repeated by another holder never truncates a file that one already finished."""
        sources: list[tuple[str, int | None]] = [(self._path(part.key), None) for part in parts]
        await _joining(self._join_into_new, ref.key, sources, what="a part")

    async def complete(self, ref: StorageRef, length: int) -> StorageRef:
        """Join the segments, if any, into the upload's file; returns the reference without them."""
        files = self._files(ref)
        if len(files) == 1:
            return ref
        ends = [start for start, _ in files[1:]] + [length]
        sources: list[tuple[str, int | None]] = [
            (path, end - start) for (start, path), end in zip(files, ends, strict=True)
        ]
        await _joining(self._join_segments, ref.key, sources, what="a segment")
        return StorageRef(backend=self.scheme, key=ref.key)

    def _join_segments(self, key: str, sources: list[tuple[str, int | None]]) -> None:
        """Append the later segments to the upload's file, in place when no writer has it open."""
        fd = os.open(self._path(key), os.O_WRONLY | os.O_CLOEXEC)
        try:
            if not _try_flock(fd):  # a lapsed writer still has it: build the file anew instead
                self._join_into_new(key, sources)
                return
            first = sources[0][1]
            assert first is not None
            if os.fstat(fd).st_size < first:
                raise StorageError(f"{key} holds fewer bytes than its first segment needs")
            os.ftruncate(fd, first)
            os.lseek(fd, first, os.SEEK_SET)
            self._copy_all(fd, sources[1:])
        finally:
            os.close(fd)

    def _join_into_new(self, key: str, sources: list[tuple[str, int | None]]) -> None:
        """Copy `sources` (paths, and how many bytes of each; None for all) into a new file, then rename it
        over the upload's file, so no writer of the old file can touch the new one."""
        directory = self._path(key) + SEGMENTS
        os.makedirs(directory, exist_ok=True)
        temporary = f"{directory}{os.sep}joined-{secrets.token_hex(8)}"
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o666)
        try:
            self._copy_all(fd, sources)
            os.rename(temporary, self._path(key))
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(temporary)
            raise
        finally:
            os.close(fd)
        with contextlib.suppress(OSError):  # still holds segments (the caller discards them once recorded)
            os.rmdir(directory)
        if self.fsync:
            _fsync_dir(self.root)

    def _copy_all(self, target: int, sources: list[tuple[str, int | None]]) -> None:
        for path, size in sources:
            with open(path, "rb") as source:
                _copy_file(source.fileno(), target, size)
        if self.fsync:
            os.fdatasync(target)

    async def discard(self, old: StorageRef, new: StorageRef) -> None:
        """Remove the segments `old` named that `new` does not (once `new` is recorded)."""
        kept = set(new.extra.get("segments", "").split())
        for name in old.extra.get("segments", "").split():
            if name not in kept:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(self._segment_path(old.key, name))
        if not kept:
            with contextlib.suppress(OSError):  # gone, or a lapsed writer's segment is still there
                os.rmdir(self._path(old.key) + SEGMENTS)

    async def delete(self, ref: StorageRef) -> None:
        """Remove the data file and every segment; succeeds if they are already gone."""
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(ref.key))
        segments = functools.partial(shutil.rmtree, self._path(ref.key) + SEGMENTS, ignore_errors=True)
        await anyio.to_thread.run_sync(segments)

    async def sweep(self, lookup: Lookup, *, older_than: float) -> list[str]:
        """Remove files and segments that no record names and nobody changed for `older_than` seconds."""
        removed = []
        for key, name, path in await anyio.to_thread.run_sync(self._stale_files, time.time() - older_than):
            ref = await lookup(key)
            in_use = ref is not None and (name == key or name in ref.extra.get("segments", "").split())
            if not in_use:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                removed.append(name if name == key else f"{key}{SEGMENTS}/{name}")
        return removed

    def _stale_files(self, changed_before: float) -> list[tuple[str, str, str]]:
        """(key, name, path) of each upload file and segment last changed before `changed_before`; empty
        segment directories go on the way."""
        found = []
        with os.scandir(self.root) as entries:
            for entry in entries:
                key = entry.name.removesuffix(SEGMENTS)
                if not KEY_PATTERN.fullmatch(key):
                    continue
                if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < changed_before:
                    found.append((key, key, entry.path))
                elif entry.is_dir(follow_symlinks=False) and entry.name != key:
                    old = entry.stat().st_mtime < changed_before  # an empty one may be a writer's, just made
                    found += [(key, name, path) for name, path in _changed_before(entry.path, changed_before, old)]
        return found

    async def aclose(self) -> None:
        """No handles stay open between calls."""


class _Writer:
    """One append's writes into one file, which holds the upload's bytes from `start` on, with its checkpoints."""

    def __init__(self, fd: int, start: int, position: int, fsync: bool, clock: CheckpointClock) -> None:
        self.fd, self.start, self.position, self.fsync, self.clock = fd, start, position, fsync, clock
        self.recorded = position  # never given back below this: the record holds it

    async def write(self, ref: StorageRef, chunks: AsyncIterable[bytes], reservation: Reservation) -> None:
        clock = self.clock

        def before_write(position: int, size: int) -> None:
            reservation.before_write(position - self.start, size)

        # A body the kernel can move (on uvicorn; see base.py). Not isinstance(): against a
        # Protocol it costs ~7 µs, 1.5 % of a small upload.
        if hasattr(chunks, "splice_into"):
            splice = cast(SplicesInto, chunks).splice_into
            while moved := await splice(
                self.fd, self.position, before_write, most=clock.bytes_left(self.position), until=clock.deadline
            ):
                self.position += moved
                await self._checkpoint_if_due(ref)
        async for chunk in chunks:
            before_write(self.position, len(chunk))
            view = memoryview(chunk)
            while view:
                written = os.write(self.fd, view)
                self.position += written
                view = view[written:]
            await self._checkpoint_if_due(ref)
        if self.position > self.recorded:
            await self._sync()

    async def _checkpoint_if_due(self, ref: StorageRef) -> None:
        if self.clock.due(self.position):
            await self._sync()
            await self.clock.record(ref, self.position)
            self.recorded = self.position

    async def _sync(self) -> None:
        if self.fsync:
            await anyio.to_thread.run_sync(os.fdatasync, self.fd)

    async def failed(self, ref: StorageRef, exc: OSError) -> StorageError:
        """The error to raise for a failed write: on a full disk, with what was written before it."""
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            return StorageError(f"cannot write {ref.key}: {exc.strerror}")
        # A splice that failed does not say what it moved; the file's size does (it only grew from here).
        self.position = max(self.position, self.start + os.fstat(self.fd).st_size)
        # Give the last bytes back, so that the record of the rest has room (a state store on the same disk).
        self.position = max(self.recorded, self.position - FULL_DISK_SLACK)
        os.ftruncate(self.fd, self.position - self.start)
        try:
            await self._sync()
        except OSError:
            return StorageFullError(f"no space left for {ref.key}")  # nothing since the last record is durable
        return StorageFullError(f"no space left for {ref.key}", Appended(self.position, ref))


def _changed_before(directory: str, changed_before: float, remove_empty: bool) -> list[tuple[str, str]]:
    """(name, path) of the files in `directory` last changed before `changed_before`; with `remove_empty`,
    removes it if it is empty."""
    with os.scandir(directory) as entries:
        listed = [(entry.name, entry.path, entry.stat().st_mtime) for entry in entries]
    if remove_empty and not listed:
        with contextlib.suppress(OSError):
            os.rmdir(directory)
    return [(name, path) for name, path, changed in listed if changed < changed_before]


async def _joining(
    join: Callable[[str, list[tuple[str, int | None]]], None],
    key: str,
    sources: list[tuple[str, int | None]],
    *,
    what: str,
) -> None:
    """Run `join(key, sources)` on a worker thread, its failures as storage errors."""
    try:
        await anyio.to_thread.run_sync(join, key, sources)
    except FileNotFoundError as exc:
        raise BlobNotFoundError(f"{what} of {key} is gone") from exc
    except OSError as exc:
        raise _storage_error(f"cannot join {key}", exc) from exc


def _storage_error(what: str, exc: OSError) -> StorageError:
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFullError(f"{what}: {exc.strerror}")
    return StorageError(f"{what}: {exc.strerror}")


def _try_flock(fd: int) -> bool:
    """Take the exclusive flock on `fd`'s file if no other open file description holds it."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def _copy_file(source: int, target: int, size: int | None = None) -> None:
    """Append the first `size` bytes of `source` (all, for None) to `target`: copy_file_range (no copy through
    user space, reflinks where the file system has them), falling back to sendfile across file systems."""
    size, offset = os.fstat(source).st_size if size is None else size, 0
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


def _open_for_reading(path: str) -> BinaryIO:
    return open(path, "rb", buffering=0)  # on a worker thread, like the reads: a cold open can wait for the disk


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)

"""Local files: which ones an upload takes (directories recursively), their fingerprints, their bytes, digests.

Bytes are read in `PIECE`s with `os.pread` at explicit positions, so any number of parts of one file stream at
once without sharing a file position, and memory stays at a few pieces per stream whatever the file's size.
4 MiB rather than 1: every piece pays a fixed toll through httpx, httpcore and anyio's socket stream (a cancel
scope and a checkpoint per write, in py-spy's profile); 1 GiB in 8 MiB PATCHes then costs the client 0.17-0.20
CPU-s of user time instead of 0.25-0.31, for 3 MiB more per stream.

Reads run on a worker thread, although a page-cache read of 4 MiB takes only ~0.3 ms: each piece is a new
`bytes` (h11 passes exact `bytes` through without a copy, any other buffer it copies), and glibc serves those
of the main thread's arena from memory it has just given back to the kernel, so every page of every piece
faulted in anew: 262,000 minor faults and 1.1-1.4 CPU-s per GiB when the event loop runs on the main thread, as
under `tusserver upload`, against ~5,500 and 0.6-0.8 CPU-s from a worker thread's arena (a hop: ~0.06 ms).
Hashing a whole file is one long job, so it runs on a worker thread too, where hashlib and xxhash release the
GIL.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
import os
from collections.abc import AsyncIterator, Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import anyio.to_thread

from tusserver.client.errors import FileChangedError
from tusserver.protocol.checksums import Hasher, new_hasher

__all__ = ["PIECE", "Source", "collect", "content_type", "fingerprint", "hash_range", "hasher_over", "read_range"]

PIECE = 4 * 1024 * 1024
HASH_BLOCK = 4 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class Source:
    """One regular file to upload.

    Attributes:
        path: the file, absolute.
        name: what the upload's metadata calls it: the file's name, or for a file found in a directory its
            path from that directory's parent, in `/` form (`dataset/run1/a.csv`), as Uppy's `relativePath`.
        length: its size in bytes when it was found.
    """

    path: Path
    name: str
    length: int
    mtime_ns: int
    inode: int

    @classmethod
    def of(cls, path: Path, name: str) -> Source:
        stat = path.stat()
        return cls(path.absolute(), name, stat.st_size, stat.st_mtime_ns, stat.st_ino)


def collect(paths: Iterable[str | Path]) -> list[Source]:
    """The files named, and every regular file below each directory named (sorted, symlinks not followed).

    Raises:
        FileNotFoundError: a path does not exist or is neither a file nor a directory.
    """
    sources: list[Source] = []
    for path in map(Path, paths):
        if path.is_file():
            sources.append(Source.of(path, path.name))
        elif path.is_dir():
            root = path.absolute()
            sources += [Source.of(file, file.relative_to(root.parent).as_posix()) for file in _walk(root)]
        else:
            raise FileNotFoundError(f"no such file or directory: {path}")
    return sources


def _walk(root: Path) -> list[Path]:
    found: list[Path] = []
    for directory, subdirectories, names in os.walk(root):
        subdirectories.sort()
        found += [Path(directory, name) for name in sorted(names) if Path(directory, name).is_file()]
    return found


def fingerprint(endpoint: str, source: Source) -> str:
    """A key for the resume store: the same file (path, size, modification time, inode) to the same endpoint.

    Any change to the file makes a new key, so a changed file is uploaded afresh, never resumed into a mix.
    """
    identity = [endpoint, str(source.path), source.length, source.mtime_ns, source.inode]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


def content_type(name: str) -> str:
    """The media type for the `filetype` metadata, guessed from the name as browsers do for `File.type`."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    return guessed or "application/octet-stream"


async def read_range(path: Path, start: int, length: int, on_bytes: Callable[[int], None]) -> AsyncIterator[bytes]:
    """The bytes `start` to `start + length` of a file, a piece at a time; `on_bytes(n)` as each piece goes.

    Raises:
        FileChangedError: the file is shorter than it was: it changed during the upload.
    """
    fd = os.open(path, os.O_RDONLY)
    try:
        position, end = start, start + length
        while position < end:
            data = await anyio.to_thread.run_sync(os.pread, fd, min(PIECE, end - position), position)
            if not data:
                raise FileChangedError(f"{path} became shorter while it was uploaded (at byte {position})")
            position += len(data)
            on_bytes(len(data))
            yield data
    finally:
        os.close(fd)


def hash_range(path: Path, start: int, length: int, algorithm: str) -> bytes:
    """The digest of bytes `start` to `start + length`, read in blocks (run on a worker thread).

    Raises:
        FileChangedError: the file is shorter than that.
    """
    return hasher_over(path, start, length, algorithm).digest()


def hasher_over(path: Path, start: int, length: int, algorithm: str) -> Hasher:
    """A hasher fed bytes `start` to `start + length`, to go on with (a download resumed after them)."""
    hasher = new_hasher(algorithm)
    with path.open("rb", buffering=0) as file:
        file.seek(start)
        left = length
        while left:
            data = file.read(min(HASH_BLOCK, left))
            if not data:
                raise FileChangedError(f"{path} became shorter while it was hashed")
            hasher.update(data)
            left -= len(data)
    return hasher

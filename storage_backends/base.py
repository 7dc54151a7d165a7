"""Pure types of the storage contract: what every backend implements, and its optional capabilities.

A backend only stores bytes. It knows nothing of tus: offsets arrive as plain integers, request
bodies as an async iterable of chunks that simply ends when the request does (the caller turns
disconnects, timeouts and lock-release requests into a clean end of stream).
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from typing import ClassVar, NamedTuple, Protocol, runtime_checkable

from pydantic import BaseModel

__all__ = [
    "Appended",
    "ReadsInto",
    "Record",
    "SplicesInto",
    "StorageBackend",
    "StorageRef",
    "SupportsConcatenate",
    "SupportsDelete",
    "SupportsDiscard",
    "SupportsLimits",
    "SupportsOpen",
    "SupportsSweep",
]


class StorageRef(BaseModel, frozen=True):
    """Where one upload's bytes live; opaque to tusserver and persisted with the upload.

    Attributes:
        backend: the backend's scheme ("memory", "file", "s3"; later "azure").
        key: the path, object key or blob name.
        extra: backend-specific values (e.g. an S3 multipart upload id).
    """

    backend: str
    key: str
    extra: dict[str, str] = {}


Record = Callable[[StorageRef, int], Awaitable[None]]
"""`await record(ref, length)` makes `ref`, holding `length` durable bytes, the upload's recorded state (a
fenced save: it raises once the caller's lock has passed to another holder). Backends call it during an
append: to record progress, and before anything that relies on the record not having moved on."""


class Checkpoints:
    """How an append records its progress, and the `record` call that does it.

    With `every` and `interval`, a crash loses at most what arrived since the last record: `every`
    bytes or `interval` seconds. Without them (None: the caller cannot record bytes before the body
    is checked, e.g. against a checksum), `record` is only called with the offset the append started
    from: to fence a lapsed writer, or to record where new bytes will go.
    """

    def __init__(self, record: Record, *, every: int | None = None, interval: float | None = None) -> None:
        if (every is None) != (interval is None) or (every is not None and every <= 0) or (interval or 1) <= 0:
            raise ValueError("checkpoints need both a positive size and interval, or neither")
        self.record, self.every, self.interval = record, every, interval


class Appended(NamedTuple):
    """What an append stored: the new stored length, and the reference that holds it (which the
    caller must persist with the length; a backend may move an upload's bytes to new places)."""

    length: int
    ref: StorageRef


class StorageBackend(Protocol):
    """The contract every storage backend fulfils (local files, memory, S3 parts, Azure blocks)."""

    scheme: ClassVar[str]

    async def create(
        self, key: str, *, length: int | None, content_type: str | None = None, content_disposition: str | None = None
    ) -> StorageRef:
        """Prepare storage for a new upload.

        Args:
            key: a unique, already validated key (letters, digits, '-' and '_').
            length: the final length if known, None if deferred.
            content_type: the media type the client declared, for stores that keep one per object.
            content_disposition: a Content-Disposition naming the file the client declared (ASCII only), for
                stores that keep one per object.

        Returns:
            The reference to persist with the upload.

        Raises:
            BlobExistsError: bytes exist under `key` already.
            StorageError: the backend failed.
        """
        ...

    async def append(
        self,
        ref: StorageRef,
        offset: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> Appended:
        """Store `chunks` from `offset` on and return the new stored length and reference.

        Bytes stored past `offset` by an earlier request that was never acknowledged (a crash,
        a discarded checksum chunk) are never part of the result. When the iterable ends, every byte
        it yielded is stored; the caller then records the returned reference and length.

        A writer whose lock lapsed (a paused process) may go on writing after another holder took
        over: a backend never lets such a writer touch bytes that the recorded reference holds.
        Bytes an append writes stay its own (a segment, tail or part of its own) until a record
        that names them succeeds.

        Args:
            ref: the upload's storage reference.
            offset: the acknowledged offset; the first chunk's byte goes there.
            chunks: the request body, ending cleanly whatever happened to the request.
            size: how many bytes the body declares (its Content-Length), None if unknown. A hint,
                such as for reserving space: the body may end sooner (a disconnect).
            checkpoints: how to record progress during a long append (and fence a lapsed writer);
                None for a caller whose writes can never overlap another's.

        Returns:
            `offset` plus the number of bytes stored from `chunks`, and the reference holding them.

        Raises:
            BlobNotFoundError: the upload's storage is gone.
            StorageError: the backend failed, or holds fewer bytes than `offset`.
        """
        ...

    async def stored_length(self, ref: StorageRef) -> int:
        """The number of bytes the storage itself holds for `ref` (for repair and checks).

        Raises:
            BlobNotFoundError: the upload's storage is gone.
        """
        ...

    async def complete(self, ref: StorageRef, length: int) -> StorageRef:
        """Called when the last byte is stored (S3 CompleteMultipartUpload, Azure commit); returns the
        reference of the finished upload, which the caller records.

        Idempotent: it is called again if the server stopped before it recorded the completion.

        Args:
            ref: the upload's storage reference.
            length: the upload's final length (all bytes up to it are stored).

        Raises:
            StorageError: the backend failed.
        """
        ...

    def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the stored bytes `start` to `end` (exclusive; None for all) in bounded pieces.

        Raises:
            BlobNotFoundError: the upload's storage is gone.
        """
        ...

    async def aclose(self) -> None:
        """Release connections and file handles."""
        ...


@runtime_checkable
class SupportsDelete(Protocol):
    """Backends that can remove an upload's bytes; enables the termination extension."""

    async def delete(self, ref: StorageRef) -> None:
        """Remove every byte stored for `ref`. Idempotent: deleting a missing upload succeeds.

        Raises:
            StorageError: the backend failed.
        """
        ...


@runtime_checkable
class SupportsDiscard(Protocol):
    """Backends that leave things behind when an upload's reference changes (old segments or tails)."""

    async def discard(self, old: StorageRef, new: StorageRef) -> None:
        """Remove what `old` held that `new` does not; called once `new` is recorded. Best effort:
        what a crash leaves is found by the sweep.

        Raises:
            StorageError: the backend failed.
        """
        ...


Lookup = Callable[[str], Awaitable[StorageRef | None]]
"""`await lookup(key)`: the recorded reference of the upload created under `key`, None if it has no record."""


@runtime_checkable
class SupportsSweep(Protocol):
    """Backends that can list what they hold, so that cleanup finds what no record names: the files, objects,
    segments and tails left by a crash between creating and recording, or by a writer whose lock lapsed."""

    async def sweep(self, lookup: Lookup, *, older_than: float) -> list[str]:
        """Remove every item that no recorded reference holds and that has not changed for `older_than`
        seconds (a younger one may belong to a request still running); returns the names removed.

        Raises:
            StorageError: the backend failed.
        """
        ...


@runtime_checkable
class SupportsConcatenate(Protocol):
    """Backends that can join finished uploads into another; enables the concatenation extension.

    Object stores join without moving bytes through the server (S3 UploadPartCopy, Azure
    stage_block_from_url); local files use the kernel's copy.
    """

    async def concatenate(self, ref: StorageRef, parts: Sequence[StorageRef]) -> None:
        """Make `ref` hold the bytes of `parts`, in order (a part may appear more than once).

        Idempotent: a join that is repeated (after a crash) replaces what an earlier one wrote.
        The parts are finished uploads and stay as they are.

        Raises:
            BlobNotFoundError: a part's bytes are gone.
            StorageError: the backend failed.
        """
        ...


@runtime_checkable
class SupportsLimits(Protocol):
    """Backends with a largest object size (S3: 5 TiB), which caps Tus-Max-Size; a deferred-length
    upload may be capped lower (its part size had to be chosen before its length was known)."""

    max_length: int
    max_deferred_length: int


@runtime_checkable
class SupportsOpen(Protocol):
    """Backends that connect at start-up, failing early on a missing bucket or container."""

    async def open(self) -> None:
        """Connect and check the configuration.

        Raises:
            StorageError: the storage cannot be used as configured (the message says why).
        """
        ...


class SplicesInto(Protocol):
    """A chunk stream that can also have its bytes moved into a file by the kernel (splice(2)),
    never passing through Python: tusserver's request body on uvicorn. A backend that writes
    files may call `splice_into` first, then iterate over what is left as usual."""

    async def splice_into(
        self,
        fd: int,
        position: int,
        before_write: Callable[[int, int], None],
        *,
        most: int | None = None,
        until: float | None = None,
    ) -> int:
        """Move the stream's bytes into `fd`, from its file position (`position`), until the stream
        ends, `most` bytes moved, the clock (anyio.current_time) passes `until`, or this way of
        moving them is not available; return how many moved.

        `before_write(position, size)` is called before each step of at most `size` bytes.

        Raises:
            OSError: writing into `fd` failed.
        """
        ...


class ReadsInto(Protocol):
    """A chunk stream that can also fill a buffer of the caller's: tusserver's request body, whose bytes the
    kernel then copies straight from the socket into the buffer on uvicorn. A backend that buffers parts
    may fill them with `read_into` until it returns 0 (the stream ended), then iterate over what is left (of a
    stream that iterates too) as usual."""

    async def read_into(self, view: memoryview, *, until: float | None = None) -> int:
        """Fill `view` with the stream's next bytes until it is full, the stream ends, or the clock
        (anyio.current_time) passes `until`; return how many: 0 once the stream has ended."""
        ...

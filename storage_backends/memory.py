"""In-memory storage for tests and demos: bytes live in a dict and vanish with the process.

Memory grows with the uploads, by design; never use it for real uploads.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator, Sequence
from typing import ClassVar

from storage_backends._keys import check_key
from storage_backends.base import Appended, Checkpoints, StorageRef
from storage_backends.errors import BlobExistsError, BlobNotFoundError, StorageError

__all__ = ["MemoryStorage"]


class MemoryStorage:
    """Keeps every upload in a bytearray; `blobs` is public so tests can inspect the bytes."""

    scheme: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self.blobs: dict[str, bytearray] = {}

    def _blob(self, key: str) -> bytearray:
        try:
            return self.blobs[key]
        except KeyError:
            raise BlobNotFoundError(f"no blob {key}") from None

    async def create(
        self, key: str, *, length: int | None, content_type: str | None = None, content_disposition: str | None = None
    ) -> StorageRef:
        """Start an empty blob (see `StorageBackend.create`)."""
        if check_key(key) in self.blobs:
            raise BlobExistsError(f"blob {key} exists")
        self.blobs[key] = bytearray()
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
        """Append at `offset`, dropping an unacknowledged tail (see `StorageBackend.append`). One process
        only, whose locks cannot lapse: no checkpoints are needed."""
        blob = self._blob(ref.key)
        if len(blob) < offset:
            raise StorageError(f"{ref.key} holds {len(blob)} bytes, fewer than the offset {offset}")
        del blob[offset:]
        async for chunk in chunks:
            blob += chunk
        return Appended(len(blob), ref)

    async def stored_length(self, ref: StorageRef) -> int:
        """The blob's length."""
        return len(self._blob(ref.key))

    async def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Yield the requested slice of the blob in one piece."""
        yield bytes(self._blob(ref.key)[start:end])

    async def concatenate(self, ref: StorageRef, parts: Sequence[StorageRef]) -> None:
        """Replace the blob with the parts' bytes, in order."""
        joined = b"".join([bytes(self._blob(part.key)) for part in parts])
        self._blob(ref.key)[:] = joined

    async def complete(self, ref: StorageRef, length: int) -> StorageRef:
        """Nothing to do."""
        return ref

    async def delete(self, ref: StorageRef) -> None:
        """Forget the blob; succeeds if it is already gone."""
        self.blobs.pop(ref.key, None)

    async def aclose(self) -> None:
        """Nothing to release."""

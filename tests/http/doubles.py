"""Test doubles shared by the HTTP tests: request bodies that report on the server, a recording storage."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from typing import ClassVar

from storage_backends.base import Appended, Checkpoints, StorageRef
from storage_backends.memory import MemoryStorage


class CompletionRecorder(MemoryStorage):
    """MemoryStorage that records which blobs were completed (where completion hooks would fire)."""

    def __init__(self) -> None:
        super().__init__()
        self.completed: list[str] = []

    async def complete(self, ref: StorageRef, length: int) -> StorageRef:
        self.completed.append(ref.key)
        return await super().complete(ref, length)


class SizeRecorder(MemoryStorage):
    """MemoryStorage that records the declared body size each append was given."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: list[int | None] = []

    async def append(
        self,
        ref: StorageRef,
        offset: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> Appended:
        self.sizes.append(size)
        return await super().append(ref, offset, chunks, size=size)


async def chunked(*chunks: bytes) -> AsyncIterator[bytes]:
    """A body without Content-Length: httpx sends it with Transfer-Encoding: chunked."""
    for chunk in chunks:
        yield chunk


class UnreadBody:
    """A request body that records whether the server ever asked for it."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.read = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        self.read = True
        yield self.data


class NoDeleteStorage:
    """MemoryStorage with only the base contract: no `delete`, no `concatenate` (a runtime Protocol
    checks only that the attribute exists, so a subclass would not do)."""

    scheme: ClassVar[str] = "memory"

    def __init__(self) -> None:
        self.inner = MemoryStorage()

    async def create(
        self, key: str, *, length: int | None, content_type: str | None = None, content_disposition: str | None = None
    ) -> StorageRef:
        return await self.inner.create(
            key, length=length, content_type=content_type, content_disposition=content_disposition
        )

    async def append(
        self,
        ref: StorageRef,
        offset: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> Appended:
        return await self.inner.append(ref, offset, chunks, size=size)

    async def stored_length(self, ref: StorageRef) -> int:
        return await self.inner.stored_length(ref)

    def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        return self.inner.read(ref, start, end)

    async def complete(self, ref: StorageRef, length: int) -> StorageRef:
        return await self.inner.complete(ref, length)

    async def aclose(self) -> None:
        await self.inner.aclose()


class NoConcatStorage(NoDeleteStorage):
    """MemoryStorage that can delete but not concatenate."""

    async def delete(self, ref: StorageRef) -> None:
        await self.inner.delete(ref)

"""Test doubles shared by the HTTP tests: request bodies that report on the server, a recording storage."""

from __future__ import annotations

from collections.abc import AsyncIterator

from storage_backends.base import StorageRef
from storage_backends.memory import MemoryStorage


class CompletionRecorder(MemoryStorage):
    """MemoryStorage that records which blobs were completed (where completion hooks would fire)."""

    def __init__(self) -> None:
        super().__init__()
        self.completed: list[str] = []

    async def complete(self, ref: StorageRef) -> None:
        self.completed.append(ref.key)
        await super().complete(ref)


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

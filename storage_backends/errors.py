"""Errors a storage backend raises; tusserver maps them to HTTP statuses in one place."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storage_backends.base import Appended

__all__ = ["BlobExistsError", "BlobNotFoundError", "StorageError", "StorageFullError", "StorageUnavailableError"]


class StorageError(Exception):
    """The backend failed in a way a retry will not fix."""


class BlobNotFoundError(StorageError, FileNotFoundError):
    """The bytes of an upload are not (or no longer) in the storage."""


class BlobExistsError(StorageError, FileExistsError):
    """`create` found bytes under the key already (left behind by a crash, for a derived key)."""


class StorageUnavailableError(StorageError):
    """The backend is temporarily unreachable or throttling; a retry may succeed."""


class StorageFullError(StorageError):
    """The storage has no space left (ENOSPC, a quota).

    Attributes:
        stored: what the append stored before it ran out (to be recorded), None if nothing is usable.
    """

    def __init__(self, message: str, stored: Appended | None = None) -> None:
        super().__init__(message)
        self.stored = stored

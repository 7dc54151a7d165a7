"""Errors a storage backend raises; tusserver maps them to HTTP statuses in one place."""

from __future__ import annotations

__all__ = ["BlobExistsError", "BlobNotFoundError", "StorageError", "StorageUnavailableError"]


class StorageError(Exception):
    """The backend failed in a way a retry will not fix."""


class BlobNotFoundError(StorageError, FileNotFoundError):
    """The bytes of an upload are not (or no longer) in the storage."""


class BlobExistsError(StorageError, FileExistsError):
    """`create` found bytes under the key already (left behind by a crash, for a derived key)."""


class StorageUnavailableError(StorageError):
    """The backend is temporarily unreachable or throttling; a retry may succeed."""

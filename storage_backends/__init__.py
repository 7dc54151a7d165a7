"""Pluggable storage for tus uploads: the contract, its errors and the built-in backends.

Nothing here imports tusserver; the backends that need an SDK live in packages of their own (`s3`, `azure`),
behind extras.
"""

from storage_backends.base import StorageBackend, StorageRef, SupportsConcatenate, SupportsDelete
from storage_backends.errors import BlobExistsError, BlobNotFoundError, StorageError, StorageUnavailableError
from storage_backends.local import LocalStorage
from storage_backends.memory import MemoryStorage

__all__ = [
    "BlobExistsError",
    "BlobNotFoundError",
    "LocalStorage",
    "MemoryStorage",
    "StorageBackend",
    "StorageError",
    "StorageRef",
    "StorageUnavailableError",
    "SupportsConcatenate",
    "SupportsDelete",
]

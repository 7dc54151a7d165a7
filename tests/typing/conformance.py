"""mypy-only checks that each implementation satisfies its Protocol (never run by pytest).

The Python form of tusd's `var _ handler.DataStore = FileStore{}`: if a backend drifts from the
contract, `mypy --strict` fails here.
"""

from storage_backends import LocalStorage, MemoryStorage
from storage_backends.azure.store import AzureBlobStorage
from storage_backends.base import (
    StorageBackend,
    SupportsConcatenate,
    SupportsDelete,
    SupportsDiscard,
    SupportsLimits,
    SupportsOpen,
    SupportsSweep,
)
from storage_backends.s3.store import S3Storage
from tusserver.coordination.locking import Lease, Locker, MemoryLease, MemoryLocker
from tusserver.coordination.state import MemoryStateStore, SQLiteStateStore, SupportsOutbox, UploadStateStore
from tusserver.coordination.state.base import SupportsListing
from tusserver.coordination.state.redis import RedisStateStore


def _local(storage: LocalStorage) -> tuple[StorageBackend, SupportsDelete]:
    return storage, storage


def _memory(storage: MemoryStorage) -> tuple[StorageBackend, SupportsDelete]:
    return storage, storage


def _object_stores(
    s3: S3Storage, azure: AzureBlobStorage
) -> tuple[StorageBackend, StorageBackend, SupportsConcatenate, SupportsDiscard, SupportsSweep, SupportsLimits]:
    return s3, azure, azure, azure, azure, azure


def _azure(azure: AzureBlobStorage) -> tuple[SupportsDelete, SupportsOpen]:
    return azure, azure


def _states(
    memory: MemoryStateStore, sqlite: SQLiteStateStore, redis: RedisStateStore
) -> tuple[UploadStateStore, UploadStateStore, UploadStateStore]:
    return memory, sqlite, redis


def _outboxes(
    memory: MemoryStateStore, sqlite: SQLiteStateStore, redis: RedisStateStore
) -> tuple[SupportsOutbox, SupportsOutbox, SupportsOutbox]:
    return memory, sqlite, redis


def _listings(
    memory: MemoryStateStore, sqlite: SQLiteStateStore, redis: RedisStateStore
) -> tuple[SupportsListing, SupportsListing, SupportsListing]:
    return memory, sqlite, redis


def _locks(locker: MemoryLocker, lease: MemoryLease) -> tuple[Locker, Lease]:
    return locker, lease

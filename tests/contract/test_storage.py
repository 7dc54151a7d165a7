"""The storage contract, run against every backend (STYLE.md B.6)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage_backends import LocalStorage, MemoryStorage
from storage_backends.base import StorageBackend, StorageRef, SupportsDelete
from storage_backends.errors import BlobNotFoundError, StorageError

STORAGES = ["memory", "local", "local-fsync"]
# What each backend must declare, so that none loses a capability silently (tusd's UseIn()).
CAPABILITIES: dict[str, set[type]] = {
    "memory": {SupportsDelete},
    "local": {SupportsDelete},
    "local-fsync": {SupportsDelete},
}


@pytest.fixture(params=STORAGES)
def storage_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
def storage(storage_name: str, tmp_path: Path) -> StorageBackend:
    if storage_name == "memory":
        return MemoryStorage()
    return LocalStorage(tmp_path / "uploads", fsync=storage_name == "local-fsync")


async def chunks(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def contents(storage: StorageBackend, ref: StorageRef, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in storage.read(ref, start, end)])


def test_declared_capabilities_match(storage: StorageBackend, storage_name: str) -> None:
    declared = {capability for capability in (SupportsDelete,) if isinstance(storage, capability)}
    assert declared == CAPABILITIES[storage_name]


@pytest.mark.anyio
async def test_new_upload_is_empty(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=10)
    assert await storage.stored_length(ref) == 0
    assert await contents(storage, ref) == b""


@pytest.mark.anyio
async def test_append_returns_new_length(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=11)
    assert await storage.append(ref, 0, chunks(b"hello", b" ")) == 6
    assert await storage.append(ref, 6, chunks(b"world")) == 11
    assert await contents(storage, ref) == b"hello world"


@pytest.mark.anyio
async def test_appends_smaller_than_5_mib_round_trip(storage: StorageBackend) -> None:
    """The S3 rule (parts under 5 MiB must still work), checked on every backend."""
    ref = await storage.create("upload1", length=None)
    offset = 0
    for index in range(20):
        offset = await storage.append(ref, offset, chunks(bytes([index]) * 1000))
    assert offset == 20_000
    assert await contents(storage, ref) == b"".join(bytes([index]) * 1000 for index in range(20))


@pytest.mark.anyio
async def test_append_at_stale_offset_drops_tail(storage: StorageBackend) -> None:
    """Bytes past the acknowledged offset (a crash before the record) are replaced."""
    ref = await storage.create("upload1", length=10)
    await storage.append(ref, 0, chunks(b"abcdefgh"))
    assert await storage.append(ref, 4, chunks(b"WXYZ")) == 8
    assert await contents(storage, ref) == b"abcdWXYZ"


@pytest.mark.anyio
async def test_append_past_stored_bytes_raises(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=10)
    with pytest.raises(StorageError):
        await storage.append(ref, 3, chunks(b"abc"))


@pytest.mark.anyio
async def test_empty_append_keeps_length(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=3)
    await storage.append(ref, 0, chunks(b"abc"))
    assert await storage.append(ref, 3, chunks()) == 3
    assert await contents(storage, ref) == b"abc"


@pytest.mark.anyio
async def test_append_to_missing_upload_raises_not_found(storage: StorageBackend) -> None:
    with pytest.raises(BlobNotFoundError):
        await storage.append(StorageRef(backend=storage.scheme, key="missing"), 0, chunks(b"x"))


@pytest.mark.anyio
async def test_read_range(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=11)
    await storage.append(ref, 0, chunks(b"hello world"))
    assert await contents(storage, ref, 6) == b"world"
    assert await contents(storage, ref, 2, 7) == b"llo w"


@pytest.mark.anyio
async def test_complete_keeps_bytes(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=3)
    await storage.append(ref, 0, chunks(b"abc"))
    await storage.complete(ref)
    assert await contents(storage, ref) == b"abc"


@pytest.mark.anyio
async def test_delete_is_idempotent(storage: StorageBackend) -> None:
    assert isinstance(storage, SupportsDelete)
    ref = await storage.create("upload1", length=3)
    await storage.delete(ref)
    await storage.delete(ref)
    with pytest.raises(BlobNotFoundError):
        await storage.stored_length(ref)


@pytest.mark.anyio
@pytest.mark.parametrize("key", ["..", "../x", "a/b", "a\x00b", "", "a.b", "x" * 201], ids=repr)
async def test_create_refuses_unsafe_keys(storage: StorageBackend, key: str) -> None:
    with pytest.raises(ValueError, match="invalid storage key"):
        await storage.create(key, length=1)


@pytest.mark.anyio
async def test_create_existing_key_raises(storage: StorageBackend) -> None:
    await storage.create("upload1", length=1)
    with pytest.raises(StorageError):
        await storage.create("upload1", length=1)

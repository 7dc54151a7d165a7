"""The storage contract, run against every backend (STYLE.md B.6)."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import pytest

from storage_backends import LocalStorage, MemoryStorage
from storage_backends.base import (
    Checkpoints,
    StorageBackend,
    StorageRef,
    SupportsConcatenate,
    SupportsDelete,
    SupportsDiscard,
    SupportsSweep,
)
from storage_backends.errors import BlobExistsError, BlobNotFoundError, StorageError, StorageUnavailableError

STORAGES = ["memory", "local", "local-fsync", "s3-seaweedfs", "s3-seaweedfs-https", "s3-moto", "azure"]
# What each backend must declare, so that none loses a capability silently (tusd's UseIn()).
EVERYTHING: set[type] = {SupportsDelete, SupportsConcatenate, SupportsDiscard, SupportsSweep}
CAPABILITIES: dict[str, set[type]] = {
    "memory": {SupportsDelete, SupportsConcatenate},
    "local": EVERYTHING,
    "local-fsync": EVERYTHING,
    "s3-seaweedfs": EVERYTHING,
    "s3-seaweedfs-https": EVERYTHING,
    "s3-moto": EVERYTHING,
    "azure": EVERYTHING,
}
OBJECT_STORES = ("s3", "azure")  # they record progress at part (block) boundaries, and a second create starts over


@pytest.fixture(params=STORAGES)
def storage_name(request: pytest.FixtureRequest) -> str:
    name: str = request.param
    return name


@pytest.fixture
async def storage(storage_name: str, tmp_path: Path, request: pytest.FixtureRequest) -> AsyncIterator[StorageBackend]:
    """Every backend; S3 on a real server (SeaweedFS) and on moto (AWS's error codes, the 5 MiB rule); Azure on
    Azurite."""
    backend: StorageBackend
    if storage_name == "memory":
        backend = MemoryStorage()
    elif storage_name.startswith("local"):
        backend = LocalStorage(tmp_path / "uploads", fsync=storage_name == "local-fsync")
    elif storage_name == "azure":
        backend = request.getfixturevalue("azure_storage")
    else:
        backend = request.getfixturevalue("s3_storage_on_" + storage_name.removeprefix("s3-").replace("-", "_"))
    yield backend
    await backend.aclose()


async def chunks(*pieces: bytes) -> AsyncIterator[bytes]:
    for piece in pieces:
        yield piece


async def contents(storage: StorageBackend, ref: StorageRef, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in storage.read(ref, start, end)])


async def store(storage: StorageBackend, ref: StorageRef, offset: int, *pieces: bytes) -> StorageRef:
    """Append `pieces` at `offset` and return the reference that holds them, checking the length."""
    appended = await storage.append(ref, offset, chunks(*pieces))
    assert appended.length == offset + sum(len(piece) for piece in pieces)
    return appended.ref


@pytest.mark.anyio
async def test_declared_capabilities_match(storage: StorageBackend, storage_name: str) -> None:
    declared = {capability for capability in EVERYTHING if isinstance(storage, capability)}
    assert declared == CAPABILITIES[storage_name]


@pytest.mark.anyio
async def test_new_upload_is_empty(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=10)
    assert await storage.stored_length(ref) == 0


@pytest.mark.anyio
async def test_zero_length_upload_completes_empty(storage: StorageBackend) -> None:
    """tus §POST: Upload-Length 0 is complete at once; object stores still create the object."""
    ref = await storage.create("upload1", length=0)
    await storage.complete(ref, 0)
    assert await storage.stored_length(ref) == 0
    assert await contents(storage, ref) == b""


@pytest.mark.anyio
async def test_append_returns_new_length(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=11)
    first = await storage.append(ref, 0, chunks(b"hello", b" "))
    assert first.length == 6
    second = await storage.append(first.ref, 6, chunks(b"world"))
    assert second.length == 11
    ref = await storage.complete(second.ref, 11)
    assert await contents(storage, ref) == b"hello world"


@pytest.mark.anyio
async def test_appends_smaller_than_5_mib_round_trip(storage: StorageBackend) -> None:
    """The S3 rule (parts under 5 MiB must still work), checked on every backend."""
    ref = await storage.create("upload1", length=None)
    offset = 0
    for index in range(20):
        ref, offset = (await storage.append(ref, offset, chunks(bytes([index]) * 1000))).ref, offset + 1000
    ref = await storage.complete(ref, offset)
    assert await contents(storage, ref) == b"".join(bytes([index]) * 1000 for index in range(20))


@pytest.mark.anyio
async def test_append_at_stale_offset_drops_tail(storage: StorageBackend) -> None:
    """Bytes past the acknowledged offset (a crash before the record) are replaced."""
    ref = await storage.create("upload1", length=10)
    ref = await store(storage, ref, 0, b"ab", b"cd")
    await storage.append(ref, 4, chunks(b"efgh"))  # never recorded: the reference stays at 4 bytes
    ref = await store(storage, ref, 4, b"WXYZ")
    ref = await storage.complete(ref, 8)
    assert await contents(storage, ref) == b"abcdWXYZ"


@pytest.mark.anyio
async def test_append_past_stored_bytes_raises(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=10)
    with pytest.raises(StorageError):
        await storage.append(ref, 3, chunks(b"abc"))


@pytest.mark.anyio
async def test_empty_append_keeps_length(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=3)
    ref = await store(storage, ref, 0, b"abc")
    ref = await store(storage, ref, 3)
    ref = await storage.complete(ref, 3)
    assert await contents(storage, ref) == b"abc"


@pytest.mark.anyio
async def test_append_to_deleted_upload_raises_not_found(storage: StorageBackend, storage_name: str) -> None:
    """At the latest when it is completed (an object store may accept a tail it cannot use)."""
    ref = await storage.create("upload1", length=1)
    assert isinstance(storage, SupportsDelete)
    await storage.delete(ref)
    # moto answers 500 where AWS says NoSuchUpload (SERVICES.md §2a); 500 means "try again later" to us.
    expected = StorageUnavailableError if storage_name == "s3-moto" else BlobNotFoundError
    with pytest.raises(expected):
        await storage.complete((await storage.append(ref, 0, chunks(b"x"))).ref, 1)


@pytest.mark.anyio
async def test_read_range(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=11)
    ref = await storage.complete(await store(storage, ref, 0, b"hello world"), 11)
    assert await contents(storage, ref, 6) == b"world"
    assert await contents(storage, ref, 2, 7) == b"llo w"


@pytest.mark.anyio
async def test_complete_keeps_bytes(storage: StorageBackend) -> None:
    ref = await storage.create("upload1", length=3)
    ref = await storage.complete(await store(storage, ref, 0, b"abc"), 3)
    assert await contents(storage, ref) == b"abc"


@pytest.mark.anyio
async def test_complete_repeated_is_harmless(storage: StorageBackend) -> None:
    """The server calls it again if it stopped before recording the completion."""
    ref = await store(storage, await storage.create("upload1", length=3), 0, b"abc")
    assert await storage.complete(ref, 3) == await storage.complete(ref, 3)
    assert await contents(storage, await storage.complete(ref, 3)) == b"abc"


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
async def test_create_existing_key_raises_or_starts_over(storage: StorageBackend, storage_name: str) -> None:
    """Files refuse a second create (BlobExistsError); an S3 create starts a new multipart upload (Azure: new
    tails and blocks), whose completion replaces the object."""
    first = await storage.create("upload1", length=1)
    if not storage_name.startswith(OBJECT_STORES):
        with pytest.raises(BlobExistsError):
            await storage.create("upload1", length=1)
        return
    second = await storage.create("upload1", length=2)
    await storage.complete(await store(storage, first, 0, b"x"), 1)
    second = await storage.complete(await store(storage, second, 0, b"yz"), 2)
    assert await contents(storage, second) == b"yz"


# --- concatenation (SupportsConcatenate; PROTOCOL.md items 75 and 85) ---------------------------------------------


def joiner(storage: StorageBackend) -> SupportsConcatenate:
    assert isinstance(storage, SupportsConcatenate)
    return storage


async def finished(storage: StorageBackend, key: str, data: bytes) -> StorageRef:
    """A finished upload holding `data`, as the server leaves a partial upload."""
    ref = await storage.create(key, length=len(data))
    return await storage.complete(await store(storage, ref, 0, data), len(data))


async def joined(storage: StorageBackend, target: StorageRef, parts: list[StorageRef]) -> bytes:
    """Join as the server does (concatenate, then complete) and read the result."""
    await joiner(storage).concatenate(target, parts)
    target = await storage.complete(target, sum([await storage.stored_length(part) for part in parts]))
    return await contents(storage, target)


@pytest.mark.anyio
async def test_concatenate_joins_parts_in_order(storage: StorageBackend) -> None:
    a, b, c = [await finished(storage, key, data) for key, data in [("a", b"hello"), ("b", b" "), ("c", b"world")]]
    target = await storage.create("final", length=11)
    assert await joined(storage, target, [a, b, c]) == b"hello world"
    assert await storage.stored_length(target) == 11


@pytest.mark.anyio
async def test_concatenate_part_listed_twice_appears_twice(storage: StorageBackend) -> None:
    a, b = await finished(storage, "a", b"ab"), await finished(storage, "b", b"cd")
    target = await storage.create("final", length=6)
    assert await joined(storage, target, [a, b, a]) == b"abcdab"


@pytest.mark.anyio
async def test_concatenate_repeated_replaces_earlier_result(storage: StorageBackend) -> None:
    """A join repeated after a crash gives the same bytes, not twice the bytes."""
    a, b = await finished(storage, "a", b"hello"), await finished(storage, "b", b" world")
    target = await storage.create("final", length=11)
    await joiner(storage).concatenate(target, [a, b])
    assert await joined(storage, target, [a, b]) == b"hello world"


@pytest.mark.anyio
async def test_concatenate_over_leftover_bytes_replaces_them(storage: StorageBackend) -> None:
    """A final upload's key is derived: a crash may leave bytes under it (finals._create_storage)."""
    a = await finished(storage, "a", b"abc")
    await finished(storage, "final", b"a much longer leftover")
    try:
        target = await storage.create("final", length=3)
    except BlobExistsError:
        assert isinstance(storage, SupportsDelete)
        await storage.delete(StorageRef(backend=storage.scheme, key="final"))
        target = await storage.create("final", length=3)
    assert await joined(storage, target, [a]) == b"abc"
    assert await storage.stored_length(target) == 3


@pytest.mark.anyio
async def test_concatenate_missing_part_raises_not_found(storage: StorageBackend) -> None:
    a = await finished(storage, "a", b"abc")
    target = await storage.create("final", length=None)
    with pytest.raises(BlobNotFoundError):
        await joiner(storage).concatenate(target, [a, StorageRef(backend=storage.scheme, key="missing")])


@pytest.mark.anyio
async def test_concatenate_leaves_parts_unchanged(storage: StorageBackend) -> None:
    a, b = await finished(storage, "a", b"hello"), await finished(storage, "b", b" world")
    await joined(storage, await storage.create("final", length=11), [a, b])
    assert (await contents(storage, a), await contents(storage, b)) == (b"hello", b" world")
    assert (await storage.stored_length(a), await storage.stored_length(b)) == (5, 6)


@pytest.mark.anyio
async def test_concatenate_empty_part_adds_nothing(storage: StorageBackend) -> None:
    a, empty, b = [await finished(storage, key, data) for key, data in [("a", b"ab"), ("empty", b""), ("b", b"cd")]]
    target = await storage.create("final", length=4)
    assert await joined(storage, target, [empty, a, empty, b, empty]) == b"abcd"


@pytest.mark.anyio
async def test_concatenate_only_empty_parts_gives_empty_upload(storage: StorageBackend) -> None:
    empty = await finished(storage, "empty", b"")
    target = await storage.create("final", length=0)
    assert await joined(storage, target, [empty, empty]) == b""
    assert await storage.stored_length(target) == 0


@pytest.mark.anyio
async def test_concatenate_multi_mib_parts_byte_exact(storage: StorageBackend) -> None:
    """Parts of several MiB at odd sizes: every copy loop (kernel copy, read chunks) has to go round more than once."""
    datas = [bytes(range(256)) * (3 * 4096) + b"x" * 7, bytes(reversed(range(256))) * (5 * 4096 + 1) + b"tail"]
    parts = [await finished(storage, f"part{index}", data) for index, data in enumerate(datas)]
    target = await storage.create("final", length=None)
    assert await joined(storage, target, parts) == datas[0] + datas[1]
    assert await storage.stored_length(target) == len(datas[0]) + len(datas[1])


# --- writers whose lock lapsed, and progress checkpoints (issue 19, defects 1 and 2) --------------------------------


class LockLostError(Exception):
    """What a fenced save raises once the lock has passed to another holder."""


class CrashError(Exception):
    """Stands for a crash of the server in the middle of a body."""


class Record:
    """The record as a state store with fenced saves keeps it: a save by a writer whose lease has passed fails."""

    def __init__(self, ref: StorageRef, length: int = 0) -> None:
        self.ref, self.length, self.holder = ref, length, "a"
        self.saves: list[int] = []
        self.progressed = anyio.Event()  # set by the first record past 0 (a reservation of part numbers records 0)

    def checkpoints(self, writer: str, every: int = 1024 * 1024) -> Checkpoints:
        async def record(ref: StorageRef, length: int) -> None:
            if writer != self.holder:
                raise LockLostError(f"{writer} lost the lock")
            self.ref, self.length = ref, length
            self.saves.append(length)
            if length:
                self.progressed.set()

        return Checkpoints(record, every=every, interval=3600)


def big(seed: int, size: int) -> bytes:
    return bytes([seed]) * size


@pytest.mark.anyio
async def test_lapsed_writer_never_touches_what_the_next_holder_recorded(
    storage: StorageBackend, storage_name: str
) -> None:
    """Writer A stalls mid-body holding its file or its reserved part numbers; its lock passes to B, which
    stores other bytes from the recorded offset and records them; then A wakes and writes on. The upload
    holds B's bytes, whatever A did."""
    if storage_name == "memory":
        pytest.skip("memory storage lives in one process, whose locks cannot lapse")
    part = 5 * 1024 * 1024
    length = 3 * part
    record = Record(await storage.create("upload1", length=length))
    a_paused, a_resume = anyio.Event(), anyio.Event()

    async def a_body() -> AsyncIterator[bytes]:
        yield big(0xAA, part)  # a whole part: uploaded (S3) under a number A reserved
        yield big(0xAA, 1000)
        a_paused.set()
        await a_resume.wait()
        for _ in range(2):
            yield big(0xAA, part)

    async def run_a() -> None:
        try:
            appended = await storage.append(record.ref, 0, a_body(), checkpoints=record.checkpoints("a", every=part))
        except LockLostError:  # a record on the way was refused
            return
        with pytest.raises(LockLostError):  # else its final record is: nothing of its own is recorded
            await record.checkpoints("a").record(appended.ref, appended.length)

    async with anyio.create_task_group() as tasks:
        tasks.start_soon(run_a)
        await a_paused.wait()
        record.holder = "b"
        start = record.length  # A recorded its first part (S3) or nothing yet (files)
        expected = big(0xAA, start) + big(0xBB, length - start)
        b = await storage.append(
            record.ref, start, chunks(big(0xBB, length - start - 1000)), checkpoints=record.checkpoints("b")
        )
        a_resume.set()
    # B goes on from where it stopped, in the place it chose (a segment of its own, for files).
    b = await storage.append(b.ref, b.length, chunks(big(0xBB, 1000)), checkpoints=record.checkpoints("b"))
    assert b.length == length
    ref = await storage.complete(b.ref, length)
    assert await contents(storage, ref) == expected


@pytest.mark.anyio
async def test_checkpoints_record_progress_that_a_crash_keeps(storage: StorageBackend, storage_name: str) -> None:
    """A body that breaks off (a crash of the request) leaves the last checkpoint recorded; resuming from it
    is byte-exact."""
    if storage_name == "memory":
        pytest.skip("memory storage does not outlive its process: nothing to keep across a crash")
    part = 5 * 1024 * 1024
    data = os.urandom(3 * part + 12345)
    record = Record(await storage.create("upload1", length=len(data)))

    async def breaking() -> AsyncIterator[bytes]:
        for start in range(0, 2 * part + 777, 256 * 1024):
            yield data[start : min(start + 256 * 1024, 2 * part + 777)]
        # The crash comes once a checkpoint had the time to finish: S3 records a part boundary in the background,
        # once the parts before it are stored, while the body goes on.
        with anyio.fail_after(10):
            await record.progressed.wait()
        raise CrashError("the request broke off")

    with pytest.raises(CrashError):
        await storage.append(record.ref, 0, breaking(), checkpoints=record.checkpoints("a"))
    assert record.saves == sorted(record.saves)
    # At most a checkpoint's worth is lost (1 MiB here); on S3 and Azure, which record at part (block) boundaries,
    # a part's (8 MiB).
    lost_at_most = 8 * 1024 * 1024 if storage_name.startswith(OBJECT_STORES) else 1024 * 1024
    assert 2 * part + 777 - lost_at_most <= record.length <= 2 * part + 777
    resumed = await storage.append(record.ref, record.length, chunks(data[record.length :]))
    ref = await storage.complete(resumed.ref, len(data))
    assert await contents(storage, ref) == data


@pytest.mark.anyio
async def test_sweep_removes_only_what_no_record_names(storage: StorageBackend, storage_name: str) -> None:
    """Issue 19, defect 3: what a crash leaves (an upload created but never recorded, a writer's bytes whose
    record never came) goes; every recorded upload stays whole."""
    if not isinstance(storage, SupportsSweep):
        pytest.skip(f"{storage_name} does not outlive its process: nothing is left by a crash")
    finished_ref = await finished(storage, "done", b"finished bytes")
    open_ref = await store(storage, await storage.create("open", length=20), 0, b"recorded")
    await storage.append(open_ref, 8, chunks(b"never recorded"))  # its record never came (a crash)
    orphan = await store(storage, await storage.create("orphan", length=20), 0, b"no record at all")
    records = {"done": finished_ref, "open": open_ref}

    async def lookup(key: str) -> StorageRef | None:
        return records.get(key)

    removed = await storage.sweep(lookup, older_than=0)
    assert removed
    assert await contents(storage, finished_ref) == b"finished bytes"
    resumed = await store(storage, open_ref, 8, b"and the rest")
    assert await contents(storage, await storage.complete(resumed, 20)) == b"recordedand the rest"
    with pytest.raises(BlobNotFoundError):
        await storage.stored_length(orphan)
    assert await storage.sweep(lookup, older_than=0) == []

"""What only the S3 backend has to get right: tails across part boundaries, re-uploaded parts, the buffer
budget, and recovery from a crash between completion and its record. On SeaweedFS (over http, and over
https with botocore's CRC32 checksum trailers) and on moto."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import anyio
import boto3
import pytest

from storage_backends.base import StorageRef
from storage_backends.budget import ByteBudget
from storage_backends.s3.layout import MiB, tail_prefix
from storage_backends.s3.store import S3Options, S3Storage
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, client_config

PART = 5 * MiB


@pytest.fixture(params=["seaweedfs", "seaweedfs_https", "moto"])
async def s3(request: pytest.FixtureRequest) -> AsyncIterator[S3Storage]:
    storage: S3Storage = request.getfixturevalue(f"s3_storage_on_{request.param}")
    # The smallest part size, so a few MiB cross several part boundaries.
    storage = S3Storage(S3Options(**{**vars(storage.options), "part_size": PART, "deferred_part_size": PART}))
    yield storage
    await storage.aclose()


async def chunks(data: bytes, size: int = 256 * 1024) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def contents(storage: S3Storage, ref: StorageRef) -> bytes:
    return b"".join([piece async for piece in storage.read(ref)])


def object_keys(storage: S3Storage) -> list[str]:
    options = storage.options
    client = boto3.client(
        "s3", endpoint_url=options.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY, config=client_config(),
    )  # fmt: skip
    try:
        listing = client.list_objects_v2(Bucket=options.bucket, Prefix=options.prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))
    finally:
        client.close()


@pytest.mark.anyio
async def test_known_length_fixes_the_part_size_in_the_ref(s3: S3Storage) -> None:
    ref = await s3.create("up", length=3)
    assert ref.extra["part_size"] == str(PART)
    assert ref.extra["length"] == "3"
    assert ref.key == s3.options.prefix + "up"


@pytest.mark.anyio
async def test_mixed_append_sizes_across_part_boundaries_are_byte_exact(s3: S3Storage) -> None:
    sizes = [1, 4 * MiB, PART - 1, PART, PART + 1, 17 * MiB]
    data = os.urandom(sum(sizes))
    ref = await s3.create("up", length=len(data))
    offset = 0
    for size in sizes:
        ref = (await s3.append(ref, offset, chunks(data[offset : offset + size]))).ref
        offset += size
        assert await s3.stored_length(ref) == offset
    ref = await s3.complete(ref, offset)
    assert await contents(s3, ref) == data
    assert object_keys(s3) == [ref.key]  # every tail object is gone


@pytest.mark.anyio
async def test_old_tails_go_once_the_record_names_a_new_one(s3: S3Storage) -> None:
    """Each append writes a tail of its own; `discard`, which the server calls once it recorded the new
    reference, deletes the one before, so only the recorded tail is left."""
    data = os.urandom(4 * PART)
    ref = await s3.create("up", length=len(data))
    offset = 0
    for size in [PART // 2, PART, PART, PART]:  # each append ends in a new part
        new = (await s3.append(ref, offset, chunks(data[offset : offset + size]))).ref
        await s3.discard(ref, new)
        ref, offset = new, offset + size
    tails = [key for key in object_keys(s3) if key.startswith(tail_prefix(ref.key))]
    assert tails == [tail_prefix(ref.key) + ref.extra["tail"]]


@pytest.mark.anyio
async def test_part_uploaded_again_with_other_bytes_keeps_the_recorded_ones(s3: S3Storage) -> None:
    """An append that was never recorded (a checksum mismatch, a crash) uploaded full parts; the retry
    at the recorded offset uploads the same part numbers with other bytes. SeaweedFS lists both
    copies; the result must hold the retry's bytes."""
    good = os.urandom(3 * PART)
    ref = await s3.create("up", length=len(good))
    recorded, ref = await s3.append(ref, 0, chunks(good[: PART // 2]))
    corrupt = bytes(byte ^ 0xFF for byte in good[recorded : recorded + 2 * PART])
    await s3.append(ref, recorded, chunks(corrupt))  # not recorded: the server discards it
    length, ref = await s3.append(ref, recorded, chunks(good[recorded:]))
    assert length == len(good)
    ref = await s3.complete(ref, len(good))
    assert await contents(s3, ref) == good


@pytest.mark.anyio
@pytest.mark.parametrize("first", [0, PART + 10], ids=["one-patch", "two-patches"])
async def test_append_after_an_unrecorded_completion_counts_the_resent_bytes(s3: S3Storage, first: int) -> None:
    """A crash between CompleteMultipartUpload and the record: the client resends from the recorded
    offset (0 for tus-js-client's single PATCH); the object already holds those bytes, so they count
    as stored and completion is a no-op."""
    data = os.urandom(2 * PART + 100)
    ref = await s3.create("up", length=len(data))
    recorded, ref = await s3.append(ref, 0, chunks(data[:first]))
    await s3.complete((await s3.append(ref, recorded, chunks(data[recorded:]))).ref, len(data))  # the record is lost
    length, resent = await s3.append(ref, recorded, chunks(data[recorded:]))
    assert length == len(data)
    ref = await s3.complete(resent, len(data))
    assert await contents(s3, ref) == data
    assert object_keys(s3) == [ref.key]


@pytest.mark.anyio
async def test_concurrent_appends_share_a_small_budget_without_deadlock(s3: S3Storage) -> None:
    """Two uploads, each needing several parts, under a budget of one part: they take turns."""
    budget = ByteBudget(PART)
    storage = S3Storage(s3.options, budget=budget)
    datas = [os.urandom(3 * PART + 1), os.urandom(2 * PART + 7)]
    refs = [await storage.create(f"up{index}", length=len(data)) for index, data in enumerate(datas)]
    ends: dict[int, int] = {}

    async def upload(index: int) -> None:
        ends[index], refs[index] = await storage.append(refs[index], 0, chunks(datas[index]))

    try:
        with anyio.fail_after(60):
            async with anyio.create_task_group() as tasks:
                for index in range(len(datas)):
                    tasks.start_soon(upload, index)
        assert budget.used == 0
        for index, data in enumerate(datas):
            assert ends[index] == len(data)
            assert await contents(storage, await storage.complete(refs[index], len(data))) == data
    finally:
        await storage.aclose()


@pytest.mark.anyio
async def test_deferred_length_upload_smaller_than_a_part_completes(s3: S3Storage) -> None:
    data = os.urandom(MiB + 3)
    ref = await s3.create("up", length=None)
    offset, ref = await s3.append(ref, 0, chunks(data[:100]))
    offset, ref = await s3.append(ref, offset, chunks(data[100:]))
    assert await contents(s3, await s3.complete(ref, offset)) == data


@pytest.mark.anyio
async def test_content_type_is_set_on_the_object(s3: S3Storage) -> None:
    ref = await s3.create("up", length=2, content_type="image/png")
    await s3.complete((await s3.append(ref, 0, chunks(b"ab"))).ref, 2)
    client = await s3._s3()
    head = await client.head_object(Bucket=s3.options.bucket, Key=ref.key)
    assert head["ContentType"] == "image/png"

"""What only the Azure backend has to get right, on Azurite: block sizes and IDs, PATCH sizes around a block,
content headers, termination of uncommitted blocks, concatenation inside Azure, the buffer budget, and the
start-up checks. Small blocks (64 KiB) so that a few hundred KiB cross several block boundaries."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import anyio
import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError
from azure.storage.blob import AccountSasPermissions, ResourceTypes, generate_account_sas
from azure.storage.blob.aio import BlobServiceClient, ContainerClient

from storage_backends.azure import blocks
from storage_backends.azure.layout import TOKEN_LENGTH, Blob, TailHeader
from storage_backends.azure.store import AzureBlobStorage, AzureOptions
from storage_backends.base import StorageRef
from storage_backends.budget import ByteBudget
from storage_backends.errors import StorageError
from tests.azure_server import ACCOUNT, ACCOUNT_KEY, Azurite

KiB = 1024
BLOCK = 64 * KiB


@pytest.fixture
async def azure(azure_storage: AzureBlobStorage) -> AsyncIterator[AzureBlobStorage]:
    storage = AzureBlobStorage(replace(azure_storage.options, block_size=BLOCK, deferred_block_size=BLOCK))
    yield storage
    await storage.aclose()


async def chunks(data: bytes, size: int = 16 * KiB) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def contents(storage: AzureBlobStorage, ref: StorageRef, start: int = 0, end: int | None = None) -> bytes:
    return b"".join([piece async for piece in storage.read(ref, start, end)])


async def blocks_of(azurite: Azurite, storage: AzureBlobStorage, key: str) -> tuple[list[int], list[str]]:
    """The committed block sizes and the uncommitted block IDs of blob `key`, read with a client of our own."""
    async with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        blob = service.get_blob_client(storage.options.container, key)
        committed, uncommitted = await blob.get_block_list("all")
    return [block.size for block in committed], [block.id for block in uncommitted]


@pytest.mark.anyio
async def test_known_length_fixes_the_block_size_and_content_headers_in_the_ref(azure: AzureBlobStorage) -> None:
    ref = await azure.create("up", length=3, content_type="image/png", content_disposition="inline")
    blob = Blob.of(ref)
    assert (blob.key, blob.block_size, blob.length) == (azure.options.prefix + "up", BLOCK, 3)
    assert (blob.content_type, blob.content_disposition) == ("image/png", "inline")
    assert blob.tail is not None  # the empty tail that says the upload exists


@pytest.mark.anyio
async def test_patch_sizes_around_a_block_mixed_in_one_upload_are_byte_exact(
    azure: AzureBlobStorage, azurite: Azurite
) -> None:
    """Issue 22: PATCHes of 1 byte, just under, at and just over a block, in one upload; each block is committed
    at the fixed size, the last one shorter."""
    sizes = [1, BLOCK - 1, BLOCK, BLOCK + 1, 1, 3 * BLOCK + 5, BLOCK - 1]
    data = os.urandom(sum(sizes))
    ref = await azure.create("up", length=len(data))
    offset = 0
    for size in sizes:
        ref = (await azure.append(ref, offset, chunks(data[offset : offset + size]))).ref
        offset += size
        assert await azure.stored_length(ref) == offset
    ref = await azure.complete(ref, offset)
    assert await contents(azure, ref) == data
    committed, uncommitted = await blocks_of(azurite, azure, ref.key)
    assert committed == [BLOCK] * (len(data) // BLOCK) + [len(data) % BLOCK]
    assert uncommitted == []
    assert await azure.names(azure.options.prefix) == [ref.key]  # every tail is gone


@pytest.mark.anyio
@pytest.mark.parametrize("batches", ["answered", "failing"])
async def test_the_tails_of_every_patch_are_gone_once_the_upload_is_finished(
    azure: AzureBlobStorage, batches: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Tails are deleted in batch requests; where a batch fails (a fault injected here), one by one."""
    batched: list[tuple[str, ...]] = []
    delete_blobs = ContainerClient.delete_blobs

    async def spied(container: ContainerClient, *names: str, **options: Any) -> Any:
        batched.append(names)
        if batches == "failing":
            raise HttpResponseError("batch refused")
        return await delete_blobs(container, *names, **options)

    monkeypatch.setattr(ContainerClient, "delete_blobs", spied)
    data = os.urandom(5 * BLOCK + 7)
    ref, offset = await azure.create("up", length=len(data)), 0
    for size in (BLOCK // 2, BLOCK, 3 * BLOCK + 7, BLOCK // 2):  # each PATCH leaves a tail of its own
        ref = (await azure.append(ref, offset, chunks(data[offset : offset + size]))).ref
        offset += size
    ref = await azure.complete(ref, offset)
    assert await contents(azure, ref) == data
    assert await azure.names(azure.options.prefix) == [ref.key]
    assert [len(names) for names in batched] == [5]  # the empty first tail and one per PATCH, in one request


@pytest.mark.anyio
async def test_a_patch_ending_on_a_block_boundary_leaves_its_tail_in_the_record(azure: AzureBlobStorage) -> None:
    """No tail blob for a tail without bytes: its header is in the reference the record keeps."""
    data = os.urandom(3 * BLOCK + 5)
    created = await azure.create("up", length=len(data))
    ref = (await azure.append(created, 0, chunks(data[: 2 * BLOCK]))).ref
    assert Blob.of(ref).inline is not None
    assert await azure.stored_length(ref) == 2 * BLOCK
    assert await azure.names(azure.options.prefix) == [Blob.of(created).tail_name]  # the creation's tail only
    ref = (await azure.append(ref, 2 * BLOCK, chunks(data[2 * BLOCK :]))).ref
    assert Blob.of(ref).inline is None  # 5 bytes past the blocks: a tail blob again
    ref = await azure.complete(ref, len(data))
    assert await contents(azure, ref) == data


@pytest.mark.anyio
async def test_a_header_past_the_inline_limit_goes_into_a_tail_blob(
    azure: AzureBlobStorage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each PATCH that stages blocks adds a run to the header; once it is longer than the record may carry, it is
    written into a tail blob, and the upload still completes byte-exact from it."""
    monkeypatch.setattr(blocks, "INLINE_MAX", len(TailHeader().extended("0" * TOKEN_LENGTH, 1).encode()) + 10)
    data = os.urandom(4 * BLOCK)
    ref = await azure.create("up", length=len(data))
    inline = []
    for offset in range(0, len(data), BLOCK):  # one block a PATCH: a run each
        ref = (await azure.append(ref, offset, chunks(data[offset : offset + BLOCK]))).ref
        inline.append(Blob.of(ref).inline is not None)
    assert inline == [True, False, False, False]
    assert await azure.stored_length(ref) == len(data)
    assert await contents(azure, await azure.complete(ref, len(data))) == data


@pytest.mark.anyio
async def test_a_completion_the_record_missed_is_done_again_from_an_inline_tail(azure: AzureBlobStorage) -> None:
    """A crash between the commit and the record: the record still names an inline tail, whose blocks are committed
    now. The client sends the rest again; staged anew and committed again, the blob is the same bytes."""
    data = os.urandom(3 * BLOCK + 5)
    recorded = (await azure.append(await azure.create("up", length=len(data)), 0, chunks(data[: 2 * BLOCK]))).ref
    finished = await azure.complete((await azure.append(recorded, 2 * BLOCK, chunks(data[2 * BLOCK :]))).ref, len(data))
    assert await contents(azure, finished) == data
    again = await azure.append(recorded, 2 * BLOCK, chunks(data[2 * BLOCK :]))  # from what the record says
    assert again.length == len(data)
    assert await contents(azure, await azure.complete(again.ref, len(data))) == data


@pytest.mark.anyio
async def test_block_ids_have_one_width_and_sort_in_byte_order(azure: AzureBlobStorage, azurite: Azurite) -> None:
    ref = await azure.create("up", length=None)
    ref = (await azure.append(ref, 0, chunks(os.urandom(12 * BLOCK)))).ref
    _, uncommitted = await blocks_of(azurite, azure, ref.key)
    assert len(uncommitted) == 12
    assert len({len(block) for block in uncommitted}) == 1  # Azure refuses IDs of different widths in one blob
    assert [int(block.split("-")[0]) for block in sorted(uncommitted)] == list(range(12))  # name order: byte order


@pytest.mark.anyio
async def test_small_deferred_length_upload_completes(azure: AzureBlobStorage) -> None:
    ref = await azure.create("up", length=None)
    ref = (await azure.append(ref, 0, chunks(b"tiny"))).ref
    ref = await azure.complete(ref, 4)
    assert await contents(azure, ref) == b"tiny"


@pytest.mark.anyio
async def test_finished_blob_gets_content_type_and_ascii_disposition(azure: AzureBlobStorage) -> None:
    disposition = "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
    ref = await azure.create("up", length=2, content_type="application/pdf", content_disposition=disposition)
    ref = await azure.complete((await azure.append(ref, 0, chunks(b"%P"))).ref, 2)
    properties = await (await azure._blob(ref.key)).get_blob_properties()
    assert properties.content_settings.content_type == "application/pdf"
    assert properties.content_settings.content_disposition == disposition


@pytest.mark.anyio
async def test_read_ranges_cross_block_boundaries(azure: AzureBlobStorage) -> None:
    data = os.urandom(3 * BLOCK + 7)
    ref = await azure.create("up", length=len(data))
    ref = await azure.complete((await azure.append(ref, 0, chunks(data))).ref, len(data))
    assert await contents(azure, ref, BLOCK - 3, 2 * BLOCK + 4) == data[BLOCK - 3 : 2 * BLOCK + 4]
    assert await contents(azure, ref, len(data) - 1) == data[-1:]


@pytest.mark.anyio
async def test_delete_drops_uncommitted_blocks_and_tails(azure: AzureBlobStorage, azurite: Azurite) -> None:
    """Issue 22: termination removes the blob and its uncommitted blocks (not left for Azure's week)."""
    ref = await azure.create("up", length=10 * BLOCK)
    ref = (await azure.append(ref, 0, chunks(os.urandom(3 * BLOCK + 9)))).ref
    await azure.delete(ref)
    with pytest.raises(ResourceNotFoundError):  # neither a blob nor blocks under the name
        await blocks_of(azurite, azure, ref.key)
    assert await azure.names(azure.options.prefix) == []


@pytest.mark.anyio
async def test_concatenation_of_mixed_size_partials_is_byte_exact(azure: AzureBlobStorage) -> None:
    """Issue 22: partials of a byte, a block, blocks and a bit, and nothing, joined inside Azure."""
    datas = [b"x", os.urandom(BLOCK), os.urandom(2 * BLOCK + 3), b"", os.urandom(BLOCK - 1)]
    parts = []
    for index, data in enumerate(datas):
        ref = await azure.create(f"part{index}", length=len(data))
        if data:
            ref = (await azure.append(ref, 0, chunks(data))).ref
        parts.append(await azure.complete(ref, len(data)))
    final = await azure.create("final", length=None, content_type="text/plain")
    await azure.concatenate(final, parts)
    final = await azure.complete(final, sum(map(len, datas)))
    assert await contents(azure, final) == b"".join(datas)
    properties = await (await azure._blob(final.key)).get_blob_properties()
    assert properties.content_settings.content_type == "text/plain"


@pytest.mark.anyio
async def test_buffers_stay_within_the_budget(azure_storage: AzureBlobStorage) -> None:
    """Every block buffer is reserved from the shared budget: four uploads at once never hold more."""
    budget = ByteBudget(3 * BLOCK)
    storage = AzureBlobStorage(replace(azure_storage.options, block_size=BLOCK), budget=budget)
    peak = 0

    async def upload(key: str) -> None:
        nonlocal peak
        ref = await storage.create(key, length=6 * BLOCK)

        async def body() -> AsyncIterator[bytes]:
            nonlocal peak
            async for chunk in chunks(os.urandom(6 * BLOCK)):
                peak = max(peak, budget.used)
                yield chunk

        await storage.complete((await storage.append(ref, 0, body())).ref, 6 * BLOCK)

    try:
        async with anyio.create_task_group() as tasks:
            for index in range(4):
                tasks.start_soon(upload, f"up{index}")
    finally:
        await storage.aclose()
    assert 0 < peak <= budget.total
    assert budget.used == 0


@pytest.mark.anyio
async def test_open_names_a_missing_container(azurite: Azurite) -> None:
    storage = AzureBlobStorage(AzureOptions(container="no-such-container", connection_string=azurite.connection_string))
    try:
        with pytest.raises(StorageError, match="'no-such-container' does not exist"):
            await storage.open()
    finally:
        await storage.aclose()


@pytest.mark.anyio
async def test_open_refuses_a_wrong_account_key(azurite: Azurite, azurite_container: str) -> None:
    wrong = "A" * 10 + ACCOUNT_KEY[10:]
    options = AzureOptions(container=azurite_container, account_url=azurite.account_url, account_key=wrong)
    storage = AzureBlobStorage(options)
    try:
        with pytest.raises(StorageError, match="check the credentials"):
            await storage.open()
    finally:
        await storage.aclose()


@pytest.mark.anyio
async def test_account_url_with_key_works_like_the_connection_string(azurite: Azurite, azurite_container: str) -> None:
    options = AzureOptions(container=azurite_container, account_url=azurite.account_url, account_key=ACCOUNT_KEY)
    storage = AzureBlobStorage(replace(options, prefix="by-key/"))
    try:
        await storage.open()
        ref = await storage.create("up", length=1)
        ref = await storage.complete((await storage.append(ref, 0, chunks(b"k"))).ref, 1)
        assert await contents(storage, ref) == b"k"
    finally:
        await storage.aclose()


def test_options_need_exactly_one_way_to_the_account() -> None:
    with pytest.raises(ValueError, match="connection string or an account URL"):
        AzureBlobStorage(AzureOptions(container="c"))
    with pytest.raises(ValueError, match="not both"):
        AzureBlobStorage(AzureOptions(container="c", account_url="https://a.blob.core.windows.net", account_key="k",
                                      sas_token="s"))  # fmt: skip


@pytest.mark.anyio
async def test_sas_token_credential_uploads_and_signs_sources_with_itself(
    azurite: Azurite, azurite_container: str
) -> None:
    """With a SAS token, uploads work as with a key, and Put Block From URL would read a partial with that same
    SAS (its URL carries it). Azurite 3.37 answers Put Block From URL with 500 whenever the request itself is
    SAS-signed, so the join is checked with a key (test_concatenation_of_mixed_size_partials_is_byte_exact)."""
    sas = generate_account_sas(
        ACCOUNT, ACCOUNT_KEY, ResourceTypes(container=True, object=True),
        AccountSasPermissions(read=True, write=True, delete=True, list=True, add=True, create=True),
        expiry=datetime.now(UTC) + timedelta(hours=1),
    )  # fmt: skip
    options = AzureOptions(container=azurite_container, prefix="by-sas/", account_url=azurite.account_url)
    storage = AzureBlobStorage(replace(options, sas_token=sas, block_size=BLOCK))
    try:
        await storage.open()
        data = os.urandom(BLOCK + 1)
        ref = await storage.create("a", length=len(data))
        ref = await storage.complete((await storage.append(ref, 0, chunks(data))).ref, len(data))
        assert await contents(storage, ref) == data
        assert storage._signer is not None
        source = await storage._signer.url(await storage._blob(ref.key))
        assert source.startswith(f"{azurite.account_url}/{azurite_container}/by-sas/a?")
        assert "sig=" in source
    finally:
        await storage.aclose()

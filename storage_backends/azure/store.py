"""Azure Blob storage: tus offsets onto staged blocks of block blobs, through azure-storage-blob's async client
(`tusserver[azure]`).

Layout (`layout`): each upload is one block blob ``<prefix><key>`` with a fixed block size B recorded
in its `StorageRef`. Full blocks are staged (Put Block) as they fill, under IDs of the append's own; the
bytes of the block being filled are kept in a tail blob ``<key>.tail-NNNNN-<writer><length>`` of the
append's own, which the record names, and which lists the blocks before it. So the recorded offset never
needs a byte that is not durable in Azure, and a writer whose lock lapsed never overwrites a block or
tail that the record needs. `complete` stages the recorded tail's bytes as the last block and commits
the block list (Put Block List) with the Content-Type and Content-Disposition the upload declared;
HEAD never reaches Azure (the state store answers it).

Permissions: read, write, delete and list on the container (list only for `tusserver cleanup`'s sweep);
with Entra ID also "generate a user delegation key" (Storage Blob Delegator) for concatenation.

Caveats: Azure drops uncommitted blocks of a blob that sees no Put Block or Put Block List for about
7 days, so unfinished uploads must expire within that (the server refuses a longer --expiration).
Memory: a block is buffered before it is staged; every buffer is reserved from one `ByteBudget`
shared by all requests, and each request stages at most `block_concurrency` blocks at once.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable, Sequence
from contextlib import suppress
from functools import partial
from typing import ClassVar, TypeVar

import anyio
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobBlock, ContentSettings
from azure.storage.blob.aio import BlobClient, BlobServiceClient, ContainerClient, LinearRetry

from storage_backends._checkpoint import CheckpointClock
from storage_backends._filling import BufferPool
from storage_backends._keys import check_key
from storage_backends.azure import join as azure_join
from storage_backends.azure import sweep as azure_sweep
from storage_backends.azure.auth import SourceSigner
from storage_backends.azure.blocks import BlockWriter
from storage_backends.azure.calls import Body, azure_errors, deadline, error_code
from storage_backends.azure.layout import MAX_BLOB_SIZE, MAX_BLOCK_SIZE, Blob, TailHeader, block_id, block_size_for
from storage_backends.azure.options import AzureOptions
from storage_backends.azure.tails import BATCH, DOOMED, SMALL, TailKeeper
from storage_backends.base import Appended, Checkpoints, Lookup, StorageRef
from storage_backends.budget import ByteBudget
from storage_backends.errors import BlobNotFoundError, StorageError
from storage_backends.pieces import MiB, tail_prefix

__all__ = ["AzureBlobStorage", "AzureOptions"]

logger = logging.getLogger("tusserver.azure")

READ_CHUNK = 4 * MiB  # a download is fetched (and held) this much at a time
SMALL_PUT = SMALL  # aiohttp sends larger bodies given as bytes with a copy (and a warning)
_WHOLE = "whole"  # the ID of a tail's one block
KEPT_CLIENTS = 256  # blob clients kept (`_blob`): the blobs and tails of the uploads being written
T = TypeVar("T")


class AzureBlobStorage:
    """Stores each upload as a block blob; see the module docstring for the layout.

    The client is created on first use (or by `open`, which also checks the container and the credentials).
    """

    scheme: ClassVar[str] = "azure"

    def __init__(self, options: AzureOptions, *, budget: ByteBudget | None = None) -> None:
        self.options = options
        self.budget = budget or ByteBudget(options.buffer_budget)
        self.max_length = MAX_BLOB_SIZE
        self.max_deferred_length = options.max_deferred_length
        self._credentials = options.credentials()  # ValueError: no credentials, or two kinds
        self._service: BlobServiceClient | None = None
        self._container: ContainerClient | None = None
        self._signer: SourceSigner | None = None
        self._opening = anyio.Lock()
        self._tails = TailKeeper()
        self._blobs: dict[str, BlobClient] = {}  # by name, oldest first (`_blob`)
        # Kept for reuse: as many as one upload has in flight, and the one it fills.
        self.buffers = BufferPool(options.block_concurrency + 1, Body.of_size, lambda body: body.size)

    async def open(self) -> None:
        """Connect, and fail with a clear message if the container does not exist or the credentials fail."""
        container = await self._containers()
        what = f"the Azure container {self.options.container!r}"
        try:
            with azure_errors(what):  # a name no upload has: 404 BlobNotFound if the container is there
                await container.get_blob_client(f"{self.options.prefix}.tusserver-check").get_blob_properties()
        except BlobNotFoundError as exc:
            cause = exc.__cause__
            if isinstance(cause, HttpResponseError) and error_code(cause) == "ContainerNotFound":
                raise StorageError(f"{what} does not exist") from None
        except StorageError as exc:
            if type(exc) is StorageError:  # refused (403): a bad key, SAS or role
                raise StorageError(f"cannot use {what} (check the credentials): {exc}") from None
            raise

    async def _containers(self) -> ContainerClient:
        async with self._opening:
            if self._container is None:
                self._service = self._credentials.client(
                    # Two retries, 0.1-0.5 s apart (the SDK's default waits 15 s and more): a throttled or failed
                    # call is tried again within its deadline; past that the client gets 503 with Retry-After,
                    # and tus clients back off themselves.
                    # (The SDK's stubs say int seconds; it draws the wait with random.uniform, floats welcome.)
                    retry_policy=LinearRetry(backoff=0.3, random_jitter_range=0.2, retry_total=2),  # type: ignore[arg-type]
                    connection_timeout=min(self.options.timeout, 10.0),
                    read_timeout=self.options.timeout,
                    max_single_get_size=READ_CHUNK,
                    max_chunk_get_size=READ_CHUNK,
                    max_single_put_size=MAX_BLOCK_SIZE,  # tails and empty blobs: one Put Blob each
                )
                self._signer = SourceSigner(self._service)
                self._container = self._service.get_container_client(self.options.container)
        return self._container

    async def _blob(self, name: str) -> BlobClient:
        """The client of blob `name`, kept for the next calls: making one costs a third of a small call's CPU."""
        client = self._blobs.get(name)
        if client is None:
            client = self._blobs[name] = (await self._containers()).get_blob_client(name)
            if len(self._blobs) > KEPT_CLIENTS:
                del self._blobs[next(iter(self._blobs))]  # the oldest
        return client

    async def _call(
        self, what: str, call: Callable[[], Awaitable[T]], *, sent: int = 0, copied: int = 0, blocks: int = 0
    ) -> T:
        """One Azure operation, retries included, within its deadline (a store that stops answering must not
        hold a request, and its upload's lock, for ever)."""
        limit = deadline(self.options.timeout, sent=sent, copied=copied, blocks=blocks)
        with azure_errors(what):
            with anyio.move_on_after(limit):
                return await call()
            raise TimeoutError(f"no answer within {limit:.3g} s")

    def _key(self, key: str) -> str:
        return self.options.prefix + check_key(key)

    # -- the storage contract ---------------------------------------------------------------

    async def create(
        self, key: str, *, length: int | None, content_type: str | None = None, content_disposition: str | None = None
    ) -> StorageRef:
        """Write the upload's first (empty) tail: it is what says the upload exists until it is finished.
        The block size is fixed now, from the length."""
        options = self.options
        size = block_size_for(length, preferred=options.block_size, deferred=options.deferred_block_size)
        blob = Blob(self._key(key), size, length, None, content_type, content_disposition, secrets.token_hex(4))
        name = blob.tail_key(0, secrets.token_hex(6), 0)
        await self.put(name, Body(TailHeader().encode()))
        return blob.with_tail(name).ref()

    async def append(
        self,
        ref: StorageRef,
        offset: int,
        chunks: AsyncIterable[bytes],
        *,
        size: int | None = None,
        checkpoints: Checkpoints | None = None,
    ) -> Appended:
        """Fill blocks from `offset` on, stage each full one, keep the rest in a tail blob of this append's own."""
        blob = Blob.of(ref)
        writer = BlockWriter(self, blob, offset, CheckpointClock(checkpoints, offset))
        # Old tails are deleted beside the body, if enough wait (a task that finds none costs ~0.1 ms a PATCH).
        alongside = partial(self._delete_doomed, BATCH) if self._tails.doomed() >= BATCH else None
        finished_size = partial(self._finished_size, blob, offset)
        return await writer.append(
            ref, chunks, gone=BlobNotFoundError, finished_size=finished_size, alongside=alongside
        )

    async def stage(self, blob: Blob, block: str, body: Body) -> None:
        """Put Block: `body` (from its start) as the uncommitted block `block` of `blob`."""
        client = await self._blob(blob.key)
        size = body.seek(0, 2)
        body.seek(0)
        stage = partial(client.stage_block, block, body, length=size)
        await self._call(f"block {block} of {blob.key}", stage, sent=size)

    async def put(self, name: str, body: Body) -> None:
        """A small blob (a tail: a header, and at most a block's bytes): one Put Blob, or for over 1 MiB a Put
        Block and a Put Block List, because the SDK sends a Put Blob's body as bytes, which the HTTP client
        copies whole (see `Body`)."""
        client = await self._blob(name)
        size = body.seek(0, 2)
        if size <= SMALL_PUT:
            data = body.getvalue()
            await self._call(f"put {name}", partial(client.upload_blob, data, overwrite=True), sent=size)
            self._tails.remember(name, data)
            return
        tail = Blob(name, size, size, None)
        await self.stage(tail, _WHOLE, body)
        await self._call(f"commit {name}", partial(client.commit_block_list, [BlobBlock(_WHOLE)]), blocks=1)

    async def read_tail(self, blob: Blob) -> tuple[TailHeader, memoryview]:
        """The header of the tail blob `blob` names, and its bytes.

        Raises:
            BlobNotFoundError: there is no such tail (the upload was finished or deleted).
            StorageError: the blob is not a tail.
        """
        try:
            if blob.inline is not None:
                return TailHeader.of_inline(blob.inline), memoryview(b"")
            data = self._tails.recall(blob.tail_name) or await self.get(blob.tail_name)
            header, start = TailHeader.decode(data)
        except ValueError:
            raise StorageError(f"{blob.tail_name} is not a tail blob") from None
        return header, memoryview(data)[start:]

    async def get(self, name: str) -> bytes:
        """A whole small blob (a tail: at most one block and its header)."""
        client = await self._blob(name)

        async def download() -> bytes:
            return await (await client.download_blob(max_concurrency=1)).readall()

        return await self._call(f"read {name}", download)

    async def blob_size(self, name: str) -> int:
        """The committed size of blob `name`."""
        client = await self._blob(name)
        properties = await self._call(f"head {name}", client.get_blob_properties)
        return int(properties.size)

    async def stored_length(self, ref: StorageRef) -> int:
        """The bytes in full blocks plus those of the recorded tail; once finished, the blob's size."""
        blob = Blob.of(ref)
        if blob.tail is not None:
            try:
                header, tail = await self.read_tail(blob)
                return header.count * blob.block_size + len(tail)
            except BlobNotFoundError:
                pass  # finished (the tails are removed then), or deleted
        return await self.blob_size(blob.key)

    async def _finished_size(self, blob: Blob, offset: int) -> int | None:
        """The size of the finished blob if there is one that holds `offset` bytes and, for a known length,
        all of them."""
        try:
            size = await self.blob_size(blob.key)
        except StorageError:
            return None
        if size < offset or (blob.length is not None and size != blob.length):
            return None
        return size

    async def complete(self, ref: StorageRef, length: int) -> StorageRef:
        """Stage the recorded tail's bytes as the last block and commit the block list, with the upload's
        content headers; a zero-length upload commits an empty list, which still creates its blob.

        Repeating it after a crash is harmless: a finished blob of the right size is left as it is.
        """
        blob = Blob.of(ref)
        finished = blob.with_tail(None).ref()
        if blob.tail is None:
            return finished
        reserved = await self.budget.acquire(min(blob.block_size, length) or 1)
        try:
            header, tail = await self.read_tail(blob)
            rest = length - header.count * blob.block_size
            if not 0 <= rest <= len(tail):
                raise StorageError(f"the last tail of {blob.key} holds fewer bytes than {length}")
            blocks = header.block_ids()
            if rest:
                blocks.append(block_id(header.count, blob.tail_token))
                body = Body(tail[:rest])
                await self.stage(blob, blocks[-1], body)
                body.free()
            del tail
            await self.commit(blob, blocks)
        except BlobNotFoundError:  # completed before (a crash before the record): the blob is there
            if await self.blob_size(blob.key) != length:
                raise
        finally:
            self.budget.release(reserved)
        return finished

    async def commit(self, blob: Blob, blocks: list[str]) -> None:
        """Put Block List: the blob becomes `blocks`, in order (uncommitted blocks not listed are dropped),
        then its tails go."""
        client = await self._blob(blob.key)
        headers = ContentSettings(content_type=blob.content_type, content_disposition=blob.content_disposition)
        block_list = [BlobBlock(block) for block in blocks]
        commit = partial(client.commit_block_list, block_list, content_settings=headers)
        await self._call(f"commit {blob.key}", commit, blocks=len(blocks))
        await self._delete_tails(blob.tails)

    async def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        """Stream the finished blob (or a byte range of it) in pieces of at most READ_CHUNK bytes."""
        if end is not None and end <= start:
            return
        client = await self._blob(ref.key)
        what = f"read {ref.key}"
        # No range for the whole blob: the SDK then also reads an empty one (a range of it is refused with 416).
        offset, length = (None, None) if start == 0 and end is None else (start, None if end is None else end - start)
        stream = await self._call(what, partial(client.download_blob, offset=offset, length=length, max_concurrency=1))
        pieces = stream.chunks()
        while True:
            with azure_errors(what):
                piece = await anext(pieces, None)
            if piece is None:
                return
            yield piece

    async def concatenate(self, ref: StorageRef, parts: Sequence[StorageRef]) -> None:
        """Join finished uploads into `ref` inside Azure (Put Block From URL; see `join`) and commit it."""
        await azure_join.concatenate(self, ref, parts)

    async def source_url(self, name: str) -> str:
        """Blob `name`'s URL with a short-lived read SAS, for Azure to read it itself (Put Block From URL)."""
        blob = await self._blob(name)
        assert self._signer is not None
        return await self._signer.url(blob)

    async def discard(self, old: StorageRef, new: StorageRef) -> None:
        """Delete the tail blob `old` named, once the record names another (or none): in the background of the
        next append, unless many wait (`tails`)."""
        previous, current = Blob.of(old), Blob.of(new)
        if previous.tail is None or previous.inline is not None or previous.tail == current.tail:
            return  # nothing in Azure to delete
        if self._tails.doom(previous.tail_name):
            await self._delete_doomed()

    async def _delete_doomed(self, at_least: int = 1) -> None:
        """Delete the doomed tails, if `at_least` of them wait; a failure is logged (they are garbage at worst,
        removed with their upload or by the sweep)."""
        try:
            await self.delete_blobs(self._tails.take_doomed(at_least))
        except StorageError as exc:
            logger.info("could not delete tails: %s", exc)

    async def delete(self, ref: StorageRef) -> None:
        """Remove the tails, the uncommitted blocks and the blob; idempotent.

        Azure keeps uncommitted blocks for a week after a blob's last Put Block, even when the blob is
        deleted; committing an empty block list drops them at once, then the (empty) blob is deleted.
        """
        if "block_size" not in ref.extra:  # a bare reference (a leftover of a derived key): everything under it
            await self._delete_tails(tail_prefix(ref.key))
            await self.drop(ref.key, uncommitted=True)
            return
        blob = Blob.of(ref)
        await self._delete_tails(blob.tails)
        await self.drop(blob.key, uncommitted=blob.tail is not None)

    async def drop(self, name: str, *, uncommitted: bool) -> None:
        """Delete blob `name` (after dropping its uncommitted blocks if it may have some); gone already is fine."""
        self._tails.forget(name)
        client = await self._blob(name)
        if uncommitted:
            await self._call(f"drop the blocks of {name}", partial(client.commit_block_list, []))
        with suppress(BlobNotFoundError):
            await self._call(f"delete {name}", client.delete_blob)
        self._blobs.pop(name, None)

    async def _delete_tails(self, prefix: str) -> None:
        await self.delete_blobs(await self.names(prefix))

    async def delete_blobs(self, names: list[str]) -> None:
        """Delete the committed blobs `names` (tails); gone already is fine.

        Up to `DOOMED` (Azure's limit) per batch request; one by one with a SAS (Azurite refuses batches signed
        with one), and when a batch fails.
        """
        for name in names:
            self._tails.forget(name)
        signed = self._service is not None and self._service.credential is not None  # a key or Entra ID
        size = DOOMED if signed else 1
        for start in range(0, len(names), size):
            batch = names[start : start + size]
            if len(batch) > 1 and await self._deleted_in_one(batch):
                continue
            for name in batch:
                await self.drop(name, uncommitted=False)

    async def _deleted_in_one(self, names: list[str]) -> bool:
        """Delete `names` in one batch request; False if it failed."""
        container = await self._containers()

        async def delete() -> None:
            async for answer in await container.delete_blobs(*names, raise_on_any_failure=False):
                if answer.status_code not in (202, 404):
                    raise StorageError(f"{answer.status_code} {answer.reason}")

        try:
            await self._call(f"delete {len(names)} tails of {names[0]}", delete)
        except StorageError as exc:
            logger.info("a batch delete failed, deleting one by one: %s", exc)
            return False
        for name in names:
            self._blobs.pop(name, None)
        return True

    async def names(self, prefix: str) -> list[str]:
        """The names of the committed blobs starting with `prefix`."""
        container = await self._containers()

        async def listing() -> list[str]:
            return [item.name async for item in container.list_blobs(name_starts_with=prefix)]

        return await self._call(f"list {prefix}", listing)

    async def sweep(self, lookup: Lookup, *, older_than: float) -> list[str]:
        """Remove the blobs, tails and uncommitted blocks that no record names (see `sweep`)."""
        return await azure_sweep.sweep(self, lookup, older_than=older_than)

    async def aclose(self) -> None:
        """Delete the doomed tails, and close the client's connections (and a DefaultAzureCredential's)."""
        if self._service is not None:
            with anyio.move_on_after(self.options.timeout, shield=True):
                await self._delete_doomed()
        service, self._service, self._container = self._service, None, None
        self._blobs.clear()
        if service is not None:
            await service.close()
        await self._credentials.aclose()

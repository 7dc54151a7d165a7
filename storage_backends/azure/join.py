"""Concatenation inside Azure (`AzureBlobStorage.concatenate`): each range of a partial upload becomes a block of
the final blob by Put Block From URL, which reads the partial itself through a short-lived read SAS; no byte
passes through the server, and blocks have no minimum size, so nothing needs gathering (unlike S3's 5 MiB)."""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING

import anyio

from storage_backends._tasks import run_all
from storage_backends.azure.layout import Blob, block_id, plan_join
from storage_backends.base import StorageRef
from storage_backends.errors import StorageError
from storage_backends.pieces import TargetPart

if TYPE_CHECKING:
    from storage_backends.azure.store import AzureBlobStorage

__all__ = ["concatenate"]


async def concatenate(storage: AzureBlobStorage, ref: StorageRef, parts: Sequence[StorageRef]) -> None:
    """Make the blob of `ref` hold the committed bytes of `parts`, in order, under block IDs of a new token (a
    repeated join replaces an earlier one); commits it, which also removes its tails.

    Raises:
        BlobNotFoundError: a part's blob is gone.
        StorageError: the join needs more than 50,000 blocks, or Azure failed.
    """
    blob = Blob.of(ref)
    sources = [part.key for part in parts]
    sizes = [await storage.blob_size(source) for source in sources]
    try:
        plan = plan_join(sizes)
    except ValueError as exc:
        raise StorageError(str(exc)) from exc
    token = secrets.token_hex(6)
    limiter = anyio.CapacityLimiter(storage.options.block_concurrency)

    async def copy(target: TargetPart) -> None:
        async with limiter:
            await _copy_block(storage, blob, block_id(target.number - 1, token), target, sources)

    await run_all([partial(copy, target) for target in plan])
    await storage.commit(blob, [block_id(target.number - 1, token) for target in plan])


async def _copy_block(
    storage: AzureBlobStorage, blob: Blob, block: str, target: TargetPart, sources: list[str]
) -> None:
    segment = target.segments[0]  # a single range: blocks have no minimum size
    source = sources[segment.source]
    url = await storage.source_url(source)
    client = await storage._blob(blob.key)
    copy = partial(client.stage_block_from_url, block, url, source_offset=segment.start, source_length=segment.size)
    await storage._call(f"copy {source} into {blob.key}", copy, copied=segment.size)

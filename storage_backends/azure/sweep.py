"""Finding what no record names in an Azure prefix: blobs, tails and uncommitted blocks left by a crash between
creating and recording, and tails of writers whose lock lapsed (`AzureBlobStorage.sweep`)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from storage_backends._keys import KEY_PATTERN
from storage_backends.azure.calls import azure_errors
from storage_backends.base import Lookup, StorageRef

if TYPE_CHECKING:
    from storage_backends.azure.store import AzureBlobStorage

__all__ = ["sweep"]

_TAIL = ".tail-"


async def sweep(storage: AzureBlobStorage, lookup: Lookup, *, older_than: float) -> list[str]:
    """Delete the blobs under the storage's prefix (those with only uncommitted blocks included) that no
    recorded reference holds and that are older than `older_than` seconds; returns their names.

    Uncommitted blocks of a recorded upload are left alone, those of a writer whose lock lapsed included:
    only a commit could drop them, and Azure drops them itself a week after the blob's last Put Block.
    """
    before = datetime.now(UTC) - timedelta(seconds=older_than)
    prefix = storage.options.prefix
    container = await storage._containers()
    candidates: list[str] = []
    with azure_errors(f"list {prefix}"):
        async for item in container.list_blobs(name_starts_with=prefix, include=["uncommittedblobs"]):
            modified = item.last_modified
            if modified is None or modified < before:
                candidates.append(item.name)
    removed = []
    for name in candidates:
        key, tail = _upload_key(name.removeprefix(prefix))
        if key is not None and not _holds(await lookup(key), tail):
            await storage.drop(name, uncommitted=tail is None)
            removed.append(name)
    return removed


def _upload_key(name: str) -> tuple[str | None, str | None]:
    """The key the upload was created under and, for a tail blob, the tail's name (None for others)."""
    key, separator, tail = name.partition(_TAIL)
    if not KEY_PATTERN.fullmatch(key):  # not an upload's: leave it alone
        return None, None
    return key, tail if separator else None


def _holds(ref: StorageRef | None, tail: str | None) -> bool:
    """Whether the recorded reference `ref` needs the blob: the upload's own, or its current tail."""
    if ref is None:
        return False
    return tail is None or tail == ref.extra.get("tail")

"""Finding what no record names in an S3 prefix: objects and tails left by a crash between creating and
recording, tails of writers whose lock lapsed, multipart uploads nobody will complete (`S3Storage.sweep`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from storage_backends._keys import KEY_PATTERN
from storage_backends.base import Lookup, StorageRef

if TYPE_CHECKING:
    from storage_backends.s3.store import S3Storage

__all__ = ["sweep"]

_TAIL = ".tail-"


async def sweep(storage: S3Storage, lookup: Lookup, *, older_than: float) -> list[str]:
    """Delete the objects and abort the multipart uploads under the storage's prefix that no recorded
    reference holds and that are older than `older_than` seconds; returns their keys."""
    before = datetime.now(UTC) - timedelta(seconds=older_than)
    removed = []
    async for item in _pages(storage, "list_objects_v2", "Contents", Prefix=storage.options.prefix):
        key, tail = _upload_key(storage, item["Key"])
        if key is None or item["LastModified"] >= before:
            continue
        if not _holds(await lookup(key), tail):
            await storage._call(f"delete {item['Key']}", "delete_object", Key=item["Key"])
            removed.append(item["Key"])
    async for item in _pages(storage, "list_multipart_uploads", "Uploads", Prefix=storage.options.prefix):
        key, tail = _upload_key(storage, item["Key"])
        if key is None or tail is not None or item["Initiated"] >= before:
            continue
        ref = await lookup(key)
        if ref is None or ref.extra.get("upload_id") != item["UploadId"]:
            await storage._call(
                f"abort {item['Key']}", "abort_multipart_upload", Key=item["Key"], UploadId=item["UploadId"]
            )
            removed.append(f"{item['Key']} (multipart upload {item['UploadId']})")
    return removed


def _upload_key(storage: S3Storage, object_key: str) -> tuple[str | None, str | None]:
    """The key the upload was created under and, for a tail object, the tail's name (None for others)."""
    rest = object_key.removeprefix(storage.options.prefix)
    key, separator, tail = rest.partition(_TAIL)
    if not KEY_PATTERN.fullmatch(key):  # not an upload's: leave it alone
        return None, None
    return key, tail if separator else None


def _holds(ref: StorageRef | None, tail: str | None) -> bool:
    """Whether the recorded reference `ref` needs the object: the upload's own, or its current tail (a record
    from before tails had names of their own needs any tail without one)."""
    if ref is None:
        return False
    if tail is None:
        return True
    recorded = ref.extra.get("tail")
    return tail == recorded or (recorded is None and "-" not in tail)


async def _pages(storage: S3Storage, operation: str, field: str, **params: Any) -> AsyncIterator[dict[str, Any]]:
    """Every item of a listing, a page (up to 1,000) at a time."""
    markers: dict[str, str] = {}
    while True:
        page = await storage._call(f"{operation} {params.get('Prefix', '')}", operation, **params, **markers)
        for item in page.get(field, []):
            yield item
        if not page.get("IsTruncated"):
            return
        if operation == "list_objects_v2":
            markers = {"ContinuationToken": page["NextContinuationToken"]}
        else:
            markers = {"KeyMarker": page["NextKeyMarker"], "UploadIdMarker": page["NextUploadIdMarker"]}

"""The requests hooks receive, built from an upload record (tusd's wire format; `model`)."""

from __future__ import annotations

import base64
import binascii
import secrets
import time
from collections.abc import Mapping

from storage_backends.base import StorageRef
from tusserver.context import TusContext
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookEventData, HookHTTPRequest, HookRequest, HookUpload
from tusserver.protocol.lifecycle import current_state
from tusserver.protocol.model import UploadInfo

__all__ = [
    "NO_REQUEST",
    "about",
    "decoded_metadata",
    "encoded_metadata",
    "event_request",
    "new_event_id",
    "storage_description",
]

NO_REQUEST = HookHTTPRequest()  # events no client request caused (expiry)


def event_request(
    event: HookEvent,
    info: UploadInfo | None,
    http: HookHTTPRequest,
    *,
    storage: Mapping[str, str] | None = None,
    metadata: Mapping[str, str] | None = None,
    size: int | None = None,
) -> HookRequest:
    """The request `event` sends: about `info` (None in pre-create, where `metadata` and `size` describe the
    upload to be), with a new unique `EventID`."""
    if info is None:
        upload = HookUpload(Size=size, SizeIsDeferred=size is None, MetaData=decoded_metadata(metadata or {}))
    else:
        upload = HookUpload(
            ID=info.id,
            Size=info.length,
            SizeIsDeferred=info.length is None,
            Offset=info.offset,
            MetaData=decoded_metadata(info.metadata),
            IsPartial=info.concat == "partial",
            IsFinal=info.concat == "final",
            PartialUploads=list(info.parts) if info.concat == "final" else None,
            Storage=dict(storage) if storage is not None else None,
            Owner=info.owner,
            State=current_state(info),
        )
    return HookRequest(Type=event, Event=HookEventData(Upload=upload, HTTPRequest=http), EventID=new_event_id())


def new_event_id() -> str:
    """32 hex characters: the time in microseconds (14), then 72 random bits. Ids in the order they were made
    keep the outbox's index on them compact: an event is inserted, and soon removed, at its end (SQLite writes
    fewer pages per commit than with ids spread over the whole index)."""
    return f"{time.time_ns() // 1000:014x}{secrets.token_hex(9)}"


def decoded_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """Upload-Metadata values as text, as tusd hands them to hooks (kept as sent where not UTF-8)."""
    decoded = {}
    for key, value in metadata.items():
        try:
            decoded[key] = base64.b64decode(value, validate=True).decode()
        except (binascii.Error, UnicodeDecodeError):
            decoded[key] = value
    return decoded


def encoded_metadata(metadata: Mapping[str, str]) -> dict[str, str]:
    """A hook's metadata (text) in the record's form (base64 values, "" for none)."""
    return {key: base64.b64encode(value.encode()).decode() if value else "" for key, value in metadata.items()}


def storage_description(storage: object, ref: StorageRef) -> dict[str, str]:
    """Where an upload's bytes are, as tusd's stores say it (`Upload.Storage`)."""
    if ref.backend == "file":
        return {"Type": "filestore", "Path": f"{getattr(storage, 'root', '.')}/{ref.key}"}
    if ref.backend == "s3":
        return {
            "Type": "s3store",
            "Bucket": str(getattr(getattr(storage, "options", None), "bucket", "")),
            "Key": ref.key,
        }
    if ref.backend == "azure":
        return {
            "Type": "azurestore",
            "Container": str(getattr(getattr(storage, "options", None), "container", "")),
            "Key": ref.key,
        }
    return {"Type": ref.backend, "Key": ref.key}


def about(tus: TusContext, event: HookEvent, info: UploadInfo, http: HookHTTPRequest) -> HookRequest:
    """The request of `event` about the existing upload `info`."""
    return event_request(event, info, http, storage=storage_description(tus.storage, info.storage))

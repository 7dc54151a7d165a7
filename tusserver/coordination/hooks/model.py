"""The hook wire format: tusd's JSON request and response (../shared/HOOKS.md), as typed models.

Receivers written for tusd read these field names (PascalCase, as Go encodes them). Responses are decoded
as Go decodes JSON into tusd's structs: field names match case-insensitively, unknown fields are ignored,
so a receiver written for tusd works unchanged. In-process hooks get and return the same models.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

__all__ = [
    "EMPTY_RESPONSE",
    "HookChangeFileInfo",
    "HookEventData",
    "HookHTTPRequest",
    "HookHTTPResponse",
    "HookPrincipal",
    "HookRequest",
    "HookResponse",
    "HookUpload",
    "InvalidHookResponseError",
]


class _Wire(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class HookUpload(_Wire):
    """The upload as a hook sees it (tusd's FileInfo)."""

    ID: str = ""  # empty in pre-create: not chosen yet
    Size: int | None = None  # None while the length is deferred
    SizeIsDeferred: bool = False
    Offset: int = 0
    MetaData: dict[str, str] = {}  # decoded values (tusd decodes Upload-Metadata before hooks see it)
    IsPartial: bool = False
    IsFinal: bool = False
    PartialUploads: list[str] | None = None
    Storage: dict[str, str] | None = None  # where the bytes are: {"Type": "filestore", "Path": ...}
    Owner: str | None = None  # beyond tusd: the principal that created it (authorization), None without
    State: str | None = None  # beyond tusd: where it is in its life (uploading, uploaded, accepted, ...)


class HookHTTPRequest(_Wire):
    """The client request that caused the event."""

    Method: str = ""
    URI: str = ""
    RemoteAddr: str = ""
    Header: dict[str, list[str]] = {}  # canonical names (Upload-Metadata), values as lists: headers repeat


class HookEventData(_Wire):
    Upload: HookUpload = HookUpload()
    HTTPRequest: HookHTTPRequest = HookHTTPRequest()


class HookRequest(_Wire):
    """What a hook receives. `EventID` is unique per event (beyond tusd): an event delivered twice (after a
    crash, or a retry whose answer was lost) carries the same id, so receivers can drop duplicates."""

    Type: str
    Event: HookEventData
    EventID: str = ""

    def to_json(self) -> bytes:
        return self.model_dump_json().encode()


class HookHTTPResponse(_Wire):
    """What the client gets instead of (pre-create rejection, stopped upload) or on top of (pre-finish) the
    server's own answer; zero and empty fields are left as the server has them."""

    StatusCode: int = 0
    Body: str = ""
    Header: dict[str, str] = {}


class HookChangeFileInfo(_Wire):
    """pre-create only: the upload's id and metadata, chosen by the hook."""

    ID: str = ""
    MetaData: dict[str, str] | None = None  # replaces the metadata as a whole
    Storage: dict[str, str] | None = None  # accepted and ignored, as tusd's S3 and Azure stores do


class HookPrincipal(_Wire):
    """pre-access only (beyond tusd): who the request acts for; an empty ID names nobody."""

    ID: str = ""
    Admin: bool = False  # reaches every upload (and the status API's admin actions)


class HookResponse(_Wire):
    """What a hook may answer; every field is optional."""

    HTTPResponse: HookHTTPResponse = HookHTTPResponse()
    # pre-create: refuse the upload (tusd). pre-finish (beyond tusd, which ignores it there): the verdict is
    # `rejected`; the finishing request gets 403 ERR_UPLOAD_REJECTED with the Reason, or this HTTPResponse.
    RejectUpload: bool = False
    HoldUpload: bool = False  # pre-finish (beyond tusd): keep it `uploaded` until an admin gives the verdict
    Reason: str = ""  # pre-finish (beyond tusd): why; recorded as the upload's reason
    RejectTermination: bool = False
    ChangeFileInfo: HookChangeFileInfo = HookChangeFileInfo()
    StopUpload: bool = False
    RejectAccess: bool = False  # pre-access: deny the request (with HTTPResponse, else 403 ERR_ACCESS_DENIED)
    Principal: HookPrincipal = HookPrincipal()  # pre-access: the principal the request acts for

    @classmethod
    def decode(cls, body: bytes | str) -> HookResponse:
        """Decode a receiver's answer as tusd would; an empty body is an empty response.

        Raises:
            InvalidHookResponseError: not a JSON object of the right shape.
        """
        if not body.strip() or body in _EMPTY_ANSWERS:  # the usual answer, without a parse and a validation
            return EMPTY_RESPONSE
        try:
            data = json.loads(body)
        except ValueError as exc:
            raise InvalidHookResponseError(f"not JSON: {exc}") from None
        return cls.from_mapping(data)

    @classmethod
    def from_mapping(cls, data: object) -> HookResponse:
        """Validate a decoded answer, matching field names case-insensitively.

        Raises:
            InvalidHookResponseError: not an object of the right shape.
        """
        if not isinstance(data, Mapping):
            raise InvalidHookResponseError("not a JSON object")
        try:
            return cls.model_validate(_canonical(cls, data))
        except ValidationError as exc:
            raise InvalidHookResponseError(str(exc).splitlines()[0]) from None


EMPTY_RESPONSE = HookResponse()
"""The answer that says nothing (models are frozen: one instance serves every use)."""
_EMPTY_ANSWERS = frozenset({"{}", b"{}", "{}\n", b"{}\n"})


class InvalidHookResponseError(ValueError):
    """A hook answered something that is not a hook response."""


def _canonical(model: type[BaseModel], data: Mapping[str, Any]) -> dict[str, Any]:
    """`data` with its keys renamed to `model`'s field names where they match case-insensitively (Go's
    rule), recursively into nested models; keys that match no field are dropped."""
    fields = {name.lower(): name for name in model.model_fields}
    result: dict[str, Any] = {}
    for key, value in data.items():
        name = fields.get(str(key).lower())
        if name is None:
            continue
        annotation = model.model_fields[name].annotation
        nested = isinstance(annotation, type) and issubclass(annotation, BaseModel) and isinstance(value, Mapping)
        result[name] = _canonical(annotation, value) if nested else value  # type: ignore[arg-type]
    return result

"""The status API's documents (issue 21): the JSON it answers, the parameters and bodies it takes, the opaque page
cursor, and its OpenAPI 3.1 description, whose schemas pydantic generates from the models here (so the document
cannot drift from the answers). Pure: no request is handled here (`tusserver.pipeline.api` does that).

The docstrings of the models and their fields are the descriptions clients read in the OpenAPI document.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from importlib import metadata
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.json_schema import models_json_schema

from tusserver.coordination.state.listing import Position
from tusserver.protocol.errors import InvalidParameterError
from tusserver.protocol.headers import UPLOAD_ID, decode_metadata
from tusserver.protocol.lifecycle import current_state
from tusserver.protocol.model import UploadInfo, UploadState

__all__ = [
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "Acceptance",
    "ListQuery",
    "Rejection",
    "UploadPage",
    "UploadStatus",
    "decode_cursor",
    "encode_cursor",
    "openapi_document",
    "status_of",
]

DEFAULT_LIMIT = 50
MAX_LIMIT = 500
# One line of printable text: a reason goes into the `ERR_UPLOAD_REJECTED: <reason>` line clients get.
_ONE_LINE = r"^[^\x00-\x1f\x7f]*$"


class UploadStatus(BaseModel):
    """One upload: what the server knows about it, and where its tus URL is."""

    model_config = ConfigDict(title="Upload", use_attribute_docstrings=True)

    id: str
    """The upload's id, the last segment of its tus URL."""
    url: str
    """The upload's tus URL (HEAD, PATCH, GET, DELETE); 404 there once the upload is removed."""
    length: int | None
    """The declared length in bytes (Upload-Length); null while deferred."""
    offset: int
    """The bytes stored so far (Upload-Offset)."""
    metadata: dict[str, str]
    """Upload-Metadata, decoded: each value as UTF-8 text (a byte that is not UTF-8 becomes U+FFFD), "" for a key
    sent without a value."""
    state: UploadState
    reason: str | None
    """Why it was rejected, or what the verdict said; null for none."""
    owner: str | None
    """The principal that created it; null when it was created without authorization."""
    created_at: datetime
    finished_at: datetime | None
    """When its last byte was stored; null before."""
    expires_at: datetime | None
    """When it expires if unfinished, or is removed once finished or rejected; null for never."""
    removed_at: datetime | None
    """When its bytes were removed (terminated, expired, or rejected and cleaned up): the record stays a while
    to say what became of the upload. Null while the bytes are kept."""
    digest: str | None
    """The whole file's digest once verified or computed, `<algorithm> <base64>` (e.g. `sha256 n4bQ...`)."""
    concat: Literal["partial", "final"] | None
    """`partial` or `final` for the concatenation extension, null for a plain upload."""
    parts: list[str]
    """A final upload's partial uploads' ids, in order; empty for others."""


class UploadPage(BaseModel):
    """A page of uploads, newest first."""

    model_config = ConfigDict(use_attribute_docstrings=True)

    uploads: list[UploadStatus]
    next_cursor: str | None
    """Pass as `cursor` for the next page; null on the last page."""


class ListQuery(BaseModel):
    """The query parameters of `GET <api>/uploads`."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    state: UploadState | None = None
    """Only uploads in this state."""
    owner: str | None = Field(default=None, min_length=1)
    """Only this principal's uploads. An admin may name anyone; others only themselves (their own are all they
    see). Without authorization configured, anyone may name anyone."""
    cursor: str | None = None
    """The `next_cursor` of the previous page; absent for the first (newest) page."""
    limit: int = Field(default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT)
    """The most uploads on a page."""


class Acceptance(BaseModel):
    """The body of an accept: optional (an empty body accepts without a reason)."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    reason: str | None = Field(default=None, min_length=1, max_length=1000, pattern=_ONE_LINE)
    """What the verdict says, shown as the upload's `reason`."""


class Rejection(BaseModel):
    """The body of a reject."""

    model_config = ConfigDict(extra="forbid", use_attribute_docstrings=True)

    reason: str = Field(min_length=1, max_length=1000, pattern=_ONE_LINE)
    """Why: the upload's `reason`, and what its tus URL answers from now on (`403 ERR_UPLOAD_REJECTED: <reason>`)."""


def status_of(info: UploadInfo, url: str) -> UploadStatus:
    """The status API's view of a record whose tus URL is `url`."""
    decoded = {key: value.decode("utf-8", "replace") for key, value in decode_metadata(info.metadata).items()}
    return UploadStatus(
        id=info.id,
        url=url,
        length=info.length,
        offset=info.offset,
        metadata=decoded,
        state=current_state(info),
        reason=info.reason,
        owner=info.owner,
        created_at=info.created_at,
        finished_at=info.finished_at,
        expires_at=info.expires_at,
        removed_at=info.removed_at,
        digest=info.digest,
        concat=info.concat,
        parts=list(info.parts),
    )


def encode_cursor(position: Position) -> str:
    """The opaque cursor of a listing position: URL-safe base64 of `<created µs>.<id>`, without padding."""
    return base64.urlsafe_b64encode(f"{position.created}.{position.upload_id}".encode()).rstrip(b"=").decode()


def decode_cursor(cursor: str) -> Position:
    """The listing position `encode_cursor` made `cursor` of.

    Raises:
        InvalidParameterError: not a cursor this server made.
    """
    try:
        created, _, upload_id = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode().partition(".")
        if created.isdigit() and UPLOAD_ID.fullmatch(upload_id):
            return Position(int(created), upload_id)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise InvalidParameterError("cursor: not a cursor this server gave out")


# --- the OpenAPI document ------------------------------------------------------------------------------------------

_REF = "#/components/schemas/{model}"
_STATES = (
    "Where the upload is in its life: `uploading` until every byte is stored, then `uploaded`; a verdict (a "
    "pre-finish hook's, an admin's, or the declared whole-file digest's) makes it `accepted` or `rejected` "
    "(without one it is accepted at once). `terminated` (DELETE) and `expired` end it."
)
_ERROR = {
    "type": "string",
    "pattern": "^ERR_[A-Z0-9_]+: ",
    "description": "The error table's line, as every endpoint of this server answers: `<code>: <reason>`.",
    "examples": ["ERR_UPLOAD_NOT_FOUND: upload not found\n"],
}
_FAILURES = {
    "400": "A parameter or the body is not valid (ERR_INVALID_PARAMETER).",
    "401": "Authorization is configured and the request has no valid bearer token (ERR_UNAUTHORIZED).",
    "403": "Not allowed: an admin's action (ERR_ADMIN_REQUIRED), or a pre-access hook's denial.",
    "404": "No such upload, or another principal's (ERR_UPLOAD_NOT_FOUND): never a hint that it exists.",
    "409": "The upload's state does not allow this verdict (ERR_UPLOAD_STATE_CONFLICT).",
    "423": "A request is using the upload; retry (ERR_UPLOAD_LOCKED).",
    "501": "The state store cannot list uploads (ERR_LISTING_UNSUPPORTED).",
    "503": "The state store is unreachable, or a hook failed; retry (ERR_SERVICE_UNAVAILABLE).",
}


def openapi_document(api_path: str, server_url: str | None) -> dict[str, Any]:
    """The OpenAPI 3.1 description of the status API served under `api_path` (e.g. "/api"), for a server at
    `server_url` (the mount prefix of an embedded app; None for the root)."""
    schemas = _schemas()
    parameters = [_query_parameter(name, schema) for name, schema in schemas.pop("ListQuery")["properties"].items()]
    upload_id = {"name": "upload_id", "in": "path", "required": True, "schema": {"type": "string"}}
    document: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {"title": "tusserver status API", "version": _version(), "description": _DESCRIPTION},
        "paths": {
            f"{api_path}/uploads": {"get": _list_operation(parameters)},
            f"{api_path}/uploads/{{upload_id}}": {"parameters": [upload_id], "get": _get_operation()},
            f"{api_path}/uploads/{{upload_id}}/accept": {"parameters": [upload_id], "post": _verdict("accept")},
            f"{api_path}/uploads/{{upload_id}}/reject": {"parameters": [upload_id], "post": _verdict("reject")},
            f"{api_path}/openapi.json": {"get": _self_operation()},
        },
        "components": {
            "schemas": {**schemas, "Error": _ERROR},
            "responses": {status: _error_response(text) for status, text in _FAILURES.items()},
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}, {}],  # a token when authorization is configured; none otherwise
    }
    if server_url:
        document["servers"] = [{"url": server_url}]
    return document


_DESCRIPTION = (
    "What became of uploads: list them (newest first, by cursor), read one, and (admins) accept or reject a "
    "finished one. The same authorization as the tus endpoints: with it configured, a caller sees only its "
    "own uploads, and another's is not found; admins see and judge every upload. Errors are the server's "
    "error table's line, `text/plain`."
)


def _schemas() -> dict[str, Any]:
    """Every model's JSON Schema (draft 2020-12, as OpenAPI 3.1 takes it), referencing each other in components."""
    models = [(UploadPage, "serialization"), (UploadStatus, "serialization"), (ListQuery, "validation")]
    models += [(Acceptance, "validation"), (Rejection, "validation")]
    _, top = models_json_schema(models, ref_template=_REF)  # type: ignore[arg-type]
    schemas: dict[str, Any] = top["$defs"]
    schemas["UploadState"]["description"] = _STATES  # the enum's docstring is written for this code's readers
    return schemas


def _query_parameter(name: str, schema: dict[str, Any]) -> dict[str, Any]:
    schema = dict(schema)
    description = schema.pop("description", "")
    schema.pop("title", None)
    if "anyOf" in schema:  # an optional parameter is absent, never null: its schema is the non-null branch's
        (schema,) = [branch for branch in schema.pop("anyOf") if branch != {"type": "null"}]
    return {"name": name, "in": "query", "required": False, "description": description, "schema": schema}


def _json(model: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": _REF.format(model=model)}}}


def _failures(*statuses: str) -> dict[str, Any]:
    common = ("401", "503")
    return {status: {"$ref": f"#/components/responses/{status}"} for status in sorted({*statuses, *common})}


def _error_response(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"text/plain": {"schema": {"$ref": _REF.format(model="Error")}}}}


def _list_operation(parameters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "operationId": "listUploads",
        "summary": "The caller's uploads (an admin's: everyone's), newest first",
        "description": "A page of uploads, then the next from `next_cursor`; uploads created meanwhile never shift "
        "a later page (they are newer than every page already read).",
        "parameters": parameters,
        "responses": {"200": {"description": "A page of uploads.", "content": _json("UploadPage")}}
        | _failures("400", "403", "501"),
    }


def _get_operation() -> dict[str, Any]:
    return {
        "operationId": "getUpload",
        "summary": "One upload",
        "responses": {"200": {"description": "The upload.", "content": _json("UploadStatus")}} | _failures("404"),
    }


def _verdict(action: Literal["accept", "reject"]) -> dict[str, Any]:
    body = "Acceptance" if action == "accept" else "Rejection"
    return {
        "operationId": f"{action}Upload",
        "summary": f"An admin's verdict: {action} a finished upload",
        "description": (
            "For an admin, with authorization configured (403 otherwise). A finished upload (`uploaded` or "
            "`accepted`) may be accepted; any finished upload rejected, and cleanup then removes its bytes. "
            "A rejected upload stays rejected."
        ),
        "requestBody": {"required": action == "reject", "content": _json(body)},
        "responses": {"200": {"description": "The upload, judged.", "content": _json("UploadStatus")}}
        | _failures("400", "403", "404", "409", "423"),
    }


def _self_operation() -> dict[str, Any]:
    return {
        "operationId": "openapi",
        "summary": "This document",
        "responses": {"200": {"description": "The OpenAPI 3.1 description.", "content": {"application/json": {}}}},
    }


def _version() -> str:
    try:
        return metadata.version("tusserver")
    except metadata.PackageNotFoundError:  # run from a source tree
        return "0"

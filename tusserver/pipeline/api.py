"""The status API (issue 21): JSON about uploads, under `--api-path` (default `/api`).

- `GET <api>/uploads`: the caller's uploads (an admin's: everyone's, or one `owner`'s), optionally in one `state`,
  newest first, a page at a time (`cursor`, `limit`);
- `GET <api>/uploads/{id}`: one upload;
- `POST <api>/uploads/{id}/accept` and `/reject` (admins): a verdict on a finished upload;
- `GET <api>/openapi.json`: the OpenAPI 3.1 description (`tusserver.pipeline.api_schema`).

Authorization is the tus endpoints': the access check has set `request.state.principal` before any route runs,
and an upload the principal may not use is not found (404), as on its tus URL. Without authorization configured
everyone sees every upload, and nobody may judge one: a verdict is an admin's, and there are no admins then (a
pre-finish hook still gives verdicts). Errors are answered as everywhere on this server: the error table's line,
`text/plain`, since the access check and the other layers before the routes answer that way too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TypeVar

from pydantic import BaseModel, ValidationError
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from tusserver.context import TusContext
from tusserver.coordination.state.base import SupportsListing
from tusserver.coordination.state.listing import position_of
from tusserver.pipeline.access import principal_of, usable
from tusserver.pipeline.api_schema import (
    Acceptance,
    ListQuery,
    Rejection,
    UploadPage,
    decode_cursor,
    encode_cursor,
    openapi_document,
    status_of,
)
from tusserver.pipeline.middleware import header_fields, to_starlette
from tusserver.protocol import responses
from tusserver.protocol.errors import (
    AdminRequiredError,
    InternalServerError,
    InvalidParameterError,
    ListingUnsupportedError,
    TusError,
    UploadStateConflictError,
)
from tusserver.protocol.headers import check_upload_id
from tusserver.protocol.lifecycle import current_state, judged, rejected
from tusserver.protocol.model import UploadInfo, UploadState
from tusserver.protocol.principals import Principal
from tusserver.protocol.urls import forwarded_origin, request_origin

__all__ = ["StatusApi"]

logger = logging.getLogger("tusserver")

Body = TypeVar("Body", bound=BaseModel)
_MAX_BODY = 16 * 1024  # a verdict's body is a reason of at most 1000 characters
_NO_STORE = {"Cache-Control": "no-store"}  # an upload's status changes; no cache should keep an old one


class StatusApi:
    """The status API's handlers, bound to one `TusContext`.

    Args:
        tus: the server's context.
        api_path: where the API is served, e.g. "/api" (`Settings.api_path`).
    """

    def __init__(self, tus: TusContext, api_path: str) -> None:
        self.tus = tus
        self.api_path = api_path
        self._listing = tus.state if isinstance(tus.state, SupportsListing) else None
        self._documents: dict[str, bytes] = {}  # the OpenAPI document by mount prefix (it names the server)

    def routes(self) -> list[Route]:
        """The API's routes: a 404 or 405 inside its path is the router's, in the same error form."""
        api, answer = self.api_path, self._answering
        return [
            Route(f"{api}/uploads", answer(self.list_uploads), methods=["GET"]),
            Route(f"{api}/uploads/{{upload_id}}", answer(self.get_upload), methods=["GET"]),
            Route(f"{api}/uploads/{{upload_id}}/accept", answer(self.accept), methods=["POST"]),
            Route(f"{api}/uploads/{{upload_id}}/reject", answer(self.reject), methods=["POST"]),
            Route(f"{api}/openapi.json", answer(self.openapi), methods=["GET"]),
        ]

    def _answering(self, handler: Callable[[Request], Awaitable[Response]]) -> Callable[[Request], Awaitable[Response]]:
        """`handler`, with every failure answered in the error table's form (unexpected ones logged)."""

        async def answered(request: Request) -> Response:
            try:
                return await handler(request)
            except TusError as exc:
                error = exc
            except Exception:  # answered without its traceback, which goes to the log
                logger.exception("unexpected error in the status API")
                error = InternalServerError()
            request.state.error_code = error.code  # for the access log
            return to_starlette(responses.error_response(error, with_body=request.method != "HEAD"))

        return answered

    async def list_uploads(self, request: Request) -> Response:
        """`GET <api>/uploads`: a page of uploads, newest first."""
        query = _parsed(ListQuery, _single_values(request))
        if self._listing is None:
            raise ListingUnsupportedError()
        owner = _listed_owner(principal_of(request), query.owner)
        before = decode_cursor(query.cursor) if query.cursor is not None else None
        # One more than the page holds: whether a next page exists, without an empty last page to fetch.
        found = await self._listing.list_uploads(owner=owner, state=query.state, before=before, limit=query.limit + 1)
        shown = found[: query.limit]
        cursor = encode_cursor(position_of(shown[-1])) if len(found) > query.limit else None
        page = UploadPage(uploads=[status_of(info, self._url(request, info.id)) for info in shown], next_cursor=cursor)
        return _json(page)

    async def get_upload(self, request: Request) -> Response:
        """`GET <api>/uploads/{id}`: one upload, if the caller may use it."""
        info = await self._usable(request)
        return _json(status_of(info, self._url(request, info.id)))

    async def accept(self, request: Request) -> Response:
        """`POST <api>/uploads/{id}/accept`: an admin accepts a finished upload."""
        body = await _body(request, Acceptance, optional=True)
        return await self._judge(request, accept=True, reason=body.reason if body else None)

    async def reject(self, request: Request) -> Response:
        """`POST <api>/uploads/{id}/reject`: an admin rejects a finished upload, with a reason."""
        body = await _body(request, Rejection)
        assert body is not None  # not optional
        return await self._judge(request, accept=False, reason=body.reason)

    async def openapi(self, request: Request) -> Response:
        """`GET <api>/openapi.json`: the OpenAPI 3.1 description, built once per mount prefix."""
        root: str = request.scope.get("root_path", "")
        if root not in self._documents:
            self._documents[root] = json.dumps(openapi_document(self.api_path, root or None)).encode()
        return Response(self._documents[root], media_type="application/json")

    async def _usable(self, request: Request) -> UploadInfo:
        """The record the URL names; 404 for another principal's, as for a missing one."""
        upload_id = check_upload_id(request.path_params["upload_id"])
        return usable(request, await self.tus.state.get(upload_id))

    async def _judge(self, request: Request, *, accept: bool, reason: str | None) -> Response:
        tus = self.tus
        # Whether the caller may see the upload comes first: a stranger learns nothing, not even that it is
        # locked; and the lock is taken only for an admin, whose verdict is saved under it.
        info = await self._usable(request)
        principal = principal_of(request)
        if principal is None:
            raise AdminRequiredError("a verdict is an admin's: configure authorization (--auth-*) to have admins")
        if not principal.admin:
            raise AdminRequiredError()
        async with tus.locker.acquire(info.id, timeout=tus.settings.lock_timeout) as lease:
            info = _verdict(await tus.state.get(info.id), accept=accept, reason=reason, now=tus.clock())
            await tus.state.save(info, lease=lease)
        logger.info("upload %s %s by %r", info.id, "accepted" if accept else "rejected", principal.id)  # any text
        return _json(status_of(info, self._url(request, info.id)))

    def _url(self, request: Request, upload_id: str) -> str:
        """The upload's tus URL, as the creation's Location gave it (the same origin rules)."""
        fields = header_fields(request.scope)
        scheme, host = request_origin(request.scope, fields.get("host"))
        if self.tus.trusted_proxies.trusts(request.client.host if request.client else None):
            forwarded_scheme, forwarded_host = forwarded_origin(fields)
            scheme, host = forwarded_scheme or scheme, forwarded_host or host
        origin = f"{scheme}://{host}" if host else ""
        root: str = request.scope.get("root_path", "")
        return origin + root + self.tus.settings.base_path + upload_id


def _verdict(info: UploadInfo, *, accept: bool, reason: str | None, now: datetime) -> UploadInfo:
    """The record with an admin's verdict. A rejected upload stays rejected: cleanup may be removing its bytes.

    Raises:
        UploadStateConflictError: not finished, ended, removed, or (to accept) rejected.
    """
    try:
        judged_info = judged(info, accepted=accept, reason=reason)
    except ValueError as exc:
        raise UploadStateConflictError(str(exc)) from None
    if accept and current_state(info) is UploadState.REJECTED:
        raise UploadStateConflictError("a rejected upload stays rejected: cleanup removes its bytes")
    if not accept:
        assert reason is not None  # a rejection's body requires one
        return rejected(info, reason, now)  # removed by cleanup as an expired upload is
    return judged_info


def _listed_owner(principal: Principal | None, asked: str | None) -> str | None:
    """Whose uploads a listing shows: a non-admin principal's own only (not the ownerless ones created without
    authorization); an admin, or anyone without authorization, the `owner` asked for (None: everyone's)."""
    if principal is None or principal.admin:
        return asked
    if asked is not None and asked != principal.id:
        raise AdminRequiredError("only an admin may list another principal's uploads")
    return principal.id


def _single_values(request: Request) -> dict[str, str]:
    """The query parameters; one given twice is refused rather than one of them silently taken."""
    values: dict[str, str] = {}
    for name, value in request.query_params.multi_items():
        if name in values:
            raise InvalidParameterError(f"{name}: given more than once")
        values[name] = value
    return values


def _parsed(model: type[Body], data: dict[str, str] | bytes) -> Body:
    """`data` (query parameters, or a JSON body) validated as `model`; the first problem as a 400 naming the
    parameter or field."""
    try:
        return model.model_validate_json(data) if isinstance(data, bytes) else model.model_validate(data)
    except ValidationError as exc:
        problem = exc.errors()[0]
        where = ".".join(str(part) for part in problem["loc"]) or "body"
        raise InvalidParameterError(f"{where}: {problem['msg']}") from None


async def _body(request: Request, model: type[Body], *, optional: bool = False) -> Body | None:
    """The JSON body as `model`, read up to `_MAX_BODY` bytes; None for an empty body when `optional`."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > _MAX_BODY:
            raise InvalidParameterError(f"body: longer than {_MAX_BODY} bytes")
    if not raw.strip() and optional:
        return None
    return _parsed(model, bytes(raw))


def _json(document: BaseModel) -> Response:
    return Response(document.model_dump_json(), media_type="application/json", headers=_NO_STORE)

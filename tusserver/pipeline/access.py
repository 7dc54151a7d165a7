"""The access check (issue 21): who a request acts for, and whether it may go on at all, before any endpoint.

For every HTTP request but OPTIONS (a CORS preflight never gets here: the CORS layer answers it), in order:

1. with a token key configured (`--auth-jwt-*`, `--auth-jwks-url`), the bearer token's principal, or 401;
2. with a `pre-access` hook on, its answer about the request and the upload its URL names (none on a POST, nor
   for an id no upload has): a denial (the hook's status, body and headers; else 403), or an allowance, which
   may name the principal (it replaces the token's). A POST that creates a final upload asks it again for each
   partial it names, whose answer only allows or denies;
3. `--auth-admins` makes a principal an admin.

The principal (None without authorization) goes to `request.state.principal`; the endpoints answer 404 for
any upload it may not use (`protocol.principals.may_use`), so whether an upload exists is never given away.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.types import ASGIApp, Receive, Scope, Send

from tusserver.context import TusContext
from tusserver.coordination.hooks.dispatch import HookFailedError
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookEventData, HookHTTPRequest, HookRequest, HookResponse
from tusserver.coordination.hooks.requests import about, new_event_id
from tusserver.pipeline.hooks import http_request
from tusserver.pipeline.middleware import header_fields, send_response
from tusserver.protocol.concat import parse_concat
from tusserver.protocol.errors import (
    AccessDeniedError,
    InternalServerError,
    ServiceUnavailableError,
    TusError,
    UploadNotFoundError,
)
from tusserver.protocol.headers import UPLOAD_ID
from tusserver.protocol.model import UploadInfo
from tusserver.protocol.principals import Principal, may_use
from tusserver.protocol.responses import error_response

if TYPE_CHECKING:
    from tusserver.coordination.auth.tokens import BearerAuth

__all__ = ["AccessMiddleware", "principal_of", "usable", "usable_before_lock"]

logger = logging.getLogger("tusserver")


def principal_of(request: Request) -> Principal | None:
    """Who `request` acts for, as the access check found; None without authorization."""
    principal: Principal | None = getattr(request.state, "principal", None)
    return principal


def usable(request: Request, info: UploadInfo) -> UploadInfo:
    """`info`, if the request's principal may use it; otherwise the upload is as missing (404, no hint).

    Raises:
        UploadNotFoundError: another principal's upload.
    """
    if not may_use(principal_of(request), info):
        raise UploadNotFoundError()
    return info


async def usable_before_lock(tus: TusContext, request: Request, upload_id: str) -> None:
    """Check ownership before taking an upload's lock: a stranger taking it would stop its owner's PATCH (or
    wait, and answer 423), and either way tell that the upload exists. Admins and requests without
    authorization skip this read: they may use every upload.

    Raises:
        UploadNotFoundError: no such upload, or another principal's.
    """
    principal = principal_of(request)
    if principal is not None and not principal.admin:
        usable(request, await tus.state.get(upload_id))


class AccessMiddleware:
    """Sets `request.state.principal` for every HTTP request, or answers it with the refusal.

    Args:
        app: the routes.
        tus: the server's context (its hooks, state store and settings).
        auth: the bearer-token check, None without a token key.
    """

    def __init__(self, app: ASGIApp, *, tus: TusContext, auth: BearerAuth | None) -> None:
        self.app, self.tus, self.auth = app, tus, auth
        self.hooked = tus.hooks.on(HookEvent.PRE_ACCESS)
        self.admins = frozenset(tus.settings.auth_admins)
        self.active = auth is not None or self.hooked

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        state = scope.setdefault("state", {})
        principal = None
        if self.active and scope["method"] != "OPTIONS":
            try:
                principal = await self._principal(scope)
            except Exception as exc:  # every refusal and failure in the error table's form, as the endpoints do
                await self._refuse(scope, exc, send)
                return
        state["principal"] = principal
        await self.app(scope, receive, send)

    async def _principal(self, scope: Scope) -> Principal | None:
        principal = None
        if self.auth is not None:
            principal = await self.auth.principal(header_fields(scope).get("authorization"))
        if self.hooked:
            principal = await self._ask_hook(scope, principal)
        if principal is not None and not principal.admin and principal.id in self.admins:
            principal = Principal(principal.id, admin=True)
        return principal

    async def _ask_hook(self, scope: Scope, principal: Principal | None) -> Principal | None:
        http = http_request(Request(scope))
        upload_id = self._upload_id(scope)
        answer = await self._ask(http, await self._record(upload_id) if upload_id is not None else None)
        if answer.Principal.ID:
            principal = Principal(answer.Principal.ID, admin=answer.Principal.Admin)
        if scope["method"] == "POST":
            for partial in await self._partials(scope):
                await self._ask(http, partial)
        return principal

    async def _ask(self, http: HookHTTPRequest, info: UploadInfo | None) -> HookResponse:
        """pre-access's answer about `info` (None: no upload).

        Raises:
            AccessDeniedError: the hook denied the request.
            HookFailedError: the hook failed (503).
        """
        tus, event = self.tus, HookEvent.PRE_ACCESS
        if info is None:
            request = HookRequest(Type=event, Event=HookEventData(HTTPRequest=http), EventID=new_event_id())
        else:
            request = about(tus, event, info, http)
        answer = await tus.hooks.call(event, request)
        if answer.RejectAccess:
            response = answer.HTTPResponse
            raise AccessDeniedError(status=response.StatusCode, body=response.Body, headers=dict(response.Header))
        return answer

    def _upload_id(self, scope: Scope) -> str | None:
        """The upload id the URL names, as the routes will match it (None: the creation URL, or another)."""
        path: str = scope["path"]
        root: str = scope.get("root_path", "")
        if root and path.startswith(root):  # a mounted app's path holds its prefix
            path = path[len(root) :]
        base = self.tus.settings.base_path
        upload_id = path[len(base) :] if path.startswith(base) else ""
        return upload_id if UPLOAD_ID.fullmatch(upload_id) else None

    async def _record(self, upload_id: str) -> UploadInfo | None:
        try:
            return await self.tus.state.get(upload_id)
        except UploadNotFoundError:
            return None

    async def _partials(self, scope: Scope) -> list[UploadInfo]:
        """The existing uploads a final's Upload-Concat names; none for anything else, or for a header the
        endpoint will refuse (malformed, too many parts): its answer is the endpoint's."""
        upload_path = scope.get("root_path", "") + self.tus.settings.base_path
        try:
            concat = parse_concat(header_fields(scope).get("upload-concat"), upload_path)
        except TusError:
            return []
        if concat is None or concat.kind != "final" or len(concat.parts) > self.tus.settings.max_concat_parts:
            return []
        records = [await self._record(part) for part in concat.parts]
        return [record for record in records if record is not None]

    async def _refuse(self, scope: Scope, exc: Exception, send: Send) -> None:
        if isinstance(exc, TusError):
            error = exc
        elif isinstance(exc, HookFailedError):  # fail closed: a request no hook allowed does not go on
            error = ServiceUnavailableError("a hook failed; retry later")
            logger.warning("pre-access hook failed: %s", exc)
        else:
            error = InternalServerError()
            logger.exception("unexpected error in the access check")
        scope["state"]["error_code"] = error.code
        await send_response(error_response(error, with_body=scope["method"] != "HEAD"), send)

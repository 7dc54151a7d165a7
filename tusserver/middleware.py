"""Pure ASGI middleware around the tus routes.

- `ResponseHeadersMiddleware` (outermost): `Tus-Resumable` on every response (tus §Tus-Resumable),
  and one access-log line per request.
- `TusRequestMiddleware` (inside CORS, so its 412s carry CORS headers): X-HTTP-Method-Override,
  then the Tus-Resumable check, decided from the headers before any body byte is read.
"""

from __future__ import annotations

import logging
import time

from starlette.datastructures import Headers, MutableHeaders
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusserver.protocol.errors import TusError
from tusserver.protocol.headers import UPLOAD_ID, check_tus_resumable
from tusserver.protocol.model import TUS_RESUMABLE
from tusserver.protocol.responses import TusResponse, error_response

__all__ = ["ResponseHeadersMiddleware", "TusRequestMiddleware", "to_starlette"]

logger = logging.getLogger("tusserver")

_OVERRIDABLE = frozenset({"PATCH", "DELETE", "HEAD", "OPTIONS", "GET", "POST"})


def to_starlette(response: TusResponse) -> Response:
    """Turn a pure `TusResponse` into a Starlette response."""
    return Response(response.body, status_code=response.status, headers=response.headers)


class ResponseHeadersMiddleware:
    """Adds Tus-Resumable to every response and logs one line per request."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message).setdefault("Tus-Resumable", TUS_RESUMABLE)
            await send(message)

        try:
            await self.app(scope, receive, send_with_headers)
        finally:
            if logger.isEnabledFor(logging.INFO):  # its arguments cost ~10 us per request to build
                _log_request(scope, status, time.perf_counter() - started)


def _log_request(scope: Scope, status: int, seconds: float) -> None:
    state = scope.get("state", {})
    upload_id = state.get("upload_id") or scope.get("path_params", {}).get("upload_id", "-")
    logger.info(
        '%s "%s %s" %d %.1fms upload=%s%s',
        (scope.get("client") or ("-",))[0],
        scope["method"],
        _printable(scope["path"]),  # decoded %0d%0a would forge log lines
        status,
        seconds * 1000,
        upload_id if UPLOAD_ID.fullmatch(upload_id) else "-",
        f" error={state['error_code']}" if "error_code" in state else "",
    )


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)


class TusRequestMiddleware:
    """Applies X-HTTP-Method-Override and rejects unsupported tus versions with 412.

    Args:
        app: the routes.
        check_head: also require Tus-Resumable on HEAD (PROTOCOL.md item 4).
    """

    def __init__(self, app: ASGIApp, *, check_head: bool = True) -> None:
        self.app = app
        self.checked = frozenset({"POST", "PATCH", "DELETE"} | ({"HEAD"} if check_head else set()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        override = headers.get("x-http-method-override", "").strip().upper()
        # tus §X-HTTP-Method-Override: the header's method replaces the request's. Only a POST
        # is overridden (as tusd does), so a plain GET link can never delete an upload.
        if scope["method"] == "POST" and override in _OVERRIDABLE:
            scope["method"] = override
        if scope["method"] in self.checked:
            try:
                check_tus_resumable(headers.get("tus-resumable"))
            except TusError as error:
                scope.setdefault("state", {})["error_code"] = error.code
                response = error_response(error, with_body=scope["method"] != "HEAD")
                await to_starlette(response)(scope, receive, send)
                return
        await self.app(scope, receive, send)

"""The one pure ASGI middleware around the tus routes, `TusMiddleware`. For each request it:

1. reads the header fields once into a dict (`header_fields`), which the handlers reuse;
2. adds `Tus-Resumable` to every response (tus §Tus-Resumable) and logs one access line;
3. runs CORS (Starlette's `CORSMiddleware`) for requests with an Origin; for the others its only
   effect would be `Vary: Origin`, which is added here, sparing a layer per request;
4. inside CORS, so that its 412s carry CORS headers: X-HTTP-Method-Override, then the
   Tus-Resumable check, decided from the headers before any body byte is read.

One layer rather than three: each ASGI layer costs a call and a `send` wrapper per message, and
together they were 14 % of the CPU of a small upload (BENCHMARKS.md).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusserver.protocol.errors import TusError
from tusserver.protocol.headers import UPLOAD_ID, check_tus_resumable
from tusserver.protocol.model import TUS_RESUMABLE
from tusserver.protocol.responses import TusResponse, error_response

__all__ = ["TusMiddleware", "header_fields", "send_response", "to_starlette"]

logger = logging.getLogger("tusserver")

_OVERRIDABLE = frozenset({"PATCH", "DELETE", "HEAD", "OPTIONS", "GET", "POST"})
_FIELDS = "tus.header_fields"  # the scope key of the request's header dict
_TUS_RESUMABLE = (b"tus-resumable", TUS_RESUMABLE.encode())
_VARY_ORIGIN = (b"vary", b"Origin")


def to_starlette(response: TusResponse) -> Response:
    """Turn a pure `TusResponse` into a Starlette response (for Starlette's exception handlers)."""
    return Response(response.body, status_code=response.status, headers=response.headers)


async def send_response(response: TusResponse, send: Send) -> None:
    """Send a `TusResponse`: the two messages Starlette's `Response` would send for it, without
    building one per request (that was ~3 % of a small upload's CPU).

    As there, a status that may carry content gets a Content-Length (RFC 9110 §8.6): 1xx, 204 and
    304 never do.
    """
    headers = [(name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in response.headers.items()]
    if response.status >= 200 and response.status not in (204, 304):
        headers.append((b"content-length", str(len(response.body)).encode("latin-1")))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})


def header_fields(scope: Scope) -> dict[str, str]:
    """The request's header fields by (lower-case) name, built once per request (each Starlette
    `Headers.get` scans every field, and handling a request looks up about ten).

    Repeated fields are combined with ", " (RFC 9110 §5.3): list fields such as Upload-Metadata keep
    every item, and a singleton such as Upload-Offset sent twice no longer parses, so it gets a 400
    rather than the server and a proxy in front of it each believing a different copy.
    """
    cached: dict[str, str] | None = scope.get(_FIELDS)
    if cached is not None:
        return cached
    fields: dict[str, str] = {}
    for raw_name, raw_value in scope["headers"]:
        name, value = raw_name.decode("latin-1"), raw_value.decode("latin-1")
        fields[name] = f"{fields[name]}, {value}" if name in fields else value
    scope[_FIELDS] = fields
    return fields


class TusMiddleware:
    """Header parsing, Tus-Resumable, access log, CORS, method override and version check.

    Args:
        app: the routes.
        cors: the keyword arguments of Starlette's `CORSMiddleware`.
        check_head: also require Tus-Resumable on HEAD (PROTOCOL.md item 4).
    """

    def __init__(self, app: ASGIApp, *, cors: dict[str, Any], check_head: bool = True) -> None:
        self.app = app
        self.cors = CORSMiddleware(self._checked, **cors)
        self.checked = frozenset({"POST", "PATCH", "DELETE"} | ({"HEAD"} if check_head else set()))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        cross_origin = "origin" in header_fields(scope)
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _add_response_headers(message, vary_origin=not cross_origin)
            await send(message)

        try:
            await (self.cors if cross_origin else self._checked)(scope, receive, send_with_headers)
        finally:
            if logger.isEnabledFor(logging.INFO):  # its arguments cost ~10 us per request to build
                _log_request(scope, status, time.perf_counter() - started)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """X-HTTP-Method-Override, then 412 for a missing or unsupported Tus-Resumable."""
        fields = header_fields(scope)
        override = fields.get("x-http-method-override", "").strip().upper()
        # tus §X-HTTP-Method-Override: the header's method replaces the request's. Only a POST
        # is overridden (as tusd does), so a plain GET link can never delete an upload.
        if scope["method"] == "POST" and override in _OVERRIDABLE:
            scope["method"] = override
        if scope["method"] in self.checked:
            try:
                check_tus_resumable(fields.get("tus-resumable"))
            except TusError as error:
                scope.setdefault("state", {})["error_code"] = error.code
                response = error_response(error, with_body=scope["method"] != "HEAD")
                await send_response(response, send)
                return
        await self.app(scope, receive, send)


def _add_response_headers(message: Message, *, vary_origin: bool) -> None:
    headers = message["headers"] = list(message.get("headers", ()))
    if all(name.lower() != b"tus-resumable" for name, _ in headers):
        headers.append(_TUS_RESUMABLE)
    if vary_origin:  # what CORSMiddleware adds for a request without Origin; a second Vary line adds to a first
        headers.append(_VARY_ORIGIN)


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

"""The one pure ASGI middleware around the tus routes, `TusMiddleware`. For each request it:

1. reads the header fields once into a dict (`header_fields`), which the handlers reuse;
2. adds `Tus-Resumable` and `X-Request-ID` to every response (tus §Tus-Resumable), logs one access line and
   counts the request in the metrics (`tusserver.coordination.metrics`);
3. applies X-HTTP-Method-Override, to a copy of the scope: the server keeps the method on the wire;
4. runs CORS (Starlette's `CORSMiddleware`, its preflight refusal in the error table's form) for
   requests with an Origin; for the others its only effect would be `Vary: Origin`, which is added
   here, sparing a layer per request;
5. inside CORS, so that its 412s carry CORS headers: the Tus-Resumable check, decided from the
   headers before any body byte is read.

One layer rather than three: each ASGI layer costs a call and a `send` wrapper per message, and
together they were 14 % of the CPU of a small upload (BENCHMARKS.md).
"""

from __future__ import annotations

import itertools
import logging
import re
import secrets
import time
from collections.abc import Iterable
from typing import Any

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from tusserver.coordination import metrics
from tusserver.protocol.errors import CorsRejectedError, TusError, error_class
from tusserver.protocol.headers import UPLOAD_ID, check_tus_resumable
from tusserver.protocol.model import OWS, TUS_RESUMABLE
from tusserver.protocol.responses import TusResponse, error_response

__all__ = ["TusMiddleware", "header_fields", "log_fields", "send_response", "to_starlette"]

logger = logging.getLogger("tusserver")

_OVERRIDABLE = frozenset({"PATCH", "DELETE", "HEAD", "OPTIONS", "GET"})
_FIELDS = "tus.header_fields"  # the scope key of the request's header dict
_CORS_REFUSALS = re.compile(r"Disallowed CORS ([a-z, -]+)")  # the text of Starlette's preflight 400
_TUS_RESUMABLE = (b"tus-resumable", TUS_RESUMABLE.encode())
_VARY_ORIGIN = (b"vary", b"Origin")
# A client's X-Request-ID is kept when it is short and plain (it goes into logs and a response header as it is).
_REQUEST_ID = re.compile(r"[A-Za-z0-9._:+=/@-]{1,128}")
# Generated ids: a random prefix per process and a counter, unique across instances, and ~10x cheaper than
# a random id per request.
_ID_PREFIX = secrets.token_hex(6) + "-"
_ID_COUNTER = itertools.count(1)


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
    """Header parsing, Tus-Resumable, access log, method override, CORS and version check.

    Args:
        app: the routes.
        cors: the keyword arguments of Starlette's `CORSMiddleware`.
        check_head: also require Tus-Resumable on HEAD (PROTOCOL.md item 4).
        api_path: the status API's path, whose requests are not tus requests: no Tus-Resumable check.
    """

    def __init__(
        self, app: ASGIApp, *, cors: dict[str, Any], check_head: bool = True, api_path: str | None = None
    ) -> None:
        self.app = app
        self.cors = _TusCORS(self._checked, **cors)
        self.checked = frozenset({"POST", "PATCH", "DELETE"} | ({"HEAD"} if check_head else set()))
        self.api_prefix = None if api_path is None else api_path + "/"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        fields = header_fields(scope)
        request_id = _request_id(fields.get("x-request-id"))
        id_header = (b"x-request-id", request_id.encode("latin-1"))
        cross_origin = "origin" in fields
        wire_method = scope["method"]
        scope = _overridden(scope, fields)
        if scope["method"] == "HEAD" and wire_method != "HEAD":
            send = _with_error_body(scope, send)
        status = 0

        async def send_with_headers(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                _add_response_headers(message, id_header, vary_origin=not cross_origin)
            await send(message)

        metrics.Live.requests += 1
        try:
            await (self.cors if cross_origin else self._checked)(scope, receive, send_with_headers)
        finally:
            metrics.Live.requests -= 1
            seconds = time.perf_counter() - started
            _count(scope, status, seconds)
            if logger.isEnabledFor(logging.INFO):  # its arguments cost ~10 us per request to build
                _log_request(scope, status, seconds, request_id)

    async def _checked(self, scope: Scope, receive: Receive, send: Send) -> None:
        """412 for a missing or unsupported Tus-Resumable."""
        if scope["method"] in self.checked and not self._is_api(scope):
            try:
                check_tus_resumable(header_fields(scope).get("tus-resumable"))
            except TusError as error:
                scope.setdefault("state", {})["error_code"] = error.code
                response = error_response(error, with_body=scope["method"] != "HEAD")
                await send_response(response, send)
                return
        await self.app(scope, receive, send)

    def _is_api(self, scope: Scope) -> bool:
        # A mounted app's path holds its mount prefix (root_path).
        return self.api_prefix is not None and scope["path"].startswith(scope.get("root_path", "") + self.api_prefix)


def _overridden(scope: Scope, fields: dict[str, str]) -> Scope:
    """The scope the tus routes see: with X-HTTP-Method-Override applied, a copy.

    tus §X-HTTP-Method-Override: the header's method replaces the request's. Only a POST is
    overridden (as tusd does), so a plain GET link can never delete an upload. The server's scope
    keeps the method on the wire: one that read HEAD there would drop the body of the response
    (uvicorn does), which the client, having sent a POST, waits for.
    """
    if scope["method"] != "POST" or "x-http-method-override" not in fields:
        return scope
    method = fields["x-http-method-override"].strip(OWS).upper()
    if method not in _OVERRIDABLE:
        return scope
    scope.setdefault("state", {})  # one dict for both scopes: the access log reads what handlers note there
    return {**scope, "method": method}


def _with_error_body(scope: Scope, send: Send) -> Send:
    """`send` for a POST overridden to HEAD: handlers render errors as for a HEAD, without a body
    (RFC 9110 §9.3.2), but on the wire this is a POST, whose error gets the table's line. It is
    rebuilt from the error code the handler recorded, with the code's default reason."""
    held: Message | None = None

    async def send_with_body(message: Message) -> None:
        nonlocal held
        if message["type"] == "http.response.start" and message["status"] >= 400:
            held = message  # until the body shows whether it is empty
            return
        if held is not None:
            start, held = held, None
            code = scope.get("state", {}).get("error_code")
            error = error_class(code) if isinstance(code, str) else None
            if error is not None and not message.get("body") and not message.get("more_body"):
                body = f"{error.code}: {error.default_message}\n".encode()
                message = {**message, "body": body}
                start = {**start, "headers": _with_content_length(start.get("headers", ()), len(body))}
            await send(start)
        await send(message)

    return send_with_body


def _with_content_length(headers: Iterable[tuple[bytes, bytes]], length: int) -> list[tuple[bytes, bytes]]:
    kept = [(name, value) for name, value in headers if name.lower() != b"content-length"]
    return [*kept, (b"content-length", str(length).encode())]


class _TusCORS(CORSMiddleware):
    """Starlette's CORS, whose refused preflight (a plain "Disallowed CORS origin" 400) is answered in
    the error table's form instead, with the same headers."""

    def preflight_response(self, request_headers: Headers) -> Response:
        response = super().preflight_response(request_headers)
        if response.status_code < 400:
            return response
        refused = _CORS_REFUSALS.fullmatch(bytes(response.body).decode("latin-1"))
        error = CorsRejectedError(f"this server does not allow the preflight's {refused[1]}" if refused else None)
        tus = error_response(error)
        cors = {name: value for name, value in response.headers.items() if name.startswith(("access-control-", "vary"))}
        return Response(tus.body, status_code=tus.status, headers=cors | tus.headers)


def _request_id(sent: str | None) -> str:
    """The client's request id if it is usable, else a new one."""
    if sent is not None and _REQUEST_ID.fullmatch(sent):
        return sent
    return _ID_PREFIX + format(next(_ID_COUNTER), "x")


def _add_response_headers(message: Message, request_id: tuple[bytes, bytes], *, vary_origin: bool) -> None:
    headers = message["headers"] = list(message.get("headers", ()))
    if all(name.lower() != b"tus-resumable" for name, _ in headers):
        headers.append(_TUS_RESUMABLE)
    headers.append(request_id)
    if vary_origin:  # what CORSMiddleware adds for a request without Origin; a second Vary line adds to a first
        headers.append(_VARY_ORIGIN)


def _count(scope: Scope, status: int, seconds: float) -> None:
    children = metrics.by_method(scope["method"])
    children.requests.inc()
    children.duration.observe(seconds)
    if status >= 400 or status == 0:  # 0: the request ended without a response (the client left)
        metrics.error_counter(status, scope.get("state", {}).get("error_code")).inc()


class _Access:
    fields = False  # whether access lines carry their fields apart (`log_fields`)


def log_fields(on: bool) -> None:
    """Attach each access line's fields to its record (`record.access`, a dict), for a structured format:
    building them costs about 2 us per request, spent only when a formatter reads them."""
    _Access.fields = on


def _log_request(scope: Scope, status: int, seconds: float, request_id: str) -> None:
    state = scope.get("state", {})
    upload_id = state.get("upload_id") or scope.get("path_params", {}).get("upload_id", "-")
    upload_id = upload_id if UPLOAD_ID.fullmatch(upload_id) else "-"
    remote = (scope.get("client") or ("-",))[0]
    path = _printable(scope["path"])  # decoded %0d%0a would forge log lines
    error_code = state.get("error_code")
    # The fields again, for the JSON format (`tusserver.serving.logs`); the text format shows the message.
    access = None if not _Access.fields else {
        "request_id": request_id, "method": scope["method"], "path": path, "status": status,
        "duration_ms": round(seconds * 1000, 3), "upload_id": None if upload_id == "-" else upload_id,
        "bytes": state.get("bytes_received", 0), "error_code": error_code, "remote_addr": remote,
    }  # fmt: skip
    logger.info(
        '%s "%s %s" %d %.1fms upload=%s id=%s%s',
        remote,
        scope["method"],
        path,
        status,
        seconds * 1000,
        upload_id,
        request_id,
        f" error={error_code}" if error_code else "",
        extra={"access": access},
    )


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(char if char.isprintable() else f"\\x{ord(char):02x}" for char in text)

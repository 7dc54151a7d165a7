"""What the request pipeline tells hooks: the upload and the client request, in tusd's wire format.

The events themselves are fired where they happen (endpoints, appending, finals, cleanup); this module
only builds their requests and turns a hook's answer into the client's response.
"""

from __future__ import annotations

import dataclasses
import functools
import logging

from starlette.requests import Request

from tusserver.context import TusContext
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import EMPTY_RESPONSE, HookHTTPRequest, HookResponse
from tusserver.coordination.hooks.outgoing import Outgoing
from tusserver.coordination.hooks.requests import NO_REQUEST, about, encoded_metadata, event_request
from tusserver.protocol.errors import HookAnswerError, InternalServerError, UploadNotFoundError
from tusserver.protocol.ids import custom_id_problem
from tusserver.protocol.model import UploadInfo
from tusserver.protocol.responses import TusResponse
from tusserver.protocol.rules import CreatePlan

__all__ = ["Outgoing", "decide", "http_request", "outgoing", "pre_create", "pre_finish", "shaped"]

logger = logging.getLogger("tusserver.hooks")


def http_request(request: Request) -> HookHTTPRequest:
    """The client request as tusd describes it: header names in canonical form, values as lists."""
    headers: dict[str, list[str]] = {}
    for name, value in request.headers.items():
        headers.setdefault(_canonical_name(name), []).append(value)
    scope = request.scope  # not request.url, which costs more to build than the rest here
    raw_path: bytes | None = scope.get("raw_path")  # the target as received (tusd's URI), where the server gives it
    path = raw_path.decode("latin-1") if raw_path else scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    uri = path + (f"?{query}" if query else "")
    client = request.client
    return HookHTTPRequest(
        Method=request.method,
        URI=uri,
        RemoteAddr=f"{client.host}:{client.port}" if client else "",
        Header=headers,
    )


@functools.lru_cache(maxsize=1024)  # a few dozen names in practice; bounded against clients that invent them
def _canonical_name(name: str) -> str:
    # Go's textproto.CanonicalMIMEHeaderKey, which tusd's receivers see: "upload-metadata" -> "Upload-Metadata".
    return "-".join(part[:1].upper() + part[1:].lower() for part in name.split("-"))


def outgoing(tus: TusContext, request: Request) -> Outgoing:
    """The request's queue of non-blocking events (made on first use; `http_request` only when hooks run)."""
    queue: Outgoing | None = getattr(request.state, "hook_events", None)
    if queue is None:
        http = http_request(request) if tus.hooks.enabled else NO_REQUEST
        queue = request.state.hook_events = Outgoing(tus, http)
    return queue


async def pre_finish(queue: Outgoing, info: UploadInfo) -> None:
    """Ask pre-finish about an upload whose last byte is stored, before it is finished and answered.

    Raises:
        HookFailedError: the hook failed (503): the upload is not finished, the client sends the end again.
    """
    queue.finish_answer = await decide(queue.tus, HookEvent.PRE_FINISH, info, queue.http)


async def decide(tus: TusContext, event: HookEvent, info: UploadInfo, http: HookHTTPRequest) -> HookResponse:
    """Send a blocking event about `info`, if it is on, and return the answer (empty when it is off).

    Raises:
        HookFailedError: a hook failed (503).
    """
    if not tus.hooks.on(event):
        return EMPTY_RESPONSE
    return await tus.hooks.call(event, about(tus, event, info, http))


async def pre_create(
    tus: TusContext, http: HookHTTPRequest, plan: CreatePlan, *, final: bool
) -> tuple[str, CreatePlan]:
    """Ask pre-create about a new upload; returns its id (ours, or the hook's) and the plan with the hook's
    metadata. A final upload keeps its derived id (a retried POST must find it again).

    Raises:
        HookAnswerError: the hook rejected the upload (its status, body and headers, or 400).
        HookFailedError: the hook failed (503).
        InternalServerError: the hook chose an id that cannot be used (logged with the reason).
    """
    upload_id = tus.new_upload_id()
    if not tus.hooks.on(HookEvent.PRE_CREATE):
        return upload_id, plan
    request = event_request(HookEvent.PRE_CREATE, None, http, metadata=plan.metadata, size=plan.length)
    answer = await tus.hooks.call(HookEvent.PRE_CREATE, request)
    if answer.RejectUpload:
        response = answer.HTTPResponse
        raise HookAnswerError(status=response.StatusCode, body=response.Body, headers=dict(response.Header))
    change = answer.ChangeFileInfo
    if change.MetaData is not None:
        plan = dataclasses.replace(plan, metadata=encoded_metadata(change.MetaData))
    if change.ID and not final:
        upload_id = await _custom_id(tus, change.ID)
    return upload_id, plan


async def _custom_id(tus: TusContext, upload_id: str) -> str:
    problem = custom_id_problem(upload_id)
    if problem is None:
        try:
            await tus.state.get(upload_id)
            problem = "an upload with this id exists"
        except UploadNotFoundError:
            return upload_id
    logger.error("pre-create hook chose the upload id %r, which cannot be used: %s", upload_id, problem)
    raise InternalServerError("a pre-create hook chose an upload id that cannot be used")


def shaped(response: TusResponse, queue: Outgoing) -> TusResponse:
    """The server's answer with what a hook added (pre-finish's HTTPResponse): its status, body, headers."""
    hook = queue.finish_answer.HTTPResponse
    if not (hook.StatusCode or hook.Body or hook.Header):
        return response
    body = hook.Body.encode() if hook.Body else response.body
    return TusResponse(hook.StatusCode or response.status, {**response.headers, **hook.Header}, body)

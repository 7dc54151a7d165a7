"""One async function per tus method; each follows parse -> lock -> load -> decide -> I/O -> render.

Handlers return a pure `TusResponse`; `Endpoints.route` turns every failure into the error
table's response, so no request ever ends in a traceback.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager

import anyio
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from storage_backends.base import StorageRef, SupportsDelete
from storage_backends.errors import BlobNotFoundError, StorageError, StorageUnavailableError
from storage_backends.errors import StorageFullError as NoSpaceError
from tusserver.context import TusContext
from tusserver.coordination import metrics
from tusserver.coordination.cleanup import bury
from tusserver.coordination.hooks.dispatch import HookFailedError
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.locking import Lease
from tusserver.coordination.state.base import SupportsPeek
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.pipeline import downloads, finals, hooks, verdicts
from tusserver.pipeline.access import principal_of, usable, usable_before_lock
from tusserver.pipeline.appending import Append, receive
from tusserver.pipeline.middleware import header_fields, send_response
from tusserver.protocol import headers, responses, rules
from tusserver.protocol.concat import Concat, final_upload_id, parse_concat
from tusserver.protocol.downloads import declared_disposition, declared_media_type
from tusserver.protocol.errors import (
    InternalServerError,
    ServiceUnavailableError,
    StorageFailureError,
    StorageFullError,
    TerminationRejectedError,
    TusError,
    UploadNotFoundError,
)
from tusserver.protocol.ids import storage_key
from tusserver.protocol.lifecycle import check_live, verdict_due
from tusserver.protocol.model import UploadInfo, UploadState
from tusserver.protocol.responses import TusResponse
from tusserver.protocol.urls import forwarded_origin, request_origin

__all__ = ["Endpoints", "from_storage"]

logger = logging.getLogger("tusserver")

# A handler returns a pure TusResponse, or a Starlette Response when it streams a body (GET downloads).
Handler = Callable[[Request], Awaitable[TusResponse | Response]]


def from_storage(exc: StorageError) -> TusError:
    """The one translation of storage errors into tus errors."""
    if isinstance(exc, BlobNotFoundError):
        return UploadNotFoundError("the upload's data is gone")
    if isinstance(exc, NoSpaceError):
        return StorageFullError()
    if isinstance(exc, StorageUnavailableError):
        return ServiceUnavailableError()
    return StorageFailureError()  # details go to the log, not to the client


class _Endpoint:
    """An ASGI app, so that Starlette's Route calls it as it is: wrapped as a request-response
    function, each request would pass through two more layers (and their send wrappers) that only
    catch exceptions, which the endpoint never lets out."""

    def __init__(self, endpoints: Endpoints, handlers: Mapping[str, Handler]) -> None:
        self.endpoints = endpoints
        self.handlers = handlers

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive, send)
        try:
            response = await self.handlers[request.method](request)
        except Exception as exc:  # every failure becomes a clean, logged response
            response = self.endpoints.error_response(request, exc)
        if isinstance(response, Response):
            await response(scope, receive, send)
        else:
            await send_response(response, send)


class Endpoints:
    """The tus handlers bound to one `TusContext`."""

    def __init__(self, tus: TusContext) -> None:
        self.tus = tus
        self._peeking = tus.state if isinstance(tus.state, SupportsPeek) else None

    def route(self, handlers: Mapping[str, Handler]) -> ASGIApp:
        """One endpoint for a URL: pick the handler by method, render its `TusResponse`, or the
        error table's answer to any failure."""
        return _Endpoint(self, handlers)

    def error_response(self, request: Request, exc: Exception) -> TusResponse:
        """The error table's answer to `exc`; storage errors and unexpected ones are logged."""
        upload_id = request.path_params.get("upload_id") or getattr(request.state, "upload_id", "-")
        if isinstance(exc, TusError):
            error = exc
        elif isinstance(exc, StorageError):
            error = from_storage(exc)
            logger.warning("storage error on upload %s: %s", upload_id, exc)
        elif isinstance(exc, HookFailedError):  # fail closed: nothing was created, finished or deleted
            error = ServiceUnavailableError("a hook failed; retry later")
            logger.warning("hook failed on upload %s: %s", upload_id, exc)
        else:
            error = InternalServerError()
            logger.exception("unexpected error on upload %s", upload_id)
        request.state.error_code = error.code
        return responses.error_response(error, with_body=request.method != "HEAD")

    async def options(self, request: Request) -> TusResponse:
        """tus §OPTIONS: what this server supports."""
        return responses.options_response(self.tus.extensions, self.tus.max_size())

    async def post(self, request: Request) -> TusResponse:
        """tus §POST (creation, creation-with-upload, creation-defer-length)."""
        tus = self.tus
        fields = header_fields(request.scope)
        concat = parse_concat(fields.get("upload-concat"), self._upload_path(request))
        create = headers.parse_create(fields, concat)
        max_size = tus.max_size(deferred=create.length is None)
        plan = rules.plan_create(create, max_size=max_size, extensions=tus.extensions)
        async with self._events(request) as queue:
            final = concat is not None and concat.kind == "final"
            upload_id, plan = await hooks.pre_create(tus, queue.http, plan, final=final)
            principal = principal_of(request)
            owner = principal.id if principal is not None else None
            if concat is not None and concat.kind == "final":
                upload_id = request.state.upload_id = final_upload_id(concat.parts, create.metadata, owner)
                create = dataclasses.replace(create, metadata=plan.metadata)
                info = await finals.create_final(tus, create, upload_id, queue, principal=principal)
                return self._created(self._location(request, upload_id), info, queue)
            request.state.upload_id = upload_id
            content = {"content_type": declared_media_type(plan.metadata)}
            content["content_disposition"] = declared_disposition(plan.metadata)
            ref = await tus.storage.create(storage_key(upload_id), length=plan.length, **content)
            info = await self._create_record(self._new_record(upload_id, ref, plan, concat, owner), queue)
            location = self._location(request, upload_id)
            if plan.read_body:
                info = await self._create_with_upload(request, create, plan, info, location)
            return self._created(location, info, queue)

    def _created(self, location: str, info: UploadInfo, queue: hooks.Outgoing) -> TusResponse:
        """201, shaped by pre-finish; 403 for an upload finished and rejected at its creation (empty, final)."""
        metrics.UPLOADS_CREATED.inc()
        error = verdicts.rejection(info, queue.finish_answer)
        if error is not None:
            error.extra_headers["Location"] = location
            raise error
        return hooks.shaped(responses.created_response(location, info), queue)

    async def _create_with_upload(
        self, request: Request, create: headers.CreateRequest, plan: rules.CreatePlan, info: UploadInfo, location: str
    ) -> UploadInfo:
        tus = self.tus
        try:
            async with tus.locker.acquire(info.id, timeout=tus.settings.lock_timeout) as lease:
                size = create.content_length
                append = Append(info, plan.body_limit, create.checksum, was_complete=info.is_complete, size=size)
                return await receive(self.tus, request, append, lease)
        except TusError as error:
            error.extra_headers["Location"] = location  # the upload exists; let the client resume it
            raise

    def _locked(self, upload_id: str) -> AbstractAsyncContextManager[Lease]:
        return self.tus.locker.acquire(upload_id, timeout=self.tus.settings.lock_timeout)

    @asynccontextmanager
    async def _events(self, request: Request) -> AsyncIterator[hooks.Outgoing]:
        """The request's non-blocking hook events, sent when it is done with the upload (and its lock)."""
        queue = hooks.outgoing(self.tus, request)
        try:
            yield queue
        finally:
            with anyio.CancelScope(shield=True):
                await queue.send()

    async def _create_record(self, info: UploadInfo, queue: hooks.Outgoing) -> UploadInfo:
        """Record a new upload whose storage exists; if that fails, remove the storage (no orphan)."""
        events: list[OutboxEvent] = []

        async def create(record: UploadInfo, finished: Sequence[OutboxEvent]) -> None:
            events.extend([*queue.outbox(HookEvent.POST_CREATE, record), *finished])
            await self.tus.state.create(record, events=events)

        try:
            if info.is_complete:  # tus §POST: an upload with Upload-Length: 0 is complete at once
                info, _ = await verdicts.finish(self.tus, info, queue, create)
            else:
                await create(info, ())
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._remove_storage(info.storage)
            raise
        queue.wrote(events)
        return info

    async def _remove_storage(self, ref: StorageRef) -> None:
        if isinstance(self.tus.storage, SupportsDelete):
            try:
                await self.tus.storage.delete(ref)
            except StorageError as exc:  # the sweep finds it later
                logger.warning("could not remove the storage of %s: %s", ref.key, exc)

    def _new_record(
        self, upload_id: str, ref: StorageRef, plan: rules.CreatePlan, concat: Concat | None, owner: str | None
    ) -> UploadInfo:
        now = self.tus.clock()
        partial = {"concat": "partial", "concat_header": concat.header} if concat is not None else {}
        # tus §POST: a length of 0 is complete at once
        expires_at = self.tus.expiry(now, complete=plan.length == 0, partial=concat is not None)
        return UploadInfo(
            id=upload_id,
            length=plan.length,
            metadata=plan.metadata,
            storage=ref,
            created_at=now,
            expires_at=expires_at,
            owner=owner,
            **partial,
        )

    async def head(self, request: Request) -> TusResponse:
        """tus §HEAD: the upload's offset, length and metadata."""
        upload_id = headers.check_upload_id(request.path_params["upload_id"])
        info, busy = await self._peek(upload_id)
        usable(request, info)
        # A finished upload never changes, and a free one has no writer: both are read without the
        # lock. A busy one is taken, which makes a stalled PATCH store its bytes and let go, so the
        # offset is current (PROTOCOL.md item 28); a pending final may be joined now.
        if not info.is_complete and (busy or info.concat == "final"):
            async with self._locked(upload_id):
                info = await finals.settle_final(self.tus, await self.tus.state.get(upload_id))
        rules.check_not_expired(info, self.tus.clock())
        return responses.head_response(info)

    async def _peek(self, upload_id: str) -> tuple[UploadInfo, bool]:
        """The record and whether a request holds its lock: one round trip with Redis."""
        if self._peeking is not None:
            return await self._peeking.peek(upload_id)
        info = await self.tus.state.get(upload_id)
        return info, not info.is_complete and await self.tus.locker.held(upload_id)

    async def patch(self, request: Request) -> TusResponse:
        """tus §PATCH: append the body at Upload-Offset."""
        tus = self.tus
        upload_id = headers.check_upload_id(request.path_params["upload_id"])
        patch = headers.parse_patch(header_fields(request.scope))
        await usable_before_lock(self.tus, request, upload_id)
        async with (
            self._events(request) as queue,
            tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout) as lease,
        ):
            info = usable(request, await tus.state.get(upload_id))
            rules.check_not_expired(info, tus.clock())
            plan = rules.plan_patch(info, patch, max_size=tus.max_size(deferred=info.length is None))
            declared = info if plan.length == info.length else info.model_copy(update={"length": plan.length})
            append = Append(
                declared, plan.body_limit, patch.checksum, was_complete=info.is_complete, size=patch.content_length
            )
            info = await receive(self.tus, request, append, lease)
        return hooks.shaped(responses.patch_response(info), queue)

    async def delete(self, request: Request) -> TusResponse:
        """tus §DELETE (termination): expire the record, delete the bytes, then the record.

        Expired first, the upload is gone for clients (410) from then on; if deleting the bytes fails
        (a storage outage: 503) or the server crashes, the record is still there to find them: a
        repeated DELETE or the expiry sweep finishes the job (PROTOCOL.md items 69, 72). On a full
        disk the record cannot be saved, and the bytes go first: a DELETE is how space is freed.
        """
        tus = self.tus
        upload_id = headers.check_upload_id(request.path_params["upload_id"])
        await usable_before_lock(self.tus, request, upload_id)
        async with (
            self._events(request) as queue,
            tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout) as lease,
        ):
            info = usable(request, await tus.state.get(upload_id))
            check_live(info)
            answer = await hooks.decide(tus, HookEvent.PRE_TERMINATE, info, queue.http)
            if answer.RejectTermination:
                response = answer.HTTPResponse
                raise TerminationRejectedError(
                    status=response.StatusCode, body=response.Body, headers=dict(response.Header)
                )
            if isinstance(tus.storage, SupportsDelete):
                ending = {"state": UploadState.TERMINATED, "expires_at": tus.clock()}
                with contextlib.suppress(StorageFullError):
                    await tus.state.save(info.model_copy(update=ending), lease=lease)
                await tus.storage.delete(info.storage)
            events = queue.outbox(HookEvent.POST_TERMINATE, info)
            await bury(tus, info, events, lease=lease, terminated=True)  # a tombstone, for the status API
            queue.wrote(events)
        metrics.UPLOADS_TERMINATED.inc()
        return responses.deleted_response()

    async def get(self, request: Request) -> Response:
        """GET: download a finished upload, without a lock (`tusserver.pipeline.downloads`)."""
        upload_id = headers.check_upload_id(request.path_params["upload_id"])
        info = usable(request, await self.tus.state.get(upload_id))
        if info.concat == "final" and not info.is_complete:  # its last partial may have finished since
            async with self.tus.locker.acquire(upload_id, timeout=self.tus.settings.lock_timeout):
                info = await finals.settle_final(self.tus, await self.tus.state.get(upload_id))
        if verdict_due(info):  # its checks stopped half-way: they end before it is served
            await verdicts.resume(self.tus, info, hooks.http_request(request))
        return await downloads.download(self.tus, request)

    def _upload_path(self, request: Request) -> str:
        # root_path holds this app's mount prefix; url_for would search the outermost router
        # and could name another mounted tus app.
        path: str = request.scope.get("root_path", "") + self.tus.settings.base_path
        return path

    def _location(self, request: Request, upload_id: str) -> str:
        fields = header_fields(request.scope)
        scheme, host = request_origin(request.scope, fields.get("host"))
        client = request.client.host if request.client else None
        if self.tus.trusted_proxies.trusts(client):
            forwarded_scheme, forwarded_host = forwarded_origin(fields)
            scheme, host = forwarded_scheme or scheme, forwarded_host or host
        origin = f"{scheme}://{host}" if host else ""  # relative without a known host (RFC 9110 §10.2.2)
        return origin + self._upload_path(request) + upload_id

"""One async function per tus method; each follows parse -> lock -> load -> decide -> I/O -> render.

Handlers return a pure `TusResponse`; `Endpoints.route` turns every failure into the error
table's response, so no request ever ends in a traceback.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import anyio
from starlette.requests import Request
from starlette.responses import Response

from storage_backends.base import StorageBackend, SupportsDelete
from storage_backends.errors import BlobNotFoundError, StorageError, StorageUnavailableError
from tusserver.body import BodyReader
from tusserver.locking import Lease, Locker
from tusserver.middleware import to_starlette
from tusserver.protocol import headers, responses, rules
from tusserver.protocol.errors import (
    InternalServerError,
    ServiceUnavailableError,
    StorageFailureError,
    TusError,
    UploadNotFoundError,
)
from tusserver.protocol.model import Extension, UploadInfo
from tusserver.protocol.responses import TusResponse
from tusserver.settings import Settings
from tusserver.state.base import UploadStateStore
from tusserver.urls import TrustedProxies, forwarded_origin

__all__ = ["Endpoints", "TusContext", "from_storage"]

logger = logging.getLogger("tusserver")

Handler = Callable[[Request], Awaitable[TusResponse]]


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _new_upload_id() -> str:
    # 128 random bits: unguessable upload URLs, as the RUFH draft recommends (PROTOCOL.md item 37).
    return secrets.token_hex(16)


@dataclass
class TusContext:
    """What the endpoints work with: configuration and the pluggable parts."""

    settings: Settings
    storage: StorageBackend
    state: UploadStateStore
    locker: Locker
    extensions: tuple[Extension, ...]
    trusted_proxies: TrustedProxies
    clock: Callable[[], datetime] = field(default=_utcnow)
    new_upload_id: Callable[[], str] = field(default=_new_upload_id)

    async def aclose(self) -> None:
        """Close the state store and the storage."""
        await self.state.aclose()
        await self.storage.aclose()


def from_storage(exc: StorageError) -> TusError:
    """The one translation of storage errors into tus errors."""
    if isinstance(exc, BlobNotFoundError):
        return UploadNotFoundError("the upload's data is gone")
    if isinstance(exc, StorageUnavailableError):
        return ServiceUnavailableError()
    return StorageFailureError()  # details go to the log, not to the client


class Endpoints:
    """The tus handlers bound to one `TusContext`."""

    def __init__(self, tus: TusContext) -> None:
        self.tus = tus

    def route(self, handlers: Mapping[str, Handler]) -> Callable[[Request], Awaitable[Response]]:
        """One endpoint for a URL: pick the handler by method, render its `TusResponse`, or the
        error table's answer to any failure."""

        async def endpoint(request: Request) -> Response:
            try:
                response = await handlers[request.method](request)
            except Exception as exc:  # every failure becomes a clean, logged response
                response = self._error_response(request, exc)
            return to_starlette(response)

        return endpoint

    def _error_response(self, request: Request, exc: Exception) -> TusResponse:
        upload_id = request.path_params.get("upload_id") or getattr(request.state, "upload_id", "-")
        if isinstance(exc, TusError):
            error = exc
        elif isinstance(exc, StorageError):
            error = from_storage(exc)
            logger.warning("storage error on upload %s: %s", upload_id, exc)
        else:
            error = InternalServerError()
            logger.exception("unexpected error on upload %s", upload_id)
        request.state.error_code = error.code
        return responses.error_response(error, with_body=request.method != "HEAD")

    async def options(self, request: Request) -> TusResponse:
        """tus §OPTIONS: what this server supports."""
        return responses.options_response(self.tus.extensions, self.tus.settings.max_size)

    async def post(self, request: Request) -> TusResponse:
        """tus §POST (creation, creation-with-upload, creation-defer-length)."""
        tus = self.tus
        create = headers.parse_create(request.headers)
        plan = rules.plan_create(create, max_size=tus.settings.max_size, extensions=tus.extensions)
        upload_id = request.state.upload_id = tus.new_upload_id()
        ref = await tus.storage.create(upload_id, length=plan.length)
        info = UploadInfo(id=upload_id, length=plan.length, metadata=plan.metadata, storage=ref, created_at=tus.clock())
        # tus §POST: an upload with Upload-Length: 0 is complete at once.
        await self._complete_if_done(info, was_complete=False)
        await tus.state.create(info)
        location = self._location(request, upload_id)
        if plan.read_body:
            try:
                async with tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout) as lease:
                    info = await self._receive(request, info, plan.body_limit, lease, was_complete=info.is_complete)
            except TusError as error:
                error.extra_headers["Location"] = location  # the upload exists; let the client resume it
                raise
        return responses.created_response(location, info)

    async def head(self, request: Request) -> TusResponse:
        """tus §HEAD: the upload's offset, length and metadata."""
        upload_id = headers.check_upload_id(request.path_params["upload_id"])
        info = await self.tus.state.get(upload_id)
        if not info.is_complete:
            # The lock makes a stalled PATCH store its bytes and let go, so the offset is current.
            # A finished upload never changes, so any number of readers go without the lock.
            async with self.tus.locker.acquire(upload_id, timeout=self.tus.settings.lock_timeout):
                info = await self.tus.state.get(upload_id)
        return responses.head_response(info)

    async def patch(self, request: Request) -> TusResponse:
        """tus §PATCH: append the body at Upload-Offset."""
        tus = self.tus
        upload_id = headers.check_upload_id(request.path_params["upload_id"])
        patch = headers.parse_patch(request.headers)
        async with tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout) as lease:
            info = await tus.state.get(upload_id)
            plan = rules.plan_patch(info, patch, max_size=tus.settings.max_size)
            declared = info.model_copy(update={"length": plan.length})
            info = await self._receive(request, declared, plan.body_limit, lease, was_complete=info.is_complete)
        return responses.patch_response(info)

    async def delete(self, request: Request) -> TusResponse:
        """tus §DELETE (termination): remove the record first, so a crash leaves no half-upload."""
        tus = self.tus
        upload_id = headers.check_upload_id(request.path_params["upload_id"])
        async with tus.locker.acquire(upload_id, timeout=tus.settings.lock_timeout):
            info = await tus.state.get(upload_id)
            await tus.state.delete(upload_id)
            if isinstance(tus.storage, SupportsDelete):
                await tus.storage.delete(info.storage)
        return responses.deleted_response()

    async def _receive(
        self, request: Request, info: UploadInfo, limit: int | None, lease: Lease, *, was_complete: bool
    ) -> UploadInfo:
        """Stream the body into storage, record the new offset, then report how the body ended."""
        body = BodyReader(request.receive, limit=limit, read_timeout=self.tus.settings.read_timeout)
        lease.on_release_request(body.stop)
        offset = await self.tus.storage.append(info.storage, info.offset, body)
        info = info.model_copy(update={"offset": offset})
        with anyio.CancelScope(shield=True):  # bytes that reached storage get recorded, whatever happens
            await self._complete_if_done(info, was_complete=was_complete)
            await self.tus.state.save(info)
        error = rules.body_end_error(body.end or rules.BodyEnd.COMPLETE)
        if error is not None:
            raise error
        return info

    async def _complete_if_done(self, info: UploadInfo, *, was_complete: bool) -> None:
        # Before the offset is recorded, so a recorded complete upload is complete in storage too.
        if info.is_complete and not was_complete:
            await self.tus.storage.complete(info.storage)

    def _location(self, request: Request, upload_id: str) -> str:
        # root_path holds this app's mount prefix; url_for would search the outermost router
        # and could name another mounted tus app.
        path = request.scope.get("root_path", "") + self.tus.settings.base_path + upload_id
        url = request.url.replace(path=path, query="", fragment="")
        client = request.client.host if request.client else None
        if self.tus.trusted_proxies.trusts(client):
            scheme, host = forwarded_origin(request.headers)
            url = url.replace(scheme=scheme or url.scheme, netloc=host or url.netloc)
        return str(url)

"""`create_app`: the tus server as a Starlette app, standalone or mounted in another app."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime

import anyio
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match, Route
from starlette.types import ASGIApp, Receive, Scope, Send

from storage_backends.base import StorageBackend, SupportsConcatenate, SupportsDelete, SupportsOpen
from storage_backends.local import LocalStorage
from tusserver.context import TusContext, utcnow
from tusserver.coordination.auth.setup import build_authenticator
from tusserver.coordination.cleanup import sweep_forever
from tusserver.coordination.hooks.dispatch import InProcessHook
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.progress import ProgressTicker
from tusserver.coordination.hooks.setup import build_hooks, deliverer_of
from tusserver.coordination.instrumented import instrument_locker, instrument_state, instrument_storage
from tusserver.coordination.locking import Locker, MemoryLocker, SupportsServe
from tusserver.coordination.state.base import UploadStateStore
from tusserver.coordination.state.sqlite import SQLiteStateStore
from tusserver.pipeline.access import AccessMiddleware
from tusserver.pipeline.api import StatusApi
from tusserver.pipeline.endpoints import Endpoints, Handler
from tusserver.pipeline.middleware import TusMiddleware, to_starlette
from tusserver.pipeline.operations import Operations
from tusserver.protocol import responses
from tusserver.protocol.errors import MethodNotAllowedError, TusError, UploadNotFoundError
from tusserver.protocol.rules import supported_extensions
from tusserver.protocol.urls import TrustedProxies
from tusserver.settings import Settings
from tusserver.ui import UploadPage

__all__ = ["CORS_ALLOW_HEADERS", "CORS_EXPOSE_HEADERS", "create_app", "default_storage"]

logger = logging.getLogger("tusserver")

# PROTOCOL.md item 88 (tusd's DefaultCorsConfig plus Upload-Checksum).
CORS_ALLOW_HEADERS = (
    "Authorization", "Origin", "X-Requested-With", "X-Request-ID", "X-HTTP-Method-Override", "Content-Type",
    "Upload-Length", "Upload-Offset", "Tus-Resumable", "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat",
    "Upload-Checksum", "Upload-Complete", "Upload-Draft-Interop-Version", "Range", "If-Range", "If-None-Match",
)  # fmt: skip
# PROTOCOL.md item 89: without these on every response, browsers hide the tus headers from clients.
CORS_EXPOSE_HEADERS = (
    "Upload-Offset", "Location", "Upload-Length", "Tus-Version", "Tus-Resumable", "Tus-Max-Size", "Tus-Extension",
    "Upload-Metadata", "Upload-Defer-Length", "Upload-Concat", "Upload-Expires", "Upload-Complete", "Upload-Limit",
    "Upload-Draft-Interop-Version", "Tus-Checksum-Algorithm", "Content-Disposition", "Content-Range", "Accept-Ranges",
    "ETag", "WWW-Authenticate", "Repr-Digest", "X-Request-ID",
)  # fmt: skip
CORS_METHODS = ("POST", "HEAD", "PATCH", "OPTIONS", "GET", "DELETE")


def create_app(
    settings: Settings | None = None,
    *,
    storage: StorageBackend | None = None,
    state: UploadStateStore | None = None,
    locker: Locker | None = None,
    clock: Callable[[], datetime] | None = None,
    hooks: Mapping[str, InProcessHook] | None = None,
) -> Starlette:
    """Build the tus server.

    Args:
        settings: configuration; the defaults store files and state under ./data.
        storage: where bytes go; defaults to `LocalStorage(<data_dir>/uploads)`.
        state: where upload records go; defaults to `SQLiteStateStore(<data_dir>/state.sqlite3)`.
        locker: per-upload locks; defaults to `MemoryLocker()` (one server process).
        clock: the current UTC time, for expiry; tests pass a controllable one.
        hooks: in-process hooks: an async callable per event (`"pre-create"`, `HookEvent.POST_FINISH`, ...)
            taking a `HookRequest` and returning a `HookResponse` or None; besides those of the settings.

    Returns:
        A Starlette app serving the creation endpoint at `settings.base_path` and uploads below it.
        `app.state.tus` holds the `TusContext`.
    """
    settings = settings or Settings()
    storage = storage or default_storage(settings)
    if settings.redis_url is not None and (state is None or locker is None):
        state, locker = _redis_parts(settings, state, locker)
    tus = TusContext(
        settings=settings,
        storage=storage,
        state=state or SQLiteStateStore(settings.data_dir / "state.sqlite3", fsync=settings.fsync),
        locker=locker or MemoryLocker(),
        extensions=supported_extensions(
            can_delete=isinstance(storage, SupportsDelete),
            expires=settings.expiration is not None,
            can_concatenate=isinstance(storage, SupportsConcatenate),
        ),
        trusted_proxies=TrustedProxies.parse(settings.trusted_proxies),
        hooks=build_hooks(settings, hooks),
        clock=clock or utcnow,
    )
    tus.deliverer = deliverer_of(tus)
    # Latency metrics (tusserver_storage_seconds, _state_seconds, _lock_wait_seconds), whatever the parts are.
    instrument_storage(tus.storage)
    instrument_state(tus.state)
    instrument_locker(tus.locker)
    if tus.hooks.on(HookEvent.POST_RECEIVE):
        tus.progress = ProgressTicker(settings.hooks_progress_interval)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        if isinstance(tus.storage, SupportsOpen):
            await tus.storage.open()  # a missing bucket stops the start-up with its reason
        async with anyio.create_task_group() as tasks:
            tus.hooks.run_in(tasks)  # non-blocking hooks run in the background from now on
            if tus.deliverer is not None:
                tasks.start_soon(tus.deliverer.run)
            if tus.progress is not None:
                tasks.start_soon(tus.progress.run)
            if settings.cleanup_interval is not None:
                tasks.start_soon(sweep_forever, tus, settings.cleanup_interval)
            if isinstance(tus.locker, SupportsServe):
                tasks.start_soon(tus.locker.serve)
            yield
            tus.hooks.run_in(None)
            tasks.cancel_scope.cancel()
        await tus.aclose()
        logger.info("stopped: state and storage closed")

    routes = _routes(Endpoints(tus), settings.base_path)
    # The status API through Starlette's router, not `_TusRoutes`: its 404s and 405s are the router's.
    api = StatusApi(tus, settings.api_path).routes() if settings.api_path is not None else []
    app = Starlette(
        routes=[*routes, *api],
        middleware=[
            # Health, readiness and metrics before anything else: public, cheap, and answered while draining.
            Middleware(Operations, tus=tus, metrics_path=settings.metrics_path),
            # The upload page first: public, and not tus (no CORS, no Tus-Resumable, no access check).
            *([Middleware(UploadPage, tus=tus)] if settings.ui else []),
            *_middleware(settings),
            # Inside CORS (a refusal carries its headers, a preflight is never gated), before every route.
            Middleware(AccessMiddleware, tus=tus, auth=build_authenticator(settings)),
            Middleware(_TusRoutes, routes=routes),
        ],
        exception_handlers={HTTPException: _router_error},
        lifespan=lifespan,
    )
    app.state.tus = tus
    return app


def default_storage(settings: Settings) -> StorageBackend:
    """Local files, S3 or Azure (imported only when configured: their SDKs are extras)."""
    if settings.storage == "local":
        return LocalStorage(settings.data_dir / "uploads", fsync=settings.fsync)
    if settings.storage == "azure":
        return _azure_storage(settings)
    try:
        from storage_backends.s3.store import S3Options, S3Storage  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--storage s3 needs aiobotocore: pip install 'tusserver[s3]'") from None
    assert settings.s3_bucket is not None
    options = S3Options(
        bucket=settings.s3_bucket,
        prefix=settings.s3_prefix,
        endpoint=settings.s3_endpoint,
        region=settings.s3_region,
        part_size=settings.s3_part_size,
        deferred_part_size=settings.s3_deferred_part_size,
        buffer_budget=settings.buffer_budget,
        part_concurrency=settings.s3_part_concurrency,
        timeout=settings.storage_timeout,
    )
    return S3Storage(options)


def _azure_storage(settings: Settings) -> StorageBackend:
    try:
        from storage_backends.azure.store import AzureBlobStorage, AzureOptions  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--storage azure needs azure-storage-blob: pip install 'tusserver[azure]'") from None
    assert settings.azure_container is not None
    options = AzureOptions(
        container=settings.azure_container,
        prefix=settings.azure_prefix,
        connection_string=settings.azure_connection_string,
        account_url=settings.azure_account_url,
        account_key=settings.azure_account_key,
        sas_token=settings.azure_sas_token,
        block_size=settings.azure_block_size,
        deferred_block_size=settings.azure_deferred_block_size,
        buffer_budget=settings.buffer_budget,
        block_concurrency=settings.azure_block_concurrency,
        timeout=settings.storage_timeout,
    )
    return AzureBlobStorage(options)


def _redis_parts(
    settings: Settings, state: UploadStateStore | None, locker: Locker | None
) -> tuple[UploadStateStore, Locker]:
    """The Redis state store and locker, sharing one client (a plain URL, or a Sentinel one:
    `tusserver.coordination.redis_url`); imported only when configured."""
    try:
        # Imported here: redis is an optional dependency (`tusserver[redis]`).
        from redis.asyncio.retry import Retry  # noqa: PLC0415
        from redis.backoff import EqualJitterBackoff  # noqa: PLC0415

        from tusserver.coordination.redis_client import redis_client  # noqa: PLC0415
        from tusserver.coordination.redis_locking import RedisLocker  # noqa: PLC0415
        from tusserver.coordination.state.redis import RedisStateStore  # noqa: PLC0415
    except ImportError:
        raise RuntimeError("--redis-url needs the redis package: pip install 'tusserver[redis]'") from None
    assert settings.redis_url is not None
    # Each command may wait socket_timeout for an answer, and is tried 3 times (redis-py's default is 11),
    # so an unanswering Redis ends a request with 503 within ~16 s instead of a minute; the retries
    # (after 50-500 ms) ride out a dropped connection, and a Sentinel failover's switch of master.
    retry = Retry(EqualJitterBackoff(cap=0.5, base=0.05), retries=2)
    client = redis_client(
        settings.redis_url, decode_responses=True, socket_timeout=5, socket_connect_timeout=2, retry=retry
    )
    prefix = settings.redis_prefix
    return (
        state or RedisStateStore(client, prefix=prefix),
        locker or RedisLocker(client, prefix=prefix, ttl=settings.lock_ttl),
    )


def _routes(endpoints: Endpoints, base_path: str) -> list[Route]:
    # One route per URL listing all its methods, so a 405 names every allowed method (RFC 9110 §15.5.6).
    collection = {"POST": endpoints.post, "OPTIONS": endpoints.options}
    upload: dict[str, Handler] = {"HEAD": endpoints.head, "PATCH": endpoints.patch, "OPTIONS": endpoints.options}
    if isinstance(endpoints.tus.storage, SupportsDelete):
        upload["DELETE"] = endpoints.delete
    if endpoints.tus.settings.downloads:
        # Starlette adds HEAD to a route with GET; HEAD is listed anyway and dispatched by method to the tus HEAD.
        upload["GET"] = endpoints.get
    routes = [
        Route(base_path, endpoints.route(collection), methods=list(collection)),
        Route(base_path + "{upload_id}", endpoints.route(upload), methods=list(upload)),
    ]
    if base_path != "/":  # "/files" as well as "/files/": no redirect for a POST
        routes.append(Route(base_path.rstrip("/"), routes[0].endpoint, methods=list(collection)))
    return routes


def _middleware(settings: Settings) -> list[Middleware]:
    cors = {
        "allow_origins": settings.cors_origins,
        "allow_methods": CORS_METHODS,
        "allow_headers": CORS_ALLOW_HEADERS,
        "expose_headers": CORS_EXPOSE_HEADERS + settings.cors_expose_headers,
        "max_age": 86400,
    }
    check_head = settings.require_tus_resumable_on_head
    return [Middleware(TusMiddleware, cors=cors, check_head=check_head, api_path=settings.api_path)]


class _TusRoutes:
    """The tus routes' requests straight to their endpoint, past Starlette's exception middleware and
    router; whatever they do not fully match (a 404, a 405, the lifespan) takes the usual way there."""

    def __init__(self, app: ASGIApp, *, routes: list[Route]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            for route in self.routes:
                match, child_scope = route.matches(scope)
                if match is Match.FULL:  # as Starlette's Router does for a full match
                    scope.update(child_scope)
                    await route.app(scope, receive, send)
                    return
        await self.app(scope, receive, send)


async def _router_error(request: Request, exc: Exception) -> Response:
    """The router's 404 and 405, answered like every other tus error (with an error code)."""
    assert isinstance(exc, HTTPException)
    error: TusError = UploadNotFoundError()
    if exc.status_code == 405:
        error = MethodNotAllowedError(allow=(exc.headers or {}).get("Allow", ""))
    request.state.error_code = error.code
    return to_starlette(responses.error_response(error, with_body=request.method != "HEAD"))

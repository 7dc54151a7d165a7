"""What operators ask of a running server, answered before everything else (no CORS, no authorization):
`/healthz`, `/readyz`, the Prometheus metrics, and, once the server drains for a shutdown, 503 to new requests.

`/healthz` says the process serves requests (a liveness probe: restart it when this fails). `/readyz` says the
state store and the storage answer within `READY_TIMEOUT` seconds and the server is not shutting down (a
readiness probe: send it no traffic while this fails); otherwise 503 with the reason, `ERR_CODE: reason`.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable

import anyio
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.types import ASGIApp, Receive, Scope, Send

from storage_backends.base import SupportsOpen
from tusserver.context import TusContext
from tusserver.coordination import metrics
from tusserver.pipeline.middleware import send_response
from tusserver.protocol.errors import ServiceUnavailableError, UploadNotFoundError
from tusserver.protocol.responses import TusResponse, error_response

__all__ = ["HEALTH_PATH", "READY_PATH", "READY_TIMEOUT", "Operations", "draining_response"]

logger = logging.getLogger("tusserver")

HEALTH_PATH = "/healthz"
READY_PATH = "/readyz"
READY_TIMEOUT = 5.0  # seconds each of the state store and the storage may take to answer a readiness probe
PROBE_ID = "0" * 32  # an upload id no upload has (ours are random): the state store answers "not found"
_TEXT = {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}

Endpoint = Callable[[], Awaitable[TusResponse]]


def draining_response() -> TusResponse:
    """The answer to a request that arrives while the server drains: 503, Retry-After, and the connection
    closed, so that the client's retry opens a new one (to another instance, or to this one restarted)."""
    response = error_response(ServiceUnavailableError("the server is shutting down; retry"))
    return TusResponse(response.status, {**response.headers, "Connection": "close"}, response.body)


class Operations:
    """The operators' endpoints and the drain gate, in front of the app.

    Args:
        app: the rest of the app.
        tus: whose state store and storage `/readyz` asks, and whose `draining` closes the gate.
        metrics_path: where the metrics are served; None serves none.
    """

    def __init__(self, app: ASGIApp, *, tus: TusContext, metrics_path: str | None) -> None:
        self.app = app
        self.tus = tus
        self.endpoints: dict[str, Endpoint] = {HEALTH_PATH: self.healthz, READY_PATH: self.readyz}
        if metrics_path is not None:
            self.endpoints[metrics_path] = self.metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.endpoints.get(_own_path(scope))
            if endpoint is not None and scope["method"] in ("GET", "HEAD"):
                response = await endpoint()
                if scope["method"] == "HEAD":
                    response = TusResponse(response.status, response.headers, b"")
                await send_response(response, send)
                return
            if self.tus.draining:
                await send_response(draining_response(), send)
                return
        await self.app(scope, receive, send)

    async def healthz(self) -> TusResponse:
        return TusResponse(200, _TEXT, b"ok\n")

    async def readyz(self) -> TusResponse:
        problem = "the server is shutting down" if self.tus.draining else await self.unready()
        if problem is None:
            return TusResponse(200, _TEXT, b"ready\n")
        response = error_response(ServiceUnavailableError(problem))
        return TusResponse(response.status, {**response.headers, "Cache-Control": "no-store"}, response.body)

    async def unready(self) -> str | None:
        """Why the server cannot serve uploads now, or None: it can."""
        return await _probe("the state store", self._ask_state) or await _probe("the storage", self._ask_storage)

    async def _ask_state(self) -> None:
        with contextlib.suppress(UploadNotFoundError):  # "not found" is an answer
            await self.tus.state.get(PROBE_ID)

    async def _ask_storage(self) -> None:
        storage = self.tus.storage
        if isinstance(storage, SupportsOpen):  # an object store: its bucket or container, checked again
            await storage.open()

    async def metrics(self) -> TusResponse:
        return TusResponse(200, {"Content-Type": CONTENT_TYPE_LATEST}, generate_latest(metrics.REGISTRY))


async def _probe(what: str, ask: Callable[[], Awaitable[None]]) -> str | None:
    try:
        with anyio.fail_after(READY_TIMEOUT):
            await ask()
    except TimeoutError:
        return f"{what} did not answer within {READY_TIMEOUT:g} s"
    except ServiceUnavailableError as exc:  # already says what failed, as a 503 to an upload would
        logger.warning("readiness: %s failed: %s", what, exc)
        return str(exc)
    except Exception as exc:  # whatever it is, the probe says not ready; the details go to the log only
        logger.warning("readiness: %s failed: %s", what, exc)
        return f"{what} failed ({type(exc).__name__})"
    return None


def _own_path(scope: Scope) -> str:
    # A mounted app's path starts with its mount prefix (root_path).
    path: str = scope["path"]
    root: str = scope.get("root_path", "")
    return path[len(root) :] if root and path.startswith(root) else path

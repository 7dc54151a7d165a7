"""A graceful stop for uvicorn: drain, give running requests `--shutdown-timeout` seconds, then end their
bodies as a disconnect would, so that every byte received is stored and recorded and every lock released.

uvicorn on SIGTERM closes its listening sockets, closes idle connections, lets busy ones finish their
request (closing after it), and after `timeout_graceful_shutdown` cancels the requests still running. A
cancelled PATCH is the wrong ending: the cancellation can land anywhere, also between storing bytes and
recording them. `DrainingServer` instead, when the timeout passes, closes the connections still open. Each
request then sees `http.disconnect`, which the pipeline already handles cleanly: the body ends, what arrived
is stored and its offset recorded, the lock is let go, as when a client goes away mid-PATCH. uvicorn's own
cancellation stays as the last resort, `END_GRACE` seconds later.

Requests that arrive on a connection still open once draining began get 503 with Retry-After and
`Connection: close` (`tusserver.pipeline.operations`), and `/readyz` says the server is shutting down.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import anyio
import uvicorn

from tusserver.context import TusContext

__all__ = ["END_GRACE", "DrainingServer"]

logger = logging.getLogger("tusserver")

END_GRACE = 10.0  # seconds requests get to record what they received once their connections are closed


class DrainingServer(uvicorn.Server):
    """uvicorn's server, draining `tus`'s app on shutdown (see the module)."""

    def __init__(self, config: uvicorn.Config, tus: TusContext, *, timeout: float) -> None:
        config.timeout_graceful_shutdown = int(timeout + END_GRACE + 1)  # whole seconds in uvicorn's annotation
        super().__init__(config)
        self.tus = tus
        self.timeout = timeout

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        self.tus.draining = True
        logger.info("draining: running requests have %g s to finish", self.timeout)
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(self._end_connections_later)
            await super().shutdown(sockets)
            tasks.cancel_scope.cancel()

    async def _end_connections_later(self) -> None:
        await anyio.sleep(self.timeout)
        connections: set[Any] = self.server_state.connections
        if connections:
            logger.warning(
                "shutdown timeout: ending %d request(s) as disconnects; what arrived is kept", len(connections)
            )
        for connection in list(connections):
            splicer = getattr(connection, "_splicer", None)  # PieceProtocol's, while a body is spliced
            if splicer is not None:
                # Closed here, in a task: anyio wakes the splice waiting on it only from inside the event loop's
                # tasks, and connection_lost runs as a plain callback.
                splicer.close()
            connection.transport.close()  # connection_lost: the request's receive() answers http.disconnect

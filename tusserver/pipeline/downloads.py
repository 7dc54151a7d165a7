"""GET: stream a finished upload to the client (tusd's `GetFile`), decisions in `protocol.downloads`.

No lock is taken: a finished upload never changes, so any number of readers share it, and a
long download never blocks a HEAD, or a DELETE, of the same upload (tus/tusd#1356).
Memory stays bounded: the storage yields bounded pieces, each sent before the next is read.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import anyio
from starlette.requests import Request
from starlette.responses import Response, StreamingResponse

from tusserver.protocol import headers
from tusserver.protocol.downloads import plan_download

if TYPE_CHECKING:
    from tusserver.context import TusContext

__all__ = ["download"]


async def download(tus: TusContext, request: Request) -> Response:
    """Answer a GET of an upload: 200 with every byte, 206 with one range, or 304.

    Args:
        tus: the server's context.
        request: the GET request.

    Returns:
        A streaming response; the first piece is read before it is returned, so a missing blob or a
        failing storage still gets a proper error response instead of a cut-off body.

    Raises:
        TusError: the upload is unknown, unfinished or expired, or the Range is not satisfiable.
        StorageError: the storage failed before the first byte.
    """
    upload_id = headers.check_upload_id(request.path_params["upload_id"])
    info = await tus.state.get(upload_id)
    plan = plan_download(info, request.headers, tus.clock())
    if plan.status == 304 or plan.start == plan.end:
        return Response(status_code=plan.status, headers=plan.headers)
    pieces = tus.storage.read(info.storage, plan.start, plan.end)
    first = await anext(pieces, b"")
    return StreamingResponse(_stream(first, pieces), status_code=plan.status, headers=plan.headers)


async def _stream(first: bytes, pieces: AsyncIterator[bytes]) -> AsyncIterator[bytes]:
    # A storage failure after the headers went out propagates, so the server aborts the connection:
    # the only way left to tell the client the body is incomplete (it also sees Content-Length unmet).
    try:
        yield first
        async for piece in pieces:
            yield piece
    finally:
        close = getattr(pieces, "aclose", None)
        if close is not None:  # release the file handle or connection now, even on a disconnect
            with anyio.CancelScope(shield=True):
                await close()

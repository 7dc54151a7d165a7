"""Raw ASGI helpers: requests with a scripted `receive()` (disconnects, stalls), for what httpx cannot do."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import anyio
import anyio.lowlevel
import httpx
from starlette.types import ASGIApp, Message, Scope

from tusserver import Settings, create_app

DISCONNECT: Message = {"type": "http.disconnect"}


def chunk(data: bytes, *, more: bool = True) -> Message:
    """One `http.request` message; `more=True` promises further body pieces."""
    return {"type": "http.request", "body": data, "more_body": more}


class ScriptedReceive:
    """An ASGI `receive` that returns `messages` in order, then stalls forever (a client that sends no more).

    If the script ends with a disconnect, later calls keep answering `http.disconnect`, as servers do.
    Each call first yields to the event loop, so concurrent requests interleave like real ones.
    `exhausted` is set when the server asks for more than the script holds: by then it has consumed
    (stored) every piece before.
    """

    def __init__(self, messages: Sequence[Message]) -> None:
        self.messages = list(messages)
        self.last: Message = {}
        self.exhausted = anyio.Event()

    async def __call__(self) -> Message:
        await anyio.lowlevel.checkpoint()
        if self.messages:
            self.last = self.messages.pop(0)
            return self.last
        self.exhausted.set()
        if self.last == DISCONNECT:
            return DISCONNECT
        await anyio.Event().wait()  # never set: no byte ever comes
        raise AssertionError("unreachable")  # pragma: no cover


@dataclass
class Captured:
    """The response the app sent: status, lower-case headers and body."""

    status: int = 0
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def code(self) -> str:
        """The tus error code of the body ("ERR_...: reason")."""
        return self.body.decode().split(":", 1)[0]


def http_scope(
    method: str,
    raw_path: str,
    headers: Mapping[str, str] | None = None,
    *,
    client: tuple[str, int] = ("127.0.0.1", 123),
) -> Scope:
    """An HTTP scope as a server builds it; `raw_path` is the path as sent, percent-escapes included."""
    header_list = [(b"host", b"testserver")] + [
        (name.lower().encode("latin-1"), value.encode("latin-1")) for name, value in (headers or {}).items()
    ]
    return {
        "type": "http",
        "asgi": {"version": "3.0", "spec_version": "2.3"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": unquote(raw_path),
        "raw_path": raw_path.encode("utf-8", "surrogateescape"),
        "root_path": "",
        "query_string": b"",
        "headers": header_list,
        "client": client,
        "server": ("testserver", 80),
    }


def patch_scope(location: str, offset: int, *, content_length: int | None = None) -> Scope:
    """A PATCH of the upload at `location` (an absolute URL) from `offset`."""
    headers = {"Tus-Resumable": "1.0.0", "Content-Type": "application/offset+octet-stream"}
    headers["Upload-Offset"] = str(offset)
    if content_length is not None:
        headers["Content-Length"] = str(content_length)
    return http_scope("PATCH", httpx.URL(location).path, headers)


def upload_id(location: str) -> str:
    """The upload id: the last segment of the upload URL."""
    return location.rsplit("/", 1)[1]


async def asgi_call(app: ASGIApp, scope: Scope, receive: ScriptedReceive, captured: Captured | None = None) -> Captured:
    """Run one request through `app`; pass `captured` to read the response from another task."""
    captured = captured if captured is not None else Captured()

    async def send(message: Message) -> None:
        if message["type"] == "http.response.start":
            captured.status = message["status"]
            captured.headers = {name.decode().lower(): value.decode() for name, value in message.get("headers", [])}
        elif message["type"] == "http.response.body":
            captured.body += message.get("body", b"")

    await app(scope, receive, send)
    return captured


@asynccontextmanager
async def open_client(
    app: ASGIApp, *, base_url: str = "http://testserver", client: tuple[str, int] = ("127.0.0.1", 123)
) -> AsyncIterator[httpx.AsyncClient]:
    """An httpx client talking to `app` in-process, as peer `client`."""
    transport = httpx.ASGITransport(app=app, client=client)
    async with httpx.AsyncClient(transport=transport, base_url=base_url) as http:
        yield http


@asynccontextmanager
async def server_lifetime(data_dir: Path) -> AsyncIterator[httpx.AsyncClient]:
    """One lifetime of the default server (LocalStorage + SQLiteStateStore) on `data_dir`; leaving the
    block closes the database like a shutdown, so the next lifetime is a restart."""
    app = create_app(Settings(data_dir=data_dir))
    try:
        async with open_client(app) as client:
            yield client
    finally:
        await app.state.tus.aclose()

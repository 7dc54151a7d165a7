"""`send_response`: a `TusResponse` as the two ASGI messages Starlette's `Response` would send for it.

The endpoints send their responses with it rather than building a Starlette `Response` per request, so
what Starlette did (lower-case header names, a Content-Length exactly where a body may be) is checked here
against Starlette itself.
"""

from __future__ import annotations

import pytest
from starlette.types import Message

from tusserver.pipeline.middleware import send_response, to_starlette
from tusserver.protocol.errors import UploadNotFoundError
from tusserver.protocol.responses import TusResponse, error_response

RESPONSES = {
    "201-created": TusResponse(201, {"Location": "http://h/files/a", "Upload-Offset": "0"}),
    "204-patch": TusResponse(204, {"Upload-Offset": "5", "Upload-Expires": "Fri, 04 Dec 2026 10:00:00 GMT"}),
    "200-head": TusResponse(200, {"Upload-Offset": "5", "Upload-Length": "10", "Cache-Control": "no-store"}),
    "404-error": error_response(UploadNotFoundError()),
    "404-error-for-head": error_response(UploadNotFoundError(), with_body=False),
    "304-no-body": TusResponse(304),
}


class _Recorder:
    """An ASGI `send` that keeps the messages."""

    def __init__(self) -> None:
        self.sent: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.sent.append(message)


async def _sent_by_send_response(response: TusResponse) -> list[Message]:
    send = _Recorder()
    await send_response(response, send)
    return send.sent


async def _sent_by_starlette(response: TusResponse) -> list[Message]:
    async def receive() -> Message:  # pragma: no cover - a response never reads the request
        raise AssertionError("unexpected receive")

    send = _Recorder()
    await to_starlette(response)({"type": "http", "method": "GET"}, receive, send)
    return send.sent


@pytest.mark.anyio
@pytest.mark.parametrize("name", RESPONSES)
async def test_the_messages_are_starlettes(name: str) -> None:
    response = RESPONSES[name]
    assert await _sent_by_send_response(response) == await _sent_by_starlette(response)


@pytest.mark.anyio
async def test_content_length_only_where_a_body_may_be() -> None:
    """RFC 9110 §8.6: a 204 (and 1xx, 304) carries no Content-Length; a 201 or an error counts its body."""
    no_content = await _sent_by_send_response(RESPONSES["204-patch"])
    created = await _sent_by_send_response(RESPONSES["201-created"])
    error = await _sent_by_send_response(RESPONSES["404-error"])
    assert b"content-length" not in dict(no_content[0]["headers"])
    assert dict(created[0]["headers"])[b"content-length"] == b"0"
    assert dict(error[0]["headers"])[b"content-length"] == str(len(error[1]["body"])).encode()
    assert error[1]["body"].startswith(b"ERR_UPLOAD_NOT_FOUND: ")

"""`BodyReader.read_into` where the server offers no `read_into` (granian, TLS, small or chunked bodies): the
body's pieces are copied into the caller's buffers, what does not fit is kept for the next call or the
iteration, and the limit and the ends are those of the iteration (tusserver/pipeline/body.py)."""

from __future__ import annotations

from collections.abc import Sequence

import pytest
from starlette.types import Message

from tusserver.pipeline.body import BodyReader
from tusserver.protocol.rules import BodyEnd

pytestmark = pytest.mark.anyio

PIECES = [b"abc", b"defgh", b"ij"]


def reader_of(pieces: Sequence[bytes], *, limit: int | None = None, disconnect: bool = False) -> BodyReader:
    """A BodyReader over an ASGI channel that sends `pieces`, then a disconnect if `disconnect`."""
    messages: list[Message] = [
        {"type": "http.request", "body": piece, "more_body": disconnect or index < len(pieces) - 1}
        for index, piece in enumerate(pieces)
    ]
    if disconnect:
        messages.append({"type": "http.disconnect"})

    async def receive() -> Message:
        return messages.pop(0)

    return BodyReader(receive, limit=limit, read_timeout=5.0)


async def read(reader: BodyReader, size: int) -> bytes:
    buffer = memoryview(bytearray(size))
    return buffer[: await reader.read_into(buffer)].tobytes()


async def test_pieces_are_cut_and_joined_to_fill_each_buffer() -> None:
    reader = reader_of(PIECES)
    assert await read(reader, 4) == b"abcd"
    assert reader.end is None
    assert await read(reader, 100) == b"efghij"
    assert reader.end is BodyEnd.COMPLETE
    assert await read(reader, 100) == b""


async def test_what_a_buffer_did_not_take_comes_first_in_the_iteration() -> None:
    reader = reader_of(PIECES)
    assert await read(reader, 2) == b"ab"
    assert [chunk async for chunk in reader] == [b"c", b"defgh", b"ij"]
    assert reader.end is BodyEnd.COMPLETE


async def test_a_body_past_the_limit_ends_there() -> None:
    reader = reader_of(PIECES, limit=5)
    assert await read(reader, 100) == b"abcde"
    assert reader.end is BodyEnd.LIMIT_EXCEEDED
    assert reader.received == 5


async def test_a_client_that_leaves_keeps_what_it_sent() -> None:
    reader = reader_of(PIECES, disconnect=True)
    assert await read(reader, 100) == b"abcdefghij"
    assert reader.end is BodyEnd.DISCONNECTED

"""A first transcript: create, append, read back the offset."""

import httpx
import pytest

from storage_backends.memory import MemoryStorage
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, run


@pytest.mark.anyio
async def test_create_patch_head_round_trip(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    await run(
        client,
        [
            Exchange("POST", "/files/", TUS | {"Upload-Length": "11"}, expect=201),
            Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello world", expect=204,
                     expect_headers={"Upload-Offset": "11"}),
            Exchange("HEAD", "{location}", TUS, expect=200,
                     expect_headers={"Upload-Offset": "11", "Upload-Length": "11", "Cache-Control": "no-store"}),
        ],
    )  # fmt: skip
    assert list(storage.blobs.values()) == [bytearray(b"hello world")]

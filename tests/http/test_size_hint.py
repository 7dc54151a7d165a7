"""Storage learns each body's declared size (Content-Length), so it can reserve space for it
(LocalStorage does, storage_backends/_reserve.py); a chunked body declares none."""

from __future__ import annotations

import httpx
import pytest

from tests.http.doubles import SizeRecorder, chunked
from tests.http.transcript import PATCH_HEADERS, TUS, create

OCTETS = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def storage() -> SizeRecorder:
    """Overrides conftest's storage for this module: the app under test uses the recorder."""
    return SizeRecorder()


@pytest.mark.anyio
async def test_patch_passes_its_content_length(client: httpx.AsyncClient, storage: SizeRecorder) -> None:
    location = await create(client, 20)
    first = await client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=b"hello")
    assert first.status_code == 204
    body = chunked(b"wo", b"rld")
    second = await client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "5"}, content=body)
    assert second.status_code == 204
    assert storage.sizes == [5, None]


@pytest.mark.anyio
async def test_creation_with_upload_passes_its_content_length(client: httpx.AsyncClient, storage: SizeRecorder) -> None:
    response = await client.post("/files/", headers=TUS | OCTETS | {"Upload-Length": "11"}, content=b"hello")
    assert response.status_code == 201
    assert storage.sizes == [5]

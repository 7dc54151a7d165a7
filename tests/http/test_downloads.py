"""GET downloads of finished uploads through the ASGI app: status, headers, bytes and error codes."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.base import StorageRef
from storage_backends.local import READ_CHUNK, LocalStorage
from storage_backends.memory import MemoryStorage
from tests.http.asgi import upload_id
from tests.http.conftest import AppFactory
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run
from tusserver import MemoryStateStore, Settings, create_app

# RFC 6266 §4.1: disposition-type, then one quoted `filename` and one RFC 8187 `filename*`.
DISPOSITION = re.compile(
    r"""attachment; filename="[^"\\]+"; filename\*=UTF-8''(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+"""
)
OCTET = "application/octet-stream"
DATA = bytes(range(256)) * 4  # 1 KiB, every byte value, so a misplaced range shows


def metadata(**pairs: bytes) -> dict[str, str]:
    """An Upload-Metadata header with `pairs` base64-encoded."""
    return {"Upload-Metadata": ",".join(f"{key} {base64.b64encode(value).decode()}" for key, value in pairs.items())}


async def finished(client: httpx.AsyncClient, data: bytes = DATA, headers: Mapping[str, str] | None = None) -> str:
    """Create an upload of `data` (with extra creation `headers`), send every byte, and return its URL."""
    location = await create(client, len(data), **(headers or {}))
    if data:
        response = await client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=data)
        assert response.status_code == 204, response.text
    return location


# --- 200, 206, 416 ----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_get_finished_upload_returns_every_byte(client: httpx.AsyncClient) -> None:
    """No Tus-Resumable needed: a browser follows a plain link."""
    location = await finished(client)
    response = await client.get(location)
    assert response.status_code == 200
    assert response.content == DATA
    assert response.headers["content-length"] == str(len(DATA))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"')
    assert response.headers["x-content-type-options"] == "nosniff"
    assert response.headers["content-type"] == "application/octet-stream"
    assert response.headers["content-disposition"] == "attachment"
    assert "content-range" not in response.headers


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("range_header", "start", "end"),
    [("bytes=0-0", 0, 1), ("bytes=100-199", 100, 200), ("bytes=1000-", 1000, 1024), ("bytes=-24", 1000, 1024),
     ("bytes=-5000", 0, 1024), ("bytes=1020-99999", 1020, 1024)],
)  # fmt: skip
async def test_range_returns_206_with_the_stored_bytes(
    client: httpx.AsyncClient, storage: MemoryStorage, range_header: str, start: int, end: int
) -> None:
    """RFC 9110 §14.4, §15.3.7: 206 with Content-Range and exactly the requested stored bytes."""
    location = await finished(client)
    response = await client.get(location, headers={"Range": range_header})
    assert response.status_code == 206
    assert response.content == bytes(storage.blobs[upload_id(location)])[start:end]
    assert response.headers["content-range"] == f"bytes {start}-{end - 1}/1024"
    assert response.headers["content-length"] == str(end - start)


@pytest.mark.anyio
@pytest.mark.parametrize("range_header", ["bytes=1024-", "bytes=5000-6000", "bytes=-0"])
async def test_unsatisfiable_range_returns_416_with_content_range(client: httpx.AsyncClient, range_header: str) -> None:
    """RFC 9110 §15.5.17: 416 with Content-Range: bytes */<length>."""
    location = await finished(client)
    await run(client, [Exchange("GET", location, {"Range": range_header}, expect=416,
                                expect_headers={"Content-Range": "bytes */1024"},
                                expect_code="ERR_RANGE_NOT_SATISFIABLE")])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("range_header", ["bytes=0-1,5-6", "items=0-1", "bytes=5-2", "garbage"])
async def test_ignored_range_returns_whole_body(client: httpx.AsyncClient, range_header: str) -> None:
    """RFC 9110 §14.2: invalid, multiple or foreign-unit ranges are ignored."""
    location = await finished(client)
    response = await client.get(location, headers={"Range": range_header})
    assert (response.status_code, response.content) == (200, DATA)


# --- Conditional requests ---------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_if_range_with_current_etag_applies_range(client: httpx.AsyncClient) -> None:
    location = await finished(client)
    tag = (await client.get(location)).headers["etag"]
    response = await client.get(location, headers={"Range": "bytes=0-9", "If-Range": tag})
    assert (response.status_code, response.content) == (206, DATA[:10])


@pytest.mark.anyio
@pytest.mark.parametrize("if_range", ['"stale"', "weak", "Thu, 01 Jan 2026 00:00:00 GMT"])
async def test_if_range_mismatch_returns_whole_body(client: httpx.AsyncClient, if_range: str) -> None:
    """RFC 9110 §13.1.5: a false If-Range means the Range is ignored; a weak tag never matches."""
    location = await finished(client)
    if if_range == "weak":
        if_range = "W/" + (await client.get(location)).headers["etag"]
    response = await client.get(location, headers={"Range": "bytes=0-9", "If-Range": if_range})
    assert (response.status_code, response.content) == (200, DATA)


@pytest.mark.anyio
@pytest.mark.parametrize("form", ["exact", "weak", "listed", "star"])
async def test_if_none_match_returns_304_without_body(client: httpx.AsyncClient, form: str) -> None:
    """RFC 9110 §13.1.2 (weak comparison) and §15.4.5 (304 carries the ETag, no body)."""
    location = await finished(client)
    tag = (await client.get(location)).headers["etag"]
    value = {"exact": tag, "weak": f"W/{tag}", "listed": f'"other", {tag}', "star": "*"}[form]
    response = await client.get(location, headers={"If-None-Match": value})
    assert response.status_code == 304
    assert response.content == b""
    assert response.headers["etag"] == tag
    assert "content-disposition" not in response.headers


@pytest.mark.anyio
async def test_if_none_match_with_other_etag_returns_200(client: httpx.AsyncClient) -> None:
    location = await finished(client)
    response = await client.get(location, headers={"If-None-Match": '"other"'})
    assert (response.status_code, response.content) == (200, DATA)


# --- Content-Type and Content-Disposition -----------------------------------------------------------------------------


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("filetype", "content_type", "kind"),
    [(b"image/png", "image/png", "inline"), (b"video/mp4; codecs=avc1", "video/mp4", "inline"),
     (b"text/plain", "text/plain; charset=utf-8", "inline"), (b"image/svg+xml", OCTET, "attachment"),
     (b"text/html", OCTET, "attachment"), (b"nonsense", OCTET, "attachment")],
)  # fmt: skip
async def test_content_type_inline_only_for_allowlist(
    client: httpx.AsyncClient, filetype: bytes, content_type: str, kind: str
) -> None:
    location = await finished(client, headers=metadata(filetype=filetype))
    response = await client.get(location)
    assert response.headers["content-type"] == content_type
    assert response.headers["content-disposition"] == kind
    assert response.headers["x-content-type-options"] == "nosniff"


@pytest.mark.anyio
async def test_content_disposition_names_the_file(client: httpx.AsyncClient) -> None:
    location = await finished(client, headers=metadata(filename="résumé.pdf".encode(), filetype=b"application/pdf"))
    response = await client.get(location)
    assert response.headers["content-disposition"] == (
        "attachment; filename=\"r_sum_.pdf\"; filename*=UTF-8''r%C3%A9sum%C3%A9.pdf"
    )


@pytest.mark.anyio
async def test_content_disposition_falls_back_to_name(client: httpx.AsyncClient) -> None:
    location = await finished(client, headers=metadata(name=b"cat.gif", type=b"image/gif"))
    response = await client.get(location)
    assert response.headers["content-type"] == "image/gif"
    assert response.headers["content-disposition"] == "inline; filename=\"cat.gif\"; filename*=UTF-8''cat.gif"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "filename",
    [
        b"a\r\nSet-Cookie: s=1\r\n\r\n<script>",
        b'x"; filename="evil.html',
        b"..\\..\\x\r\n.txt",
        b'a\\"\r\nb',
        b"\x00\x85",
    ],
)
async def test_content_disposition_resists_header_injection(client: httpx.AsyncClient, filename: bytes) -> None:
    """PROTOCOL.md item 41: a filename never adds a header line, a header or a second filename parameter."""
    location = await finished(client, headers=metadata(filename=filename))
    response = await client.get(location)
    assert response.status_code == 200
    assert "set-cookie" not in response.headers
    value = response.headers["content-disposition"]
    assert value.isascii()
    assert value.isprintable()
    assert DISPOSITION.fullmatch(value), value  # one quoted filename, one filename*, nothing else
    assert response.content == DATA


# --- Errors -----------------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_unfinished_upload_returns_409(client: httpx.AsyncClient) -> None:
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "10"}, expect=201),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
        Exchange("GET", "{location}", expect=409, expect_code="ERR_UPLOAD_NOT_FINISHED"),
        Exchange("POST", "/files/", TUS | {"Upload-Defer-Length": "1"}, expect=201),
        Exchange("GET", "{location}", expect=409, expect_code="ERR_UPLOAD_NOT_FINISHED"),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("url", ["/files/0123456789abcdef0123456789abcdef", "/files/bad%20id", "/files/..%2Fx"])
async def test_unknown_upload_returns_404(client: httpx.AsyncClient, url: str) -> None:
    await run(client, [Exchange("GET", url, expect=404, expect_code="ERR_UPLOAD_NOT_FOUND")])


@pytest.mark.anyio
async def test_missing_data_returns_404_before_any_byte(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """The first piece is read before the response starts, so lost data is a clean error, not a cut body."""
    location = await finished(client)
    del storage.blobs[upload_id(location)]
    await run(client, [Exchange("GET", location, expect=404, expect_code="ERR_UPLOAD_NOT_FOUND")])


@pytest.mark.anyio
async def test_expired_finished_upload_returns_410(app: Starlette, client: httpx.AsyncClient) -> None:
    location = await finished(client)
    info = await app.state.tus.state.get(upload_id(location))
    await app.state.tus.state.save(info.model_copy(update={"expires_at": datetime.now(UTC) - timedelta(seconds=1)}))
    await run(client, [Exchange("GET", location, expect=410, expect_code="ERR_UPLOAD_EXPIRED")])


@pytest.mark.anyio
async def test_downloads_disabled_returns_405(make_app: AppFactory) -> None:
    app = make_app(downloads=False)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        location = await finished(client)
        response = await client.get(location)
        assert (response.status_code, error_code(response)) == (405, "ERR_METHOD_NOT_ALLOWED")
        assert "GET" not in response.headers["allow"].split(", ")
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "1024"})])


# --- Routing, CORS, empty uploads ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_head_stays_the_tus_head(client: httpx.AsyncClient) -> None:
    """Starlette adds HEAD to a GET route; HEAD must still answer with the upload's offset, not a download."""
    location = await finished(client)
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={
        "Upload-Offset": "1024", "Upload-Length": "1024", "Content-Disposition": None, "ETag": None})])  # fmt: skip


@pytest.mark.anyio
async def test_empty_upload_downloads_as_empty_body(client: httpx.AsyncClient) -> None:
    location = await finished(client, b"")
    for headers in ({}, {"Range": "bytes=0-0"}):
        response = await client.get(location, headers=headers)
        assert (response.status_code, response.content) == (200, b"")
        assert response.headers["content-length"] == "0"


@pytest.mark.anyio
async def test_cors_headers_on_download(client: httpx.AsyncClient) -> None:
    location = await finished(client)
    response = await client.get(location, headers={"Origin": "https://app.example"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    assert "upload-offset" in response.headers["access-control-expose-headers"].lower()


# --- Concurrency and streaming ----------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_concurrent_downloads_need_no_lock(make_app: AppFactory) -> None:
    """While another request holds the upload's lock, 20 parallel GETs are all served: none waits for it."""
    app = make_app(lock_timeout=0.5)
    results: list[tuple[int, bytes]] = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        location = await finished(client)

        async def get() -> None:
            response = await client.get(location, headers={"Range": "bytes=10-"})
            results.append((response.status_code, response.content))

        with anyio.fail_after(5):
            async with app.state.tus.locker.acquire(upload_id(location), timeout=1), anyio.create_task_group() as tasks:
                for _ in range(20):
                    tasks.start_soon(get)
    assert results == [(206, DATA[10:])] * 20


class CountingStorage(LocalStorage):
    """LocalStorage that records the size of every piece it reads."""

    pieces: list[int]

    async def read(self, ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        async for piece in super().read(ref, start, end):
            self.pieces.append(len(piece))
            yield piece


@pytest.mark.anyio
async def test_large_upload_is_streamed_in_bounded_pieces(tmp_path: Path) -> None:
    storage = CountingStorage(tmp_path / "uploads")
    storage.pieces = []
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=storage, state=MemoryStateStore())
    data = bytes(range(251)) * (7 * READ_CHUNK // 2 // 251)  # 3.5 pieces
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        location = await finished(client, data)
        response = await client.get(location)
        assert response.content == data
        assert len(storage.pieces) > 3
        assert max(storage.pieces) <= READ_CHUNK
        middle = await client.get(location, headers={"Range": f"bytes={READ_CHUNK - 10}-{2 * READ_CHUNK + 9}"})
        assert middle.content == data[READ_CHUNK - 10 : 2 * READ_CHUNK + 10]

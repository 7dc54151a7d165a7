"""Creation, Upload-Metadata and creation-with-upload: PROTOCOL.md items 31-45."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from storage_backends.memory import MemoryStorage
from tests.http.conftest import AppFactory
from tests.http.doubles import CompletionRecorder, UnreadBody, chunked
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run

OCTETS = {"Content-Type": "application/offset+octet-stream"}


@pytest.fixture
def storage() -> CompletionRecorder:
    """Overrides conftest's storage for this module: the app under test uses the recorder."""
    return CompletionRecorder()


@pytest.fixture
async def limited_client(make_app: AppFactory) -> AsyncIterator[httpx.AsyncClient]:
    """A client for a server with Tus-Max-Size 10."""
    transport = httpx.ASGITransport(app=make_app(max_size=10))
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


def pairs(value: str) -> set[str]:
    """Upload-Metadata as a set of `key value` pairs (order and spaces after commas do not matter)."""
    return {pair.strip() for pair in value.split(",")}


@pytest.mark.anyio
@pytest.mark.parametrize("path", ["/files/", "/files"])
async def test_post_returns_201_with_absolute_location(client: httpx.AsyncClient, path: str) -> None:
    """PROTOCOL.md items 31, 32: 201, Tus-Resumable, an absolute Location one segment below /files/."""
    response = await client.post(path, headers=TUS | {"Upload-Length": "100"})
    assert response.status_code == 201
    assert response.headers["Tus-Resumable"] == "1.0.0"
    prefix, _, upload_id = response.headers["Location"].rpartition("/")
    assert prefix == "http://testserver/files"
    assert upload_id


@pytest.mark.anyio
async def test_post_location_leads_to_new_upload(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 31: HEAD on the Location (resolved against the endpoint) shows offset 0."""
    response = await client.post("/files/", headers=TUS | {"Upload-Length": "100"})
    url = httpx.URL("http://testserver/files/").join(response.headers["Location"])
    await run(client, [Exchange("HEAD", str(url), TUS, expect=200,
                                expect_headers={"Upload-Offset": "0", "Upload-Length": "100"})])  # fmt: skip


@pytest.mark.anyio
async def test_post_stores_an_empty_blob(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 31: creation stores no bytes yet, under the id of the Location."""
    location = await create(client, 100)
    assert storage.blobs == {location.rsplit("/", 1)[1]: bytearray()}


@pytest.mark.anyio
async def test_post_without_length_returns_400(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 33: neither Upload-Length nor Upload-Defer-Length -> 400, nothing created."""
    await run(client, [Exchange("POST", "/files/", TUS, expect=400, expect_code="ERR_INVALID_UPLOAD_LENGTH")])
    assert storage.blobs == {}


@pytest.mark.anyio
@pytest.mark.parametrize("length", ["-1", "abc", "1.5", "", "+5", " 5", "1e3", "0x10", "99999999999999999999"])
async def test_post_invalid_upload_length_returns_400(
    client: httpx.AsyncClient, storage: MemoryStorage, length: str
) -> None:
    """PROTOCOL.md item 34: Upload-Length must be a non-negative integer; nothing is created."""
    headers = TUS | {"Upload-Length": length}
    await run(client, [Exchange("POST", "/files/", headers, expect=400, expect_code="ERR_INVALID_UPLOAD_LENGTH")])
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_over_max_size_returns_413(limited_client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 35: Upload-Length > Tus-Max-Size -> 413, nothing created."""
    headers = TUS | {"Upload-Length": "11"}
    await run(limited_client, [Exchange("POST", "/files/", headers, expect=413, expect_code="ERR_MAX_SIZE_EXCEEDED")])
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_at_max_size_returns_201(limited_client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 35: the limit itself is allowed."""
    await run(limited_client, [Exchange("POST", "/files/", TUS | {"Upload-Length": "10"}, expect=201)])


@pytest.mark.anyio
async def test_post_zero_length_is_complete_at_once(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 36: Upload-Length: 0 -> 201 and complete: HEAD 0/0, any byte is too many."""
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "0"}, expect=201, expect_headers={"Upload-Offset": "0"}),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "0", "Upload-Length": "0"}),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"x", expect=413),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_post_zero_length_completes_storage(client: httpx.AsyncClient, storage: CompletionRecorder) -> None:
    """PROTOCOL.md item 36: completion happens at creation, without any PATCH."""
    location = await create(client, 0)
    assert storage.completed == [location.rsplit("/", 1)[1]]


@pytest.mark.anyio
async def test_post_nonzero_length_is_not_complete(client: httpx.AsyncClient, storage: CompletionRecorder) -> None:
    """PROTOCOL.md items 31, 36: an upload still waiting for bytes is not completed."""
    await create(client, 10)
    assert storage.completed == []


@pytest.mark.anyio
async def test_two_posts_return_distinct_locations(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 37: identical POSTs create two uploads."""
    first, second = await create(client, 10), await create(client, 10)
    assert first != second
    assert len(storage.blobs) == 2


@pytest.mark.anyio
@pytest.mark.parametrize(
    "metadata",
    ["filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential", "a YQ==, b Yg==", "key", "k YWI=",
     "k YWJj", "a YQ==,b,c Yw==", "name+x=1 YQ=="],
    ids=["spec-example", "space-after-comma", "bare-key", "one-pad", "no-pad", "mixed", "punctuation-key"],
)  # fmt: skip
async def test_post_valid_metadata_is_echoed(client: httpx.AsyncClient, metadata: str) -> None:
    """PROTOCOL.md items 16, 39: valid Upload-Metadata -> 201, and HEAD returns the same pairs."""
    location = await create(client, 10, **{"Upload-Metadata": metadata})
    response = await client.head(location, headers=TUS)
    assert pairs(response.headers["Upload-Metadata"]) == pairs(metadata)


@pytest.mark.anyio
@pytest.mark.parametrize(
    "metadata",
    ["k !!!", "k YQ== x", ",a YQ==", "a YQ==,,b Yg==", "a YQ==,a Yg==", "a YQ==,", "k YQ", "k YQ=", "k _-8=",
     "k\tYQ=="],
    ids=["not-base64", "three-tokens", "empty-key", "empty-pair", "duplicate-key", "trailing-comma", "unpadded",
         "bad-padding", "url-safe-alphabet", "tab"],
)  # fmt: skip
async def test_post_invalid_metadata_returns_400(
    client: httpx.AsyncClient, storage: MemoryStorage, metadata: str
) -> None:
    """PROTOCOL.md item 40: malformed Upload-Metadata -> 400 ERR_INVALID_METADATA, nothing created."""
    headers = TUS | {"Upload-Length": "10", "Upload-Metadata": metadata}
    await run(client, [Exchange("POST", "/files/", headers, expect=400, expect_code="ERR_INVALID_METADATA")])
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_with_body_returns_201_with_offset(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 42: creation-with-upload stores the body; 201 carries Location and Upload-Offset."""
    responses = await run(client, [
        Exchange("POST", "/files/", TUS | OCTETS | {"Upload-Length": "11"}, b"hello", expect=201,
                 expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Length": "11"}),
    ])  # fmt: skip
    assert storage.blobs == {responses[0].headers["Location"].rsplit("/", 1)[1]: bytearray(b"hello")}


@pytest.mark.anyio
async def test_post_with_whole_body_completes_upload(client: httpx.AsyncClient, storage: CompletionRecorder) -> None:
    """PROTOCOL.md item 43: a body holding the whole upload -> 201, offset = length, nothing more accepted."""
    await run(client, [
        Exchange("POST", "/files/", TUS | OCTETS | {"Upload-Length": "5"}, b"hello", expect=201,
                 expect_headers={"Upload-Offset": "5"}),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Length": "5"}),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "5"}, b"!", expect=413),
    ])  # fmt: skip
    assert len(storage.completed) == 1


@pytest.mark.anyio
async def test_completed_upload_completes_storage_once(client: httpx.AsyncClient, storage: CompletionRecorder) -> None:
    """PROTOCOL.md items 25, 43: an empty PATCH on a finished upload does not complete it again."""
    await run(client, [
        Exchange("POST", "/files/", TUS | OCTETS | {"Upload-Length": "5"}, b"hello", expect=201),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "5"}, expect=204),
    ])  # fmt: skip
    assert len(storage.completed) == 1


@pytest.mark.anyio
async def test_post_with_chunked_body_returns_201(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 42: the body may come without Content-Length."""
    headers = TUS | OCTETS | {"Upload-Length": "11"}
    response = await client.post("/files/", headers=headers, content=chunked(b"hello", b" wor"))
    assert response.status_code == 201
    assert response.headers["Upload-Offset"] == "9"


@pytest.mark.anyio
@pytest.mark.parametrize("content_type", [None, "text/plain", "application/octet-stream"])
async def test_post_with_body_wrong_content_type_returns_415(
    client: httpx.AsyncClient, storage: MemoryStorage, content_type: str | None
) -> None:
    """PROTOCOL.md item 44: a non-empty body without application/offset+octet-stream -> 415, nothing created."""
    headers = TUS | {"Upload-Length": "11"} | ({"Content-Type": content_type} if content_type else {})
    await run(
        client, [Exchange("POST", "/files/", headers, b"hello", expect=415, expect_code="ERR_INVALID_CONTENT_TYPE")]
    )
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_empty_body_ignores_content_type(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 44: with an empty body the Content-Type does not matter (clients force defaults)."""
    headers = TUS | {"Upload-Length": "11", "Content-Type": "text/plain"}
    await run(client, [Exchange("POST", "/files/", headers, expect=201, expect_headers={"Upload-Offset": "0"})])


@pytest.mark.anyio
async def test_post_content_length_past_length_returns_413(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 45: Content-Length > Upload-Length -> 413 before creating anything."""
    headers = TUS | OCTETS | {"Upload-Length": "5"}
    exchange = Exchange("POST", "/files/", headers, b"hello world", expect=413, expect_code="ERR_UPLOAD_SIZE_EXCEEDED")
    await run(client, [exchange])
    assert storage.blobs == {}


@pytest.mark.anyio
async def test_post_chunked_body_past_length_stops_at_length(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md items 29, 45: a chunked body is cut at the length; 413 with the Location to resume from."""
    headers = TUS | OCTETS | {"Upload-Length": "5"}
    response = await client.post("/files/", headers=headers, content=chunked(b"hel", b"lo wor", b"ld"))
    assert response.status_code == 413
    assert response.text.startswith("ERR_UPLOAD_SIZE_EXCEEDED:")
    location = response.headers["Location"]
    await run(client, [Exchange("HEAD", location, TUS, expect=200,
                                expect_headers={"Upload-Offset": "5", "Upload-Length": "5"})])  # fmt: skip
    assert list(storage.blobs.values()) == [bytearray(b"hello")]


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("headers", "status"),
    [({"Upload-Length": "5"} | OCTETS, 413), ({"Upload-Length": "20", "Content-Type": "text/plain"}, 415),
     ({"Upload-Length": "abc"} | OCTETS, 400), ({"Upload-Length": "20", "Upload-Metadata": "k !"} | OCTETS, 400)],
    ids=["too-long", "wrong-type", "bad-length", "bad-metadata"],
)  # fmt: skip
async def test_post_rejected_without_reading_body(
    client: httpx.AsyncClient, headers: dict[str, str], status: int
) -> None:
    """PROTOCOL.md items 45, 46: creation errors are decided from the headers; the body is never asked for."""
    body = UnreadBody(b"hello world")
    headers = TUS | headers | {"Content-Length": "11", "Expect": "100-continue"}
    response = await client.post("/files/", headers=headers, content=body)
    assert response.status_code == status
    assert not body.read


@pytest.mark.anyio
async def test_post_huge_length_without_max_size_returns_201(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 35: with no Tus-Max-Size, a 1 PiB Upload-Length is accepted (suite EXT-CREATE-007)."""
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "1125899906842624"}, expect=201),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Length": "1125899906842624"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_post_overlong_metadata_returns_400(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """PROTOCOL.md item 40: Upload-Metadata beyond the server's 32 KiB limit -> 400 ERR_INVALID_METADATA."""
    headers = TUS | {"Upload-Length": "10", "Upload-Metadata": "k " + "YWJj" * 8192}
    await run(client, [Exchange("POST", "/files/", headers, expect=400, expect_code="ERR_INVALID_METADATA")])
    assert storage.blobs == {}

"""The checksum extension over HTTP: PROTOCOL.md items 60-65 (Upload-Checksum on PATCH and on a
creation-with-upload POST, 460 on mismatch, 400 for a bad header, nothing kept from a body that did not
arrive whole)."""

from __future__ import annotations

import base64
import os

import anyio
import httpx
import pytest
from starlette.applications import Starlette
from starlette.types import Scope

from storage_backends.memory import MemoryStorage
from tests.checksum_reference import REFERENCE
from tests.http.asgi import DISCONNECT, Captured, ScriptedReceive, asgi_call, chunk, http_scope, open_client, upload_id
from tests.http.conftest import AppFactory
from tests.http.doubles import chunked
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run

MiB = 1024 * 1024


def checksum(algorithm: str, data: bytes) -> str:
    """An Upload-Checksum value for `data`."""
    return f"{algorithm} {base64.b64encode(REFERENCE[algorithm](data)).decode()}"


def at(offset: int, upload_checksum: str | None = None) -> dict[str, str]:
    """PATCH headers for an append at `offset`, with Upload-Checksum if given."""
    headers = PATCH_HEADERS | {"Upload-Offset": str(offset)}
    return headers | ({"Upload-Checksum": upload_checksum} if upload_checksum is not None else {})


def head(location: str, offset: int) -> Exchange:
    """A HEAD that expects the upload at `offset`."""
    return Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": str(offset)})


def blob(storage: MemoryStorage, location: str) -> bytes:
    return bytes(storage.blobs[upload_id(location)])


@pytest.mark.anyio
async def test_options_lists_every_algorithm_with_sha1_first(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 60."""
    response = await client.options("/files/")
    algorithms = response.headers["Tus-Checksum-Algorithm"].split(",")
    assert algorithms[0] == "sha1"
    assert sorted(algorithms) == sorted(REFERENCE)


@pytest.mark.anyio
async def test_options_advertises_checksum_but_not_checksum_trailer(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 60 and 67: ASGI exposes no request trailers."""
    extensions = (await client.options("/files/")).headers["Tus-Extension"].split(",")
    assert "checksum" in extensions
    assert "checksum-trailer" not in extensions


@pytest.mark.anyio
async def test_patch_with_item_61_sha1_vector_returns_204(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 61, literally."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0, "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="), b"hello world", expect=204,
                 expect_headers={"Upload-Offset": "11"}),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("algorithm", list(REFERENCE))
async def test_patch_with_correct_checksum_returns_204(
    client: httpx.AsyncClient, storage: MemoryStorage, algorithm: str
) -> None:
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0, checksum(algorithm, b"hello")), b"hello", expect=204,
                 expect_headers={"Upload-Offset": "5"}),
        Exchange("PATCH", location, at(5, checksum(algorithm, b" world")), b" world", expect=204,
                 expect_headers={"Upload-Offset": "11"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"hello world"


@pytest.mark.anyio
@pytest.mark.parametrize("algorithm", list(REFERENCE))
async def test_patch_with_wrong_digest_returns_460_and_keeps_offset(client: httpx.AsyncClient, algorithm: str) -> None:
    """PROTOCOL.md item 62, for every algorithm: the digest of other bytes."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0, checksum(algorithm, b"hellp")), b"hello", expect=460,
                 expect_code="ERR_CHECKSUM_MISMATCH"),
        head(location, 0),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_patch_with_wrong_sha1_returns_460_and_keeps_offset(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 62, with the spec's example digest."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0, "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="), b"hello world", expect=460,
                 expect_code="ERR_CHECKSUM_MISMATCH"),
        head(location, 0),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_same_chunk_resent_with_right_digest_after_460_stores_exact_bytes(
    client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md item 62: the discarded chunk can be sent again at the same offset."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0, checksum("sha1", b"hello")), b"hello", expect=204),
        Exchange("PATCH", location, at(5, checksum("sha1", b" world")), b" wor1d", expect=460),
        head(location, 5),
        Exchange("PATCH", location, at(5, checksum("sha1", b" world")), b" world", expect=204,
                 expect_headers={"Upload-Offset": "11"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"hello world"


@pytest.mark.anyio
async def test_shorter_chunk_after_460_replaces_discarded_bytes(
    client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """The discarded bytes never reappear, even when the next chunk is shorter than they were."""
    location = await create(client, None)
    await run(client, [
        Exchange("PATCH", location, at(0, checksum("sha1", b"x")), b"garbage!", expect=460),
        Exchange("PATCH", location, at(0, checksum("sha1", b"ok")), b"ok", expect=204,
                 expect_headers={"Upload-Offset": "2"}),
    ])  # fmt: skip
    assert blob(storage, location) == b"ok"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("digest_of", "status"), [pytest.param(b"", 204, id="right"), pytest.param(b"x", 460, id="wrong")]
)
async def test_empty_patch_is_verified_too(client: httpx.AsyncClient, digest_of: bytes, status: int) -> None:
    """An empty body has a digest as well; only the right one is accepted."""
    location = await create(client, 5)
    await run(client, [Exchange("PATCH", location, at(0, checksum("sha1", digest_of)), b"", expect=status),
                       head(location, 0)])  # fmt: skip


BAD_HEADERS = [
    pytest.param("md4 qvTGHdzF6KLavt4PO0gs2a6pQ00=", "ERR_CHECKSUM_ALGORITHM_UNSUPPORTED", id="md4"),
    pytest.param("SHA1 qvTGHdzF6KLavt4PO0gs2a6pQ00=", "ERR_CHECKSUM_ALGORITHM_UNSUPPORTED", id="uppercase-sha1"),
    pytest.param("sha1", "ERR_INVALID_CHECKSUM", id="no-digest"),
    pytest.param("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ0!=", "ERR_INVALID_CHECKSUM", id="bad-base64"),
    pytest.param("sha1 ", "ERR_INVALID_CHECKSUM", id="empty-digest"),
]
# A non-ASCII character in the digest (sent as latin-1 bytes, which httpx refuses) was a 500 before issue 19.
NON_ASCII_HEADERS = [
    pytest.param("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00\xe9", "ERR_INVALID_CHECKSUM", id="non-ascii-digest"),
    pytest.param("sha1 \xff", "ERR_INVALID_CHECKSUM", id="non-ascii-byte-only"),
    pytest.param("sh\xe41 qvTGHdzF6KLavt4PO0gs2a6pQ00=", "ERR_CHECKSUM_ALGORITHM_UNSUPPORTED", id="non-ascii-name"),
]
# PROTOCOL.md item 63 (corrected): a well-formed digest of the wrong length does not match: 460, not 400.
WRONG_LENGTH_DIGESTS = [
    pytest.param("sha1 XUFAKrxLKna5cZ2REBfFkg==", id="md5-length-for-sha1"),
    pytest.param("sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA", id="item-62-example-21-bytes"),
    pytest.param("crc32 AAAAAAAA", id="crc32-six-bytes"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("value", "code"), BAD_HEADERS)
async def test_patch_with_bad_checksum_header_returns_400_and_stores_nothing(
    client: httpx.AsyncClient, storage: MemoryStorage, value: str, code: str
) -> None:
    """PROTOCOL.md item 63: the header is refused before anything is stored."""
    location = await create(client, 11)
    await run(client, [Exchange("PATCH", location, at(0, value), b"hello", expect=400, expect_code=code),
                       head(location, 0)])  # fmt: skip
    assert blob(storage, location) == b""


@pytest.mark.anyio
async def test_creation_with_upload_with_good_checksum_returns_201_with_offset(
    client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md item 65."""
    headers = PATCH_HEADERS | {"Upload-Length": "11", "Upload-Checksum": checksum("sha256", b"hello")}
    [created, _] = await run(client, [
        Exchange("POST", "/files/", headers, b"hello", expect=201, expect_headers={"Upload-Offset": "5"}),
        head("{location}", 5),
    ])  # fmt: skip
    assert blob(storage, created.headers["Location"]) == b"hello"


@pytest.mark.anyio
async def test_creation_with_upload_with_bad_checksum_returns_460_with_location(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 65: the upload exists at offset 0, and its Location lets the client resume it."""
    headers = TUS | {"Content-Type": "application/offset+octet-stream", "Upload-Length": "11"}
    response = await client.post(
        "/files/", headers=headers | {"Upload-Checksum": checksum("sha1", b"x")}, content=b"hi"
    )
    assert (response.status_code, error_code(response)) == (460, "ERR_CHECKSUM_MISMATCH")
    await run(client, [head(response.headers["Location"], 0),
                       Exchange("PATCH", response.headers["Location"], at(0, checksum("sha1", b"hi")), b"hi",
                                expect=204, expect_headers={"Upload-Offset": "2"})])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(("value", "code"), BAD_HEADERS)
async def test_creation_with_upload_with_bad_checksum_header_returns_400_and_creates_nothing(
    client: httpx.AsyncClient, storage: MemoryStorage, value: str, code: str
) -> None:
    """PROTOCOL.md items 63 and 65."""
    headers = TUS | {"Content-Type": "application/offset+octet-stream", "Upload-Length": "11", "Upload-Checksum": value}
    response = await client.post("/files/", headers=headers, content=b"hello")
    assert (response.status_code, error_code(response)) == (400, code)
    assert "Location" not in response.headers
    assert storage.blobs == {}


@pytest.mark.anyio
@pytest.mark.parametrize("value", WRONG_LENGTH_DIGESTS)
async def test_patch_with_digest_of_wrong_length_returns_460_and_keeps_offset(
    client: httpx.AsyncClient, value: str
) -> None:
    """PROTOCOL.md item 63 (suite EXT-CSUM-004/005/008, SCN-ERROR-002); then the right digest still works."""
    location = await create(client, 11)
    await run(client, [
        Exchange("PATCH", location, at(0, value), b"hello world", expect=460, expect_code="ERR_CHECKSUM_MISMATCH"),
        head(location, 0),
        Exchange("PATCH", location, at(0, checksum("sha1", b"hello")), b"hello", expect=204,
                 expect_headers={"Upload-Offset": "5"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_creation_with_upload_with_digest_of_wrong_length_returns_460_with_location(
    client: httpx.AsyncClient,
) -> None:
    """PROTOCOL.md items 63 and 65: as any mismatch on a POST, the upload exists at offset 0."""
    headers = PATCH_HEADERS | {"Upload-Length": "11", "Upload-Checksum": "sha1 XUFAKrxLKna5cZ2REBfFkg=="}
    response = await client.post("/files/", headers=headers, content=b"hi")
    assert (response.status_code, error_code(response)) == (460, "ERR_CHECKSUM_MISMATCH")
    await run(client, [head(response.headers["Location"], 0)])


@pytest.mark.anyio
@pytest.mark.parametrize(("value", "code"), NON_ASCII_HEADERS)
async def test_patch_with_non_ascii_checksum_returns_400_and_stores_nothing(
    app: Starlette, client: httpx.AsyncClient, storage: MemoryStorage, value: str, code: str
) -> None:
    """Issue 19, defect 5: a non-ASCII byte in Upload-Checksum is a 400 in the table's form, not a 500."""
    location = await create(client, 11)
    response = await asgi_call(app, raw_patch(location, value, 5), ScriptedReceive([chunk(b"hello", more=False)]))
    assert (response.status, response.code) == (400, code)
    await run(client, [head(location, 0)])
    assert blob(storage, location) == b""


@pytest.mark.anyio
@pytest.mark.parametrize(("value", "code"), NON_ASCII_HEADERS)
async def test_creation_with_upload_with_non_ascii_checksum_returns_400_and_creates_nothing(
    app: Starlette, storage: MemoryStorage, value: str, code: str
) -> None:
    """Issue 19, defect 5, on a creation-with-upload POST (PROTOCOL.md item 65)."""
    headers = PATCH_HEADERS | {"Upload-Length": "11", "Content-Length": "5", "Upload-Checksum": value}
    scope = http_scope("POST", "/files/", headers)
    response = await asgi_call(app, scope, ScriptedReceive([chunk(b"hello", more=False)]))
    assert (response.status, response.code) == (400, code)
    assert storage.blobs == {}


def raw_patch(location: str, upload_checksum: str | None, content_length: int) -> Scope:
    """A PATCH scope at offset 0 for `asgi_call`, with Upload-Checksum if given."""
    headers = at(0, upload_checksum) | {"Content-Length": str(content_length)}
    return http_scope("PATCH", httpx.URL(location).path, headers)


@pytest.mark.anyio
async def test_disconnect_mid_body_with_checksum_stores_nothing(
    app: Starlette, client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """PROTOCOL.md item 64 (overrides item 26): a body that did not arrive whole cannot be verified."""
    location = await create(client, 10)
    scope = raw_patch(location, checksum("sha1", b"x"), 10)
    await asgi_call(app, scope, ScriptedReceive([chunk(b"hel"), chunk(b"lo"), DISCONNECT]))
    await run(client, [head(location, 0),
                       Exchange("PATCH", location, at(0), b"world", expect=204)])  # fmt: skip
    assert blob(storage, location) == b"world"


@pytest.mark.anyio
async def test_disconnect_mid_body_without_checksum_keeps_bytes(app: Starlette, client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 26, the contrast to item 64."""
    location = await create(client, 10)
    scope = raw_patch(location, None, 10)
    await asgi_call(app, scope, ScriptedReceive([chunk(b"hel"), chunk(b"lo"), DISCONNECT]))
    await run(client, [head(location, 5)])


@pytest.mark.anyio
async def test_disconnect_during_creation_with_upload_with_checksum_stores_nothing(
    app: Starlette, client: httpx.AsyncClient
) -> None:
    """PROTOCOL.md items 64 and 65: the upload exists, at offset 0."""
    headers = PATCH_HEADERS | {"Upload-Length": "10", "Content-Length": "10", "Upload-Checksum": checksum("md5", b"x")}
    receive = ScriptedReceive([chunk(b"hello"), DISCONNECT])
    created = await asgi_call(app, http_scope("POST", "/files/", headers), receive)
    assert "location" in created.headers
    await run(client, [head(created.headers["location"], 0)])


@pytest.mark.anyio
async def test_stalled_checksummed_body_times_out_and_stores_nothing(make_app: AppFactory) -> None:
    """PROTOCOL.md items 27 and 64: a read timeout leaves a body that cannot be verified."""
    app = make_app(read_timeout=0.05)
    async with open_client(app) as client:
        location = await create(client, 10)
        scope = raw_patch(location, checksum("sha1", b"x"), 10)
        with anyio.fail_after(5):  # far above read_timeout: fails instead of hanging if the timeout never fires
            stalled = await asgi_call(app, scope, ScriptedReceive([chunk(b"abc")]))
        await run(client, [head(location, 0)])
    assert (stalled.status, stalled.code) == (500, "ERR_READ_TIMEOUT")


@pytest.mark.anyio
async def test_head_interrupting_checksummed_patch_sees_old_offset(app: Starlette, client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 28 and 64: the interrupted body is incomplete, so none of it is recorded."""
    location = await create(client, 10)
    scope = raw_patch(location, checksum("sha1", b"x"), 10)
    stalled, receive = Captured(), ScriptedReceive([chunk(b"hello")])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(asgi_call, app, scope, receive, stalled)
            await receive.exhausted.wait()
            await run(client, [head(location, 0)])
    assert (stalled.status, stalled.code) == (400, "ERR_UPLOAD_INTERRUPTED")


@pytest.mark.anyio
async def test_overlong_chunked_body_with_checksum_returns_413_and_stores_nothing(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md items 23 and 64: the server stops reading at the length, so the body is never whole."""
    location = await create(client, 5)
    body = chunked(b"hello", b" world")
    response = await client.patch(location, headers=at(0, checksum("sha1", b"hello world")), content=body)
    assert (response.status_code, error_code(response)) == (413, "ERR_UPLOAD_SIZE_EXCEEDED")
    await run(client, [head(location, 0)])


@pytest.mark.anyio
@pytest.mark.parametrize("algorithm", ["sha256", "xxh128"])
async def test_multi_mib_body_in_chunks_with_checksum_stores_exact_bytes(
    client: httpx.AsyncClient, storage: MemoryStorage, algorithm: str
) -> None:
    """Chunks of 64 KiB and more are hashed on a worker thread for sha256, small ones inline; order is kept."""
    data = os.urandom(5 * MiB + 1000)
    pieces = [data[start : start + MiB] for start in range(0, 5 * MiB, MiB)] + [data[5 * MiB :]]
    location = await create(client, len(data))
    response = await client.patch(location, headers=at(0, checksum(algorithm, data)), content=chunked(*pieces))
    assert (response.status_code, response.headers["Upload-Offset"]) == (204, str(len(data)))
    assert blob(storage, location) == data


@pytest.mark.anyio
async def test_multi_mib_body_with_one_flipped_byte_returns_460(client: httpx.AsyncClient) -> None:
    data = os.urandom(3 * MiB)
    corrupted = data[: 2 * MiB] + bytes([data[2 * MiB] ^ 1]) + data[2 * MiB + 1 :]
    location = await create(client, len(data))
    pieces = [corrupted[start : start + 256 * 1024] for start in range(0, len(data), 256 * 1024)]
    response = await client.patch(location, headers=at(0, checksum("sha256", data)), content=chunked(*pieces))
    assert (response.status_code, error_code(response)) == (460, "ERR_CHECKSUM_MISMATCH")
    await run(client, [head(location, 0)])

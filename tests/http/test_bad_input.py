"""Hostile or malformed requests: always a 4xx with an error code, never a 500, never a file outside the
data directory. Runs on the real defaults (LocalStorage + SQLiteStateStore under tmp_path/data)."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator, Mapping
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.base import Appended
from storage_backends.errors import StorageError, StorageUnavailableError
from storage_backends.memory import MemoryStorage
from tests.http.asgi import Captured, ScriptedReceive, asgi_call, chunk, http_scope, open_client, upload_id
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run
from tusserver import MemoryStateStore, Settings, create_app

VALID_ID = re.compile(r"[0-9a-f]{32}")


@pytest.fixture
async def app(tmp_path: Path) -> AsyncIterator[Starlette]:
    """Overrides conftest's `app` (so `client` uses it too): the defaults, files and SQLite on disk."""
    app = create_app(Settings(data_dir=tmp_path / "data"))
    yield app
    await app.state.tus.aclose()


def assert_disk_clean(tmp_path: Path) -> None:
    """Nothing outside tmp_path/data, and only files named by valid upload ids in the uploads directory."""
    outside = [path for path in tmp_path.rglob("*") if not path.is_relative_to(tmp_path / "data")]
    assert outside == []
    uploads = tmp_path / "data" / "uploads"
    assert all(VALID_ID.fullmatch(path.name) and path.is_file() for path in uploads.iterdir())


async def send_raw(
    app: Starlette, method: str, raw_path: str, headers: Mapping[str, str], body: bytes = b""
) -> Captured:
    """A request exactly as given: raw path bytes and latin-1 header values, which httpx would refuse or normalise."""
    return await asgi_call(app, http_scope(method, raw_path, headers), ScriptedReceive([chunk(body, more=False)]))


BAD_IDS = [
    "..", "../../etc/passwd", "..%2F..%2Fx", "%2e%2e", "%2e%2e%2f%2e%2e%2fstate.sqlite3", "..%5C..%5Cx", "a%00b",
    "a\x00b", "x" * 300, "a.b", "a%20b", "%C3%BCn%C3%AF", "state.sqlite3", "%ff%fe", "a%0D%0AX-Injected:%201",
]  # fmt: skip
BAD_ID_REQUESTS = {
    "HEAD": TUS,
    "PATCH": PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": "4"},
    "DELETE": TUS,
}


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE"])
@pytest.mark.parametrize("raw_id", BAD_IDS)
async def test_malformed_upload_id_is_not_found(app: Starlette, tmp_path: Path, method: str, raw_id: str) -> None:
    response = await send_raw(app, method, "/files/" + raw_id, BAD_ID_REQUESTS[method], b"evil")
    assert response.status == 404
    if method != "HEAD":
        assert response.code == "ERR_UPLOAD_NOT_FOUND"
    assert_disk_clean(tmp_path)


@pytest.mark.anyio
@pytest.mark.parametrize("method", ["HEAD", "PATCH", "DELETE"])
async def test_well_formed_unknown_id_is_not_found(client: httpx.AsyncClient, tmp_path: Path, method: str) -> None:
    code = None if method == "HEAD" else "ERR_UPLOAD_NOT_FOUND"
    request = Exchange(method, "/files/" + "0" * 32, BAD_ID_REQUESTS[method], b"evil", expect=404, expect_code=code)
    await run(client, [request])
    assert_disk_clean(tmp_path)


BAD_INTEGERS = ["-1", "abc", "1.5", "", "+5", " 5", "5 ", "1e3", "0x10", "\xb2", "9223372036854775808", "9" * 30]


@pytest.mark.anyio
@pytest.mark.parametrize("value", BAD_INTEGERS)
async def test_malformed_upload_length_is_400(app: Starlette, tmp_path: Path, value: str) -> None:
    response = await send_raw(app, "POST", "/files/", TUS | {"Upload-Length": value})
    assert (response.status, response.code) == (400, "ERR_INVALID_UPLOAD_LENGTH")
    assert list((tmp_path / "data" / "uploads").iterdir()) == []


@pytest.mark.anyio
async def test_upload_length_of_int64_max_is_accepted(client: httpx.AsyncClient) -> None:
    await run(client, [Exchange("POST", "/files/", TUS | {"Upload-Length": str(2**63 - 1)}, expect=201)])


@pytest.mark.anyio
@pytest.mark.parametrize("value", BAD_INTEGERS)
async def test_malformed_upload_offset_is_400(app: Starlette, client: httpx.AsyncClient, value: str) -> None:
    location = await create(client, 10)
    response = await send_raw(
        app, "PATCH", httpx.URL(location).path, PATCH_HEADERS | {"Upload-Offset": value}, b"hello"
    )
    assert (response.status, response.code) == (400, "ERR_INVALID_OFFSET")
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["0", "2", "yes", ""])
async def test_malformed_upload_defer_length_is_400(client: httpx.AsyncClient, value: str) -> None:
    headers = TUS | {"Upload-Defer-Length": value}
    await run(client, [Exchange("POST", "/files/", headers, expect=400, expect_code="ERR_INVALID_UPLOAD_LENGTH")])


BAD_METADATA = [
    "k !!!", "k YQ== x", "a YQ==,,b Yg==", "k YQ==,k Yg==", "k YQ==,", "k YQ", "k\tYQ==", "k YQ==\x80", ",k YQ==",
    "k\x80 YQ==", "k YQ==\r\nX-Injected: 1",
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("metadata", BAD_METADATA)
async def test_malformed_metadata_is_400(app: Starlette, tmp_path: Path, metadata: str) -> None:
    response = await send_raw(app, "POST", "/files/", TUS | {"Upload-Length": "10", "Upload-Metadata": metadata})
    assert (response.status, response.code) == (400, "ERR_INVALID_METADATA")
    assert list((tmp_path / "data" / "uploads").iterdir()) == []


@pytest.mark.anyio
async def test_metadata_over_32_kib_is_400(client: httpx.AsyncClient) -> None:
    headers = TUS | {"Upload-Length": "10", "Upload-Metadata": "k " + "A" * 32 * 1024}
    await run(client, [Exchange("POST", "/files/", headers, expect=400, expect_code="ERR_INVALID_METADATA")])


@pytest.mark.anyio
async def test_metadata_just_under_32_kib_is_accepted(client: httpx.AsyncClient) -> None:
    metadata = "k " + "A" * (32 * 1024 - 4)
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "10", "Upload-Metadata": metadata}, expect=201),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Metadata": metadata}),
    ])  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize("filename", ["../../x", "/etc/passwd", "..\\..\\x", "a\x00b", "x\r\nLocation: http://evil"])
async def test_hostile_filename_is_only_metadata(client: httpx.AsyncClient, tmp_path: Path, filename: str) -> None:
    metadata = "filename " + base64.b64encode(filename.encode()).decode()
    location = await create(client, 5, **{"Upload-Metadata": metadata})
    await run(client, [
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Metadata": metadata}),
    ])  # fmt: skip
    assert [path.name for path in (tmp_path / "data" / "uploads").iterdir()] == [upload_id(location)]
    assert_disk_clean(tmp_path)


class FailingStorage(MemoryStorage):
    """Memory storage whose `append` raises `error` (fault injection)."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    async def append(self, *args: object, **kwargs: object) -> Appended:
        raise self.error


async def patch_failing(tmp_path: Path, error: Exception) -> httpx.Response:
    app = create_app(Settings(data_dir=tmp_path), storage=FailingStorage(error), state=MemoryStateStore())
    async with open_client(app) as client:
        location = await create(client, 5)
        response = await client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=b"hello")
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])
    return response


@pytest.mark.anyio
async def test_unexpected_storage_exception_is_clean_500(tmp_path: Path) -> None:
    response = await patch_failing(tmp_path, RuntimeError("secret detail at /srv/internal"))
    assert (response.status_code, error_code(response)) == (500, "ERR_INTERNAL_SERVER_ERROR")
    assert "Traceback" not in response.text
    assert "secret" not in response.text


@pytest.mark.anyio
async def test_storage_failure_is_500_with_code(tmp_path: Path) -> None:
    response = await patch_failing(tmp_path, StorageError("disk full"))
    assert (response.status_code, error_code(response)) == (500, "ERR_STORAGE")


@pytest.mark.anyio
async def test_storage_unavailable_is_503_with_retry_after(tmp_path: Path) -> None:
    response = await patch_failing(tmp_path, StorageUnavailableError("throttled"))
    assert (response.status_code, error_code(response)) == (503, "ERR_SERVICE_UNAVAILABLE")
    assert int(response.headers["retry-after"]) >= 0


@pytest.mark.anyio
async def test_repeated_upload_offset_is_400_and_nothing_is_written(client: httpx.AsyncClient) -> None:
    """Two Upload-Offset lines combine into "0, 5" (RFC 9110 §5.3), which is no offset: the server never picks
    one copy while a proxy in front of it may have believed the other."""
    location = await create(client, 10)
    headers = [*PATCH_HEADERS.items(), ("Upload-Offset", "0"), ("Upload-Offset", "5")]
    response = await client.patch(location, headers=headers, content=b"hello")
    assert (response.status_code, error_code(response)) == (400, "ERR_INVALID_OFFSET")
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])


@pytest.mark.anyio
async def test_repeated_upload_length_is_400(client: httpx.AsyncClient) -> None:
    headers = [*TUS.items(), ("Upload-Length", "5"), ("Upload-Length", "5")]
    response = await client.post("/files/", headers=headers)
    assert (response.status_code, error_code(response)) == (400, "ERR_INVALID_UPLOAD_LENGTH")


@pytest.mark.anyio
async def test_repeated_upload_metadata_lines_keep_every_pair(client: httpx.AsyncClient) -> None:
    """Upload-Metadata is a comma-separated list, so its lines combine like any list field's."""
    name, kind = base64.b64encode(b"a.txt").decode(), base64.b64encode(b"text/plain").decode()
    headers = [
        *TUS.items(),
        ("Upload-Length", "5"),
        ("Upload-Metadata", f"filename {name}"),
        ("Upload-Metadata", f"filetype {kind}"),
    ]
    location = (await client.post("/files/", headers=headers)).headers["location"]
    head = await client.head(location, headers=TUS)
    assert sorted(head.headers["upload-metadata"].split(",")) == [f"filename {name}", f"filetype {kind}"]


# Issue 19, defect 8: header values are trimmed of spaces and tabs only (RFC 9110 §5.6.3 OWS). A no-break space
# (latin-1 0xA0) or a NEL (0x85) is part of the value, so each of these is refused where str.strip() accepted it.
UNICODE_WHITESPACE = [
    pytest.param("POST", {"Upload-Defer-Length": "1\xa0"}, 400, "ERR_INVALID_UPLOAD_LENGTH", id="defer-length-nbsp"),
    pytest.param("POST", {"Upload-Defer-Length": "\x851"}, 400, "ERR_INVALID_UPLOAD_LENGTH", id="defer-length-nel"),
    pytest.param("POST", {"Upload-Length": "5", "Tus-Resumable": "1.0.0\xa0"}, 412, "ERR_UNSUPPORTED_VERSION",
                 id="tus-resumable-nbsp"),
    pytest.param("POST", {"Upload-Length": "5", "Upload-Metadata": "\xa0"}, 400, "ERR_INVALID_METADATA",
                 id="metadata-nbsp"),
    pytest.param("POST", {"Upload-Concat": "final;/files/a\xa0/files/b"}, 400, "ERR_INVALID_CONCAT",
                 id="concat-nbsp-separator"),
    pytest.param("POST", {"Upload-Length": "5", "Upload-Concat": "partial\xa0"}, 400, "ERR_INVALID_CONCAT",
                 id="concat-partial-nbsp"),
]  # fmt: skip


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "headers", "status", "code"), UNICODE_WHITESPACE)
async def test_unicode_whitespace_is_not_trimmed(
    app: Starlette, tmp_path: Path, method: str, headers: dict[str, str], status: int, code: str
) -> None:
    response = await send_raw(app, method, "/files/", TUS | headers)
    assert (response.status, response.code) == (status, code)
    assert list((tmp_path / "data" / "uploads").iterdir()) == []


@pytest.mark.anyio
async def test_spaces_and_tabs_around_defer_length_are_trimmed(app: Starlette) -> None:
    """The contrast: OWS is not part of the value (RFC 9110 §5.5)."""
    response = await send_raw(app, "POST", "/files/", TUS | {"Upload-Defer-Length": " 1\t"})
    assert response.status == 201


@pytest.mark.anyio
async def test_content_type_with_nbsp_is_415(app: Starlette, client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    headers = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream\xa0"}
    response = await send_raw(app, "PATCH", httpx.URL(location).path, headers, b"hello")
    assert (response.status, response.code) == (415, "ERR_INVALID_CONTENT_TYPE")
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])

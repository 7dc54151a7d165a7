"""concatenation and concatenation-unfinished: PROTOCOL.md items 74-87."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from storage_backends.memory import MemoryStorage
from tests.http.asgi import open_client, upload_id
from tests.http.asgi import server_lifetime as server
from tests.http.conftest import AppFactory
from tests.http.doubles import NoConcatStorage
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.protocol.concat import final_upload_id
from tusserver.protocol.errors import UploadNotFoundError

PARTIAL = {"Upload-Concat": "partial"}


async def patch(client: httpx.AsyncClient, location: str, data: bytes, offset: int = 0, **headers: str) -> None:
    await run(client, [Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": str(offset)} | headers, data,
                                expect=204)])  # fmt: skip


async def partial(client: httpx.AsyncClient, data: bytes, length: int | None = None) -> str:
    """A partial upload of `length` (default: len(data)) bytes holding `data`; finished when they match."""
    location = await create(client, len(data) if length is None else length, **PARTIAL)
    if data:
        await patch(client, location, data)
    return location


def final_headers(parts: Sequence[str], **headers: str) -> dict[str, str]:
    return TUS | {"Upload-Concat": "final;" + " ".join(parts)} | headers


async def final(client: httpx.AsyncClient, parts: Sequence[str], **headers: str) -> str:
    """POST a final upload of `parts` and return its Location."""
    response = await client.post("/files/", headers=final_headers(parts, **headers))
    assert response.status_code == 201, response.text
    return response.headers["location"]


async def download(client: httpx.AsyncClient, location: str) -> bytes:
    response = await client.get(location, headers=TUS)
    assert response.status_code == 200, response.text
    return response.content


async def hello_world(client: httpx.AsyncClient) -> list[str]:
    """PROTOCOL.md item 75: partials holding "hello" and " world"."""
    return [await partial(client, b"hello"), await partial(client, b" world")]


# --- discovery (items 8 and 83) ---------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_options_advertises_concatenation_and_unfinished(client: httpx.AsyncClient) -> None:
    response, *_ = await run(client, [Exchange("OPTIONS", "/files/", expect=200)])
    assert {"concatenation", "concatenation-unfinished"} <= set(response.headers["tus-extension"].split(","))


@asynccontextmanager
async def no_concat_client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=NoConcatStorage(), state=MemoryStateStore())
    async with open_client(app) as client:
        yield client


@pytest.mark.anyio
async def test_options_without_concatenating_storage_omits_both(tmp_path: Path) -> None:
    async with no_concat_client(tmp_path) as client:
        response, *_ = await run(client, [Exchange("OPTIONS", "/files/", expect=200)])
    extensions = set(response.headers["tus-extension"].split(","))
    assert "termination" in extensions
    assert not {"concatenation", "concatenation-unfinished"} & extensions


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers",
    [PARTIAL | {"Upload-Length": "5"}, {"Upload-Concat": "final;/files/abc"}],
    ids=["partial", "final"],
)
async def test_upload_concat_without_extension_returns_400(tmp_path: Path, headers: dict[str, str]) -> None:
    """Item 83: Upload-Concat sent when concatenation is not supported."""
    async with no_concat_client(tmp_path) as client:
        await run(client, [Exchange("POST", "/files/", TUS | headers, expect=400,
                                    expect_code="ERR_EXTENSION_UNSUPPORTED")])  # fmt: skip


# --- partial uploads (items 74 and 87) --------------------------------------------------------------------------


@pytest.mark.anyio
async def test_head_partial_shows_upload_concat_partial(client: httpx.AsyncClient) -> None:
    """Item 74."""
    await run(client, [
        Exchange("POST", "/files/", TUS | PARTIAL | {"Upload-Length": "5"}, expect=201),
        Exchange("HEAD", "{location}", TUS, expect=200,
                 expect_headers={"Upload-Concat": "partial", "Upload-Offset": "0", "Upload-Length": "5"}),
        Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hel", expect=204),
        Exchange("HEAD", "{location}", TUS, expect=200,
                 expect_headers={"Upload-Concat": "partial", "Upload-Offset": "3"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_plain_upload_has_no_upload_concat(client: httpx.AsyncClient) -> None:
    await run(client, [
        Exchange("POST", "/files/", TUS | {"Upload-Length": "5"}, expect=201),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Concat": None}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_partial_created_with_upload_keeps_its_body(client: httpx.AsyncClient) -> None:
    """Item 87 (tusdotnet#102): the body of a creation-with-upload partial is stored and joined."""
    headers = TUS | PARTIAL | {"Upload-Length": "5", "Content-Type": "application/offset+octet-stream"}
    response = await client.post("/files/", headers=headers, content=b"hello")
    assert (response.status_code, response.headers["upload-offset"]) == (201, "5")
    location = await final(client, [response.headers["location"], await partial(client, b"!")])
    assert await download(client, location) == b"hello!"


# --- final uploads (items 75-77, 80-84) -------------------------------------------------------------------------


@pytest.mark.anyio
async def test_final_of_finished_partials_is_complete(client: httpx.AsyncClient) -> None:
    """Item 75: 201; HEAD gives Upload-Length = Upload-Offset = the sum and echoes Upload-Concat."""
    parts = await hello_world(client)
    await run(client, [
        Exchange("POST", "/files/", final_headers(parts), expect=201),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={
            "Upload-Offset": "11", "Upload-Length": "11", "Upload-Concat": "final;" + " ".join(parts)}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_get_final_returns_joined_bytes(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """Item 75: GET gives `hello world`; the storage holds it under the final's id."""
    location = await final(client, await hello_world(client))
    assert await download(client, location) == b"hello world"
    assert storage.blobs[upload_id(location)] == b"hello world"


URL_FORMS: dict[str, Callable[[list[str]], str]] = {
    "absolute": lambda ids: " ".join(f"http://testserver/files/{id_}" for id_ in ids),
    "relative-path": lambda ids: " ".join(f"/files/{id_}" for id_ in ids),
    "bare-id": " ".join,
    "mixed": lambda ids: f"http://testserver/files/{ids[0]}  {ids[1]}",
}


@pytest.mark.anyio
@pytest.mark.parametrize("form", URL_FORMS.values(), ids=URL_FORMS.keys())
async def test_final_accepts_url_form(client: httpx.AsyncClient, form: Callable[[list[str]], str]) -> None:
    """Item 76: absolute and relative URLs; HEAD echoes Upload-Concat exactly as received."""
    value = "final;" + form([upload_id(location) for location in await hello_world(client)])
    (created,) = await run(client, [Exchange("POST", "/files/", TUS | {"Upload-Concat": value}, expect=201)])
    await run(client, [Exchange("HEAD", created.headers["location"], TUS, expect=200,
                                expect_headers={"Upload-Concat": value, "Upload-Offset": "11"})])  # fmt: skip
    assert await download(client, created.headers["location"]) == b"hello world"


@pytest.mark.anyio
async def test_post_final_to_collection_without_slash(client: httpx.AsyncClient) -> None:
    parts = await hello_world(client)
    response = await client.post("/files", headers=TUS | {"Upload-Concat": "final;" + " ".join(map(upload_id, parts))})
    assert response.status_code == 201, response.text
    assert await download(client, response.headers["location"]) == b"hello world"


@pytest.mark.anyio
async def test_patch_on_final_returns_403(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """Item 77: neither the final nor its partials change."""
    parts = await hello_world(client)
    location = await final(client, parts)
    before = dict(storage.blobs)
    await run(client, [
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "11"}, b"!", expect=403,
                 expect_code="ERR_MODIFY_FINAL"),
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"HELLO", expect=403,
                 expect_code="ERR_MODIFY_FINAL"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "11", "Upload-Length": "11"}),
    ])  # fmt: skip
    assert storage.blobs == before


@pytest.mark.anyio
async def test_patch_on_pending_final_returns_403(client: httpx.AsyncClient) -> None:
    """Item 77, before the join: the final stays pending and takes nothing."""
    location = await final(client, [await partial(client, b"hel", length=5)])
    await run(client, [
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=403,
                 expect_code="ERR_MODIFY_FINAL"),
        Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": None, "Upload-Length": "5"}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_final_with_unknown_partial_returns_404(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """Item 80: nothing is created."""
    known = await partial(client, b"hello")
    await run(client, [Exchange("POST", "/files/", final_headers([known, "/files/0123456789abcdef0123456789abcdef"]),
                                expect=404, expect_code="ERR_UPLOAD_NOT_FOUND")])  # fmt: skip
    assert list(storage.blobs) == [upload_id(known)]


@pytest.mark.anyio
async def test_final_listing_plain_upload_returns_400(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """Item 81: a finished upload that is not a partial cannot be joined."""
    plain = await create(client, 5)
    await patch(client, plain, b"hello")
    await run(client, [Exchange("POST", "/files/", final_headers([await partial(client, b"!"), plain]), expect=400,
                                expect_code="ERR_INVALID_CONCAT")])  # fmt: skip
    assert len(storage.blobs) == 2


@pytest.mark.anyio
async def test_final_listing_final_returns_400(client: httpx.AsyncClient) -> None:
    """Item 81: a final is not a partial either."""
    first = await final(client, await hello_world(client))
    await run(
        client, [Exchange("POST", "/files/", final_headers([first]), expect=400, expect_code="ERR_INVALID_CONCAT")]
    )


@pytest.mark.anyio
@pytest.mark.parametrize(
    "headers", [{"Upload-Length": "11"}, {"Upload-Defer-Length": "1"}], ids=["upload-length", "upload-defer-length"]
)
async def test_final_with_length_header_returns_400(client: httpx.AsyncClient, headers: dict[str, str]) -> None:
    """Item 82: the final takes its length from its partials."""
    parts = await hello_world(client)
    await run(client, [Exchange("POST", "/files/", final_headers(parts, **headers), expect=400,
                                expect_code="ERR_INVALID_CONCAT")])  # fmt: skip


@pytest.mark.anyio
async def test_final_with_body_returns_403(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """Item 47: a final upload takes no body; nothing is created."""
    parts = await hello_world(client)
    headers = final_headers(parts, **{"Content-Type": "application/offset+octet-stream"})
    await run(
        client, [Exchange("POST", "/files/", headers, b"hello world", expect=403, expect_code="ERR_MODIFY_FINAL")]
    )
    assert len(storage.blobs) == 2


MALFORMED = {
    "foo": "foo",
    "final-empty-list": "final;",
    "final-without-semicolon": "final",
    "partial-with-list": "partial;/files/abc",
    "outside-base-path": "final;/other/abc",
    "dot-dot": "final;/files/../etc",
    "encoded-dot-dot": "final;/files/%2e%2e",
    "nested": "final;/files/abc/def",
}


@pytest.mark.anyio
@pytest.mark.parametrize("value", MALFORMED.values(), ids=MALFORMED.keys())
async def test_malformed_upload_concat_returns_400(client: httpx.AsyncClient, value: str) -> None:
    """Item 83."""
    await run(client, [Exchange("POST", "/files/", TUS | {"Upload-Concat": value, "Upload-Length": "5"}, expect=400)])


@pytest.mark.anyio
@pytest.mark.parametrize("value", ["final;", "foo", "final;/other/abc"], ids=["empty-list", "foo", "outside"])
async def test_malformed_final_returns_err_invalid_concat(client: httpx.AsyncClient, value: str) -> None:
    """Item 83, without any length header to trip over first."""
    await run(client, [Exchange("POST", "/files/", TUS | {"Upload-Concat": value}, expect=400,
                                expect_code="ERR_INVALID_CONCAT")])  # fmt: skip


@pytest.mark.anyio
async def test_final_over_max_size_returns_413(make_app: AppFactory) -> None:
    async with open_client(make_app(max_size=10)) as client:
        parts = await hello_world(client)
        await run(client, [Exchange("POST", "/files/", final_headers(parts), expect=413,
                                    expect_code="ERR_MAX_SIZE_EXCEEDED")])  # fmt: skip


@pytest.mark.anyio
async def test_final_metadata_is_its_own(client: httpx.AsyncClient) -> None:
    """Item 84: the final POST's metadata applies; the partials' is not carried over."""
    a = await create(client, 5, **PARTIAL, **{"Upload-Metadata": "filename YS50eHQ=,part"})
    await patch(client, a, b"hello")
    location = await final(client, [a], **{"Upload-Metadata": "filename aGVsbG8udHh0"})
    await run(client, [Exchange("HEAD", location, TUS, expect=200,
                                expect_headers={"Upload-Metadata": "filename aGVsbG8udHh0"})])  # fmt: skip


@pytest.mark.anyio
async def test_final_without_metadata_has_none(client: httpx.AsyncClient) -> None:
    """Item 84."""
    a = await create(client, 5, **PARTIAL, **{"Upload-Metadata": "filename YS50eHQ="})
    await patch(client, a, b"hello")
    await run(client, [Exchange("HEAD", await final(client, [a]), TUS, expect=200,
                                expect_headers={"Upload-Metadata": None, "Upload-Offset": "5"})])  # fmt: skip


@pytest.mark.anyio
async def test_final_of_empty_partial_is_complete_and_empty(client: httpx.AsyncClient) -> None:
    location = await final(client, [await partial(client, b"")])
    await run(client, [Exchange("HEAD", location, TUS, expect=200,
                                expect_headers={"Upload-Offset": "0", "Upload-Length": "0"})])  # fmt: skip
    assert await download(client, location) == b""


@pytest.mark.anyio
async def test_empty_partials_between_others_add_nothing(client: httpx.AsyncClient) -> None:
    empty, (hello, world) = await partial(client, b""), await hello_world(client)
    assert await download(client, await final(client, [empty, hello, empty, world, empty])) == b"hello world"


# --- partials used more than once, retries (item 85) --------------------------------------------------------------


@pytest.mark.anyio
async def test_partial_listed_twice_joins_bytes_twice(client: httpx.AsyncClient) -> None:
    hello, world = await hello_world(client)
    location = await final(client, [hello, world, hello])
    await run(client, [Exchange("HEAD", location, TUS, expect=200,
                                expect_headers={"Upload-Offset": "16", "Upload-Length": "16"})])  # fmt: skip
    assert await download(client, location) == b"hello worldhello"


@pytest.mark.anyio
@pytest.mark.parametrize(
    ("order", "metadata", "expected"),
    [((0, 1), "name Yg==", b"hello world"), ((1, 0), "name YQ==", b" worldhello")],
    ids=["different-metadata", "reversed-order"],
)
async def test_two_finals_from_same_partials(
    client: httpx.AsyncClient, order: tuple[int, int], metadata: str, expected: bytes
) -> None:
    """Both finals are separate uploads with the right bytes; the partials stay usable."""
    parts = await hello_world(client)
    first = await final(client, parts, **{"Upload-Metadata": "name YQ=="})
    second = await final(client, [parts[index] for index in order], **{"Upload-Metadata": metadata})
    assert first != second
    assert (await download(client, first), await download(client, second)) == (b"hello world", expected)


@pytest.mark.anyio
async def test_retried_final_post_returns_same_upload(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    """Item 85 (tusd#1365): a retry after a lost response gets the first final back, not a second copy."""
    parts = await hello_world(client)
    headers = {"Upload-Metadata": "filename aGVsbG8udHh0"}
    first, second = await final(client, parts, **headers), await final(client, parts, **headers)
    assert first == second
    assert len(storage.blobs) == 3
    assert await download(client, first) == b"hello world"


@pytest.mark.anyio
async def test_retried_pending_final_post_returns_same_upload(client: httpx.AsyncClient) -> None:
    hello, world = await partial(client, b"hello"), await partial(client, b" wo", length=6)
    first = await final(client, [hello, world])
    await patch(client, world, b"rld", offset=3)
    assert await final(client, [hello, world]) == first
    assert await download(client, first) == b"hello world"


@pytest.mark.anyio
async def test_final_post_retried_after_crash_before_record_returns_201(
    client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """Item 85: a crash between creating the final's bytes and its record must not block every later retry."""
    parts = await hello_world(client)
    await storage.create(final_upload_id([upload_id(part) for part in parts], {}), length=11)  # the orphan
    location = await final(client, parts)
    assert await download(client, location) == b"hello world"


# --- concatenation-unfinished (items 78 and 86) -------------------------------------------------------------------


@pytest.mark.anyio
async def test_head_pending_final_has_length_but_no_offset(client: httpx.AsyncClient) -> None:
    """Item 86: 201 while B is still uploading; HEAD has Upload-Length but no Upload-Offset (item 78)."""
    parts = [await partial(client, b"hello"), await partial(client, b" wo", length=6)]
    await run(client, [
        Exchange("POST", "/files/", final_headers(parts), expect=201),
        Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={
            "Upload-Offset": None, "Upload-Length": "11", "Upload-Concat": "final;" + " ".join(parts)}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_pending_final_completes_when_last_partial_finishes(client: httpx.AsyncClient) -> None:
    """Item 86: after the partials complete, offset = length and GET gives the joined bytes."""
    hello, world = await partial(client, b"hello"), await partial(client, b" wo", length=6)
    location = await final(client, [hello, world])
    await patch(client, world, b"rld", offset=3)
    await run(client, [Exchange("HEAD", location, TUS, expect=200,
                                expect_headers={"Upload-Offset": "11", "Upload-Length": "11"})])  # fmt: skip
    assert await download(client, location) == b"hello world"


@pytest.mark.anyio
async def test_get_pending_final_returns_409(client: httpx.AsyncClient) -> None:
    location = await final(client, [await partial(client, b"hel", length=5)])
    await run(client, [Exchange("GET", location, TUS, expect=409, expect_code="ERR_UPLOAD_NOT_FINISHED")])


@pytest.mark.anyio
async def test_get_joins_final_whose_partials_finished(client: httpx.AsyncClient) -> None:
    """A GET without any HEAD before it finds the last partial finished and joins."""
    hello, world = await partial(client, b"hello"), await partial(client, b"", length=6)
    location = await final(client, [hello, world])
    await patch(client, world, b" world")
    assert await download(client, location) == b"hello world"


@pytest.mark.anyio
async def test_final_of_unfinished_partials_joins_latest_bytes(client: httpx.AsyncClient) -> None:
    """Both partials unfinished at the final's creation, finished in reverse order."""
    hello, world = await partial(client, b"he", length=5), await partial(client, b"", length=6)
    location = await final(client, [hello, world])
    await patch(client, world, b" world")
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": None})])
    await patch(client, hello, b"llo", offset=2)
    assert await download(client, location) == b"hello world"


@pytest.mark.anyio
async def test_final_with_deferred_partial_gets_length_once_declared(client: httpx.AsyncClient) -> None:
    """Item 78: no Upload-Length (nor Upload-Defer-Length) until every partial's length is known."""
    hello, world = await partial(client, b"hello"), await create(client, None, **PARTIAL)
    location = await final(client, [hello, world])
    absent = {"Upload-Offset": None, "Upload-Length": None, "Upload-Defer-Length": None}
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers=absent)])
    await patch(client, world, b" wo", 0, **{"Upload-Length": "6"})
    await run(client, [Exchange("HEAD", location, TUS, expect=200,
                                expect_headers={"Upload-Offset": None, "Upload-Length": "11"})])  # fmt: skip
    await patch(client, world, b"rld", offset=3)
    await run(client, [Exchange("HEAD", location, TUS, expect=200,
                                expect_headers={"Upload-Offset": "11", "Upload-Length": "11"})])  # fmt: skip


@pytest.mark.anyio
async def test_pending_final_over_max_size_returns_413(make_app: AppFactory) -> None:
    """The partials' known lengths already exceed Tus-Max-Size at the final's creation."""
    async with open_client(make_app(max_size=10)) as client:
        parts = [await partial(client, b"hello"), await partial(client, b"", length=6)]
        await run(client, [Exchange("POST", "/files/", final_headers(parts), expect=413,
                                    expect_code="ERR_MAX_SIZE_EXCEEDED")])  # fmt: skip


# --- amplification limits (issue 19, defect 7) ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_final_listing_one_partial_1000_times_is_refused(
    client: httpx.AsyncClient, storage: MemoryStorage, state: MemoryStateStore
) -> None:
    """The probe's case: one small POST naming a partial 1,000 times. Refused before any join or record."""
    part = await partial(client, b"x" * 256)
    await run(client, [Exchange("POST", "/files/", final_headers([part] * 1000), expect=400,
                                expect_code="ERR_CONCAT_TOO_MANY_PARTS")])  # fmt: skip
    assert list(storage.blobs) == [upload_id(part)]
    with pytest.raises(UploadNotFoundError):
        await state.get(final_upload_id((upload_id(part),) * 1000, {}))


@pytest.mark.anyio
@pytest.mark.parametrize(("count", "status"), [(3, 201), (4, 400)], ids=["at-limit", "over-limit"])
async def test_max_concat_parts_caps_a_final(make_app: AppFactory, count: int, status: int) -> None:
    async with open_client(make_app(max_concat_parts=3)) as client:
        part = await partial(client, b"ab")
        response = await client.post("/files/", headers=final_headers([part] * count))
    assert response.status_code == status
    if status == 400:  # the table's form: one line, "ERR_CODE: reason"
        assert (error_code(response), response.text.count("\n")) == ("ERR_CONCAT_TOO_MANY_PARTS", 1)


@pytest.mark.anyio
async def test_final_repeating_a_partial_past_max_size_returns_413(make_app: AppFactory) -> None:
    """A final's length counts against Tus-Max-Size however it adds up: 3 x 4 bytes > 10."""
    async with open_client(make_app(max_size=10)) as client:
        part = await partial(client, b"abcd")
        await run(client, [Exchange("POST", "/files/", final_headers([part] * 3), expect=413,
                                    expect_code="ERR_MAX_SIZE_EXCEEDED")])  # fmt: skip


@pytest.mark.anyio
async def test_final_whose_deferred_partial_holds_too_much_returns_413(make_app: AppFactory) -> None:
    """The bytes a deferred-length partial holds already count at the final's creation: 5 + 6 > 10."""
    async with open_client(make_app(max_size=10)) as client:
        parts = [await partial(client, b"hello"), await create(client, None, **PARTIAL)]
        await patch(client, parts[1], b" world")
        await run(client, [Exchange("POST", "/files/", final_headers(parts), expect=413,
                                    expect_code="ERR_MAX_SIZE_EXCEEDED")])  # fmt: skip


@pytest.mark.anyio
async def test_final_whose_deferred_partial_grows_past_max_size_is_never_joined(
    make_app: AppFactory, storage: MemoryStorage
) -> None:
    """Accepted while its length was unknown (5 + 0 bytes), the final is checked again once it is known."""
    async with open_client(make_app(max_size=10)) as client:
        world = await create(client, None, **PARTIAL)
        location = await final(client, [await partial(client, b"hello"), world])
        await patch(client, world, b" world", 0, **{"Upload-Length": "6"})
        await run(client, [
            Exchange("HEAD", location, TUS, expect=413),
            Exchange("GET", location, TUS, expect=413, expect_code="ERR_MAX_SIZE_EXCEEDED"),
        ])  # fmt: skip
    assert storage.blobs[upload_id(location)] == b""


# --- termination ----------------------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_delete_final_leaves_partials(client: httpx.AsyncClient, storage: MemoryStorage) -> None:
    parts = await hello_world(client)
    location = await final(client, parts)
    await run(client, [
        Exchange("DELETE", location, TUS, expect=204),
        Exchange("HEAD", location, TUS, expect=404),
        Exchange("HEAD", parts[0], TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Concat": "partial"}),
    ])  # fmt: skip
    assert [storage.blobs[upload_id(part)] for part in parts] == [b"hello", b" world"]
    assert await download(client, await final(client, parts)) == b"hello world"  # the partials join again


@pytest.mark.anyio
async def test_delete_partial_keeps_complete_final(client: httpx.AsyncClient) -> None:
    parts = await hello_world(client)
    location = await final(client, parts)
    await run(client, [Exchange("DELETE", parts[0], TUS, expect=204)])
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "11"})])
    assert await download(client, location) == b"hello world"


# --- restart, local files, mounts ----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_pending_final_completes_after_restart(tmp_path: Path) -> None:
    """Item 86: nothing about the pending join lives only in memory."""
    async with server(tmp_path / "data") as client:
        hello, world = await partial(client, b"hello"), await partial(client, b" wo", length=6)
        location = await final(client, [hello, world], **{"Upload-Metadata": "filename aGVsbG8udHh0"})
    async with server(tmp_path / "data") as client:
        await patch(client, world, b"rld", offset=3)
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={
            "Upload-Offset": "11", "Upload-Length": "11", "Upload-Concat": f"final;{hello} {world}",
            "Upload-Metadata": "filename aGVsbG8udHh0"})])  # fmt: skip
        assert await download(client, location) == b"hello world"


@pytest.mark.anyio
async def test_final_on_local_storage_is_joined_file(tmp_path: Path) -> None:
    """The kernel copy leaves the joined bytes in the final's file; the partials' files are untouched."""
    uploads = tmp_path / "data" / "uploads"
    async with server(tmp_path / "data") as client:
        hello, world = await hello_world(client)
        location = await final(client, [hello, world, hello])
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "16"})])
    assert (uploads / upload_id(location)).read_bytes() == b"hello worldhello"
    assert [(uploads / upload_id(part)).read_bytes() for part in (hello, world)] == [b"hello", b" world"]


def mounted(make_app: AppFactory) -> Starlette:
    return Starlette(routes=[Mount("/api/uploads", app=make_app(base_path="/"))])


async def mounted_partial(client: httpx.AsyncClient, data: bytes) -> str:
    response = await client.post("/api/uploads/", headers=TUS | PARTIAL | {"Upload-Length": str(len(data))})
    assert response.status_code == 201, response.text
    await patch(client, response.headers["location"], data)
    return response.headers["location"]


@pytest.mark.anyio
async def test_final_through_mount_with_absolute_urls(make_app: AppFactory) -> None:
    """Item 76: tus-js-client's parallelUploads sends the partials' absolute URLs, mount prefix included."""
    async with open_client(mounted(make_app)) as client:
        parts = [await mounted_partial(client, b"hello"), await mounted_partial(client, b" world")]
        (created,) = await run(client, [Exchange("POST", "/api/uploads/", final_headers(parts), expect=201)])
        location = created.headers["location"]
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "11"})])
        assert await download(client, location) == b"hello world"
    assert location.startswith("http://testserver/api/uploads/")


@pytest.mark.anyio
async def test_final_through_mount_rejects_unmounted_urls(make_app: AppFactory) -> None:
    """Item 76: a URL outside this mount's upload path names no upload of this server."""
    async with open_client(mounted(make_app)) as client:
        part = await mounted_partial(client, b"hello")
        await run(client, [Exchange("POST", "/api/uploads/", final_headers(["/files/" + upload_id(part)]), expect=400,
                                    expect_code="ERR_INVALID_CONCAT")])  # fmt: skip


@pytest.mark.anyio
async def test_pending_final_whose_partial_was_deleted_returns_410(client: httpx.AsyncClient) -> None:
    """A final waiting on a partial that no longer exists can never complete (item 86): 410, not 404."""
    done, pending = await partial(client, b"hello"), await partial(client, b"", length=6)
    location = await final(client, [done, pending])
    await run(client, [Exchange("DELETE", pending, TUS, expect=204)])
    await run(client, [Exchange("HEAD", location, TUS, expect=410),
                       Exchange("GET", location, {}, expect=410, expect_code="ERR_UPLOAD_EXPIRED")])  # fmt: skip


@pytest.mark.anyio
async def test_pending_final_is_joined_when_its_last_partial_finishes(
    app: Starlette, client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    """Item 86: the final completes with the PATCH that finishes its last partial, before anyone asks."""
    done, pending = await partial(client, b"hello"), await partial(client, b"", length=6)
    location = await final(client, [done, pending])
    await patch(client, pending, b" world")
    recorded = await app.state.tus.state.get(upload_id(location))  # the record itself, not a HEAD that settles
    assert (recorded.offset, recorded.length) == (11, 11)
    assert storage.blobs[upload_id(location)] == b"hello world"

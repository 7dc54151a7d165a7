"""Uploads survive a restart: the defaults (LocalStorage + SQLiteStateStore) on one data_dir, served by a
first app and then by a new one. Bytes written but never recorded (a crash between the two) stay invisible
and are dropped by the next PATCH."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.http.asgi import DISCONNECT, ScriptedReceive, asgi_call, chunk, open_client, patch_scope, upload_id
from tests.http.asgi import server_lifetime as server
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run
from tusserver import Settings, create_app

METADATA = "filename aGVsbG8udHh0,is_confidential"


def data_file(tmp_path: Path, location: str) -> Path:
    return tmp_path / "data" / "uploads" / upload_id(location)


async def upload_hello_then_restart(tmp_path: Path, **headers: str) -> str:
    """Create an 11-byte upload, store "hello " and shut the server down; returns the Location."""
    async with server(tmp_path / "data") as client:
        location = await create(client, 11, **headers)
        await run(client, [Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello ", expect=204)])
    return location


@pytest.mark.anyio
async def test_restart_keeps_offset_length_and_metadata(tmp_path: Path) -> None:
    location = await upload_hello_then_restart(tmp_path, **{"Upload-Metadata": METADATA})
    async with server(tmp_path / "data") as client:
        response, *_ = await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={
            "Upload-Offset": "6", "Upload-Length": "11"})])  # fmt: skip
    assert set(response.headers["upload-metadata"].split(",")) == set(METADATA.split(","))


@pytest.mark.anyio
async def test_patch_after_restart_completes_byte_exact(tmp_path: Path) -> None:
    location = await upload_hello_then_restart(tmp_path)
    async with server(tmp_path / "data") as client:
        await run(client, [
            Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "6"}, b"world", expect=204,
                     expect_headers={"Upload-Offset": "11"}),
            Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "11", "Upload-Length": "11"}),
        ])  # fmt: skip
    assert data_file(tmp_path, location).read_bytes() == b"hello world"


@pytest.mark.anyio
async def test_unrecorded_tail_is_hidden_and_dropped(tmp_path: Path) -> None:
    location = await upload_hello_then_restart(tmp_path)
    with data_file(tmp_path, location).open("ab") as file:  # a crash after the write, before the record
        file.write(b"XXXX")
    async with server(tmp_path / "data") as client:
        await run(client, [
            Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "6"}),
            Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "6"}, b"world", expect=204,
                     expect_headers={"Upload-Offset": "11"}),
        ])  # fmt: skip
    assert data_file(tmp_path, location).read_bytes() == b"hello world"


@pytest.mark.anyio
async def test_unrecorded_tail_longer_than_upload_is_dropped(tmp_path: Path) -> None:
    location = await upload_hello_then_restart(tmp_path)
    with data_file(tmp_path, location).open("ab") as file:
        file.write(b"X" * 100)
    async with server(tmp_path / "data") as client:
        await run(client, [Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "6"}, b"", expect=204,
                                    expect_headers={"Upload-Offset": "6"})])  # fmt: skip
    assert data_file(tmp_path, location).read_bytes() == b"hello "


@pytest.mark.anyio
async def test_deferred_length_survives_restart(tmp_path: Path) -> None:
    async with server(tmp_path / "data") as client:
        location = await create(client)
        await run(client, [Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"abc", expect=204)])
    async with server(tmp_path / "data") as client:
        await run(client, [
            Exchange("HEAD", location, TUS, expect=200,
                     expect_headers={"Upload-Offset": "3", "Upload-Defer-Length": "1", "Upload-Length": None}),
            Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "3", "Upload-Length": "6"}, b"def",
                     expect=204, expect_headers={"Upload-Offset": "6"}),
        ])  # fmt: skip
    assert data_file(tmp_path, location).read_bytes() == b"abcdef"


@pytest.mark.anyio
async def test_deleted_upload_stays_gone_after_restart(tmp_path: Path) -> None:
    location = await upload_hello_then_restart(tmp_path)
    async with server(tmp_path / "data") as client:
        await run(client, [Exchange("DELETE", location, TUS, expect=204)])
    async with server(tmp_path / "data") as client:
        await run(client, [Exchange("HEAD", location, TUS, expect=404)])
    assert not data_file(tmp_path, location).exists()


@pytest.mark.anyio
async def test_bytes_of_disconnected_patch_survive_restart(tmp_path: Path) -> None:
    app = create_app(Settings(data_dir=tmp_path / "data"))
    async with open_client(app) as client:
        location = await create(client, 11)
        await asgi_call(app, patch_scope(location, 0, content_length=11), ScriptedReceive([chunk(b"hel"), DISCONNECT]))
    await app.state.tus.aclose()
    async with server(tmp_path / "data") as client:
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "3"})])
    assert data_file(tmp_path, location).read_bytes() == b"hel"

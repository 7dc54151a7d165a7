"""The expiration extension over HTTP, on a fake clock with a 60 s lifetime: PROTOCOL.md items 57-59.

Unfinished uploads expire 60 s after creation or their last successful PATCH; Upload-Expires announces it
on 201, 204 and HEAD; once past, HEAD and PATCH answer 410 while the record is kept.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.memory import MemoryStorage
from tests.http.asgi import open_client, upload_id
from tests.http.clock import LIFETIME, START, FakeClock, clocked_app
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run
from tusserver import MemoryStateStore
from tusserver.coordination.state import SQLiteStateStore

# PROTOCOL.md item 58: RFC 9110 IMF-fixdate.
IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT$"
)


ClockedApp = Callable[..., Starlette]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make_clocked_app(clock: FakeClock, storage: MemoryStorage, state: MemoryStateStore, tmp_path: Path) -> ClockedApp:
    """`make_clocked_app(retention=120, ...)`: an app on memory backends and the fake clock."""
    return lambda **settings: clocked_app(clock, storage, state, tmp_path, **settings)


@pytest.fixture
async def client(make_clocked_app: ClockedApp) -> AsyncIterator[httpx.AsyncClient]:
    """A client of an app whose unfinished uploads expire after LIFETIME seconds."""
    async with open_client(make_clocked_app()) as client:
        yield client


def at(offset: int) -> dict[str, str]:
    return PATCH_HEADERS | {"Upload-Offset": str(offset)}


def expires(seconds_after_start: float) -> str:
    """The IMF-fixdate `seconds_after_start` seconds after START."""
    return (START + timedelta(seconds=seconds_after_start)).strftime("%a, %d %b %Y %H:%M:%S GMT")


@pytest.mark.anyio
async def test_options_advertises_expiration(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 57."""
    assert "expiration" in (await client.options("/files/")).headers["Tus-Extension"].split(",")


@pytest.mark.anyio
async def test_options_omits_expiration_when_disabled(make_clocked_app: ClockedApp) -> None:
    async with open_client(make_clocked_app(expiration=None)) as client:
        assert "expiration" not in (await client.options("/files/")).headers["Tus-Extension"].split(",")


@pytest.mark.anyio
async def test_post_returns_upload_expires_lifetime_after_creation(client: httpx.AsyncClient) -> None:
    """PROTOCOL.md item 58: the 201 carries Upload-Expires as an IMF-fixdate."""
    response = await client.post("/files/", headers=TUS | {"Upload-Length": "10"})
    assert response.status_code == 201
    assert IMF_FIXDATE.match(response.headers["Upload-Expires"])
    assert response.headers["Upload-Expires"] == "Sun, 01 Mar 2026 12:01:00 GMT" == expires(LIFETIME)


@pytest.mark.anyio
async def test_patch_returns_upload_expires_extended_from_now(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """PROTOCOL.md item 58: every 204 to a PATCH on an upload that will expire carries it."""
    location = await create(client, 10)
    clock.advance(30)
    await run(client, [Exchange("PATCH", location, at(0), b"hello", expect=204,
                                expect_headers={"Upload-Expires": expires(30 + LIFETIME)})])  # fmt: skip


@pytest.mark.anyio
async def test_head_shows_upload_expires_without_extending_it(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """PROTOCOL.md item 58 IMPL: HEAD carries Upload-Expires; only a PATCH extends the lifetime."""
    location = await create(client, 10)
    clock.advance(30)
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Expires": expires(LIFETIME)})])


@pytest.mark.anyio
async def test_deferred_length_upload_announces_expiry(client: httpx.AsyncClient) -> None:
    location = await create(client, None)
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Expires": expires(LIFETIME)})])


@pytest.mark.anyio
async def test_no_upload_expires_when_expiration_disabled(make_clocked_app: ClockedApp, clock: FakeClock) -> None:
    async with open_client(make_clocked_app(expiration=None)) as client:
        [created, _] = await run(client, [
            Exchange("POST", "/files/", TUS | {"Upload-Length": "10"}, expect=201,
                     expect_headers={"Upload-Expires": None}),
            Exchange("PATCH", "{location}", at(0), b"hello", expect=204, expect_headers={"Upload-Expires": None}),
        ])  # fmt: skip
        clock.advance(10 * 365 * 86400)
        location = created.headers["Location"]
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Expires": None})])


@pytest.mark.anyio
@pytest.mark.parametrize(("elapsed", "status"), [(LIFETIME - 0.001, 200), (LIFETIME, 410), (LIFETIME + 1, 410)])
async def test_head_answers_410_from_the_expiry_on(
    client: httpx.AsyncClient, clock: FakeClock, elapsed: float, status: int
) -> None:
    """PROTOCOL.md item 59: the record is kept, so the server knows the upload expired."""
    location = await create(client, 10)
    clock.advance(elapsed)
    await run(client, [Exchange("HEAD", location, TUS, expect=status)])


@pytest.mark.anyio
async def test_patch_on_expired_upload_returns_410_and_stores_nothing(
    client: httpx.AsyncClient, clock: FakeClock, storage: MemoryStorage
) -> None:
    """PROTOCOL.md item 59."""
    location = await create(client, 10)
    clock.advance(LIFETIME)
    await run(client, [Exchange("PATCH", location, at(0), b"hello", expect=410, expect_code="ERR_UPLOAD_EXPIRED")])
    assert storage.blobs[upload_id(location)] == b""


@pytest.mark.anyio
async def test_patch_before_expiry_keeps_upload_alive(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """Each successful PATCH restarts the lifetime."""
    location = await create(client, 10)
    clock.advance(50)
    await run(client, [Exchange("PATCH", location, at(0), b"hello", expect=204)])
    clock.advance(50)
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"})])
    clock.advance(10)
    await run(client, [Exchange("HEAD", location, TUS, expect=410)])


@pytest.mark.anyio
async def test_checksum_mismatch_does_not_extend_expiry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """PROTOCOL.md item 62: a discarded PATCH is no successful PATCH."""
    location = await create(client, 10)
    clock.advance(30)
    await run(client, [
        Exchange("PATCH", location, at(0) | {"Upload-Checksum": "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA="}, b"hello",
                 expect=460, expect_headers={"Upload-Expires": None}),
        Exchange("HEAD", location, TUS, expect_headers={"Upload-Expires": expires(LIFETIME)}),
    ])  # fmt: skip
    clock.advance(30)
    await run(client, [Exchange("HEAD", location, TUS, expect=410)])


@pytest.mark.anyio
async def test_offset_mismatch_does_not_extend_expiry(client: httpx.AsyncClient, clock: FakeClock) -> None:
    location = await create(client, 10)
    clock.advance(30)
    await run(client, [
        Exchange("PATCH", location, at(3), b"hello", expect=409),
        Exchange("HEAD", location, TUS, expect_headers={"Upload-Expires": expires(LIFETIME)}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_completing_patch_has_no_upload_expires(client: httpx.AsyncClient) -> None:
    """tus §Upload-Expires concerns unfinished uploads."""
    location = await create(client, 5)
    await run(client, [
        Exchange("PATCH", location, at(0), b"hello", expect=204, expect_headers={"Upload-Expires": None}),
        Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": "5", "Upload-Expires": None}),
    ])  # fmt: skip


@pytest.mark.anyio
async def test_completed_upload_never_expires_without_retention(client: httpx.AsyncClient, clock: FakeClock) -> None:
    location = await create(client, 5)
    await run(client, [Exchange("PATCH", location, at(0), b"hello", expect=204)])
    clock.advance(10 * 365 * 86400)
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5"})])


@pytest.mark.anyio
async def test_empty_upload_is_complete_at_creation_and_never_expires(
    client: httpx.AsyncClient, clock: FakeClock
) -> None:
    location = await create(client, 0)
    clock.advance(10 * 365 * 86400)
    await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Expires": None})])


@pytest.mark.anyio
async def test_completed_upload_expires_after_retention(make_clocked_app: ClockedApp, clock: FakeClock) -> None:
    """With `retention`, a finished upload is kept that long after completion, then answers 410."""
    async with open_client(make_clocked_app(retention=120)) as client:
        location = await create(client, 5)
        clock.advance(30)
        await run(client, [Exchange("PATCH", location, at(0), b"hello", expect=204)])
        clock.advance(119)
        await run(client, [Exchange("HEAD", location, TUS, expect=200)])
        clock.advance(1)
        await run(client, [Exchange("HEAD", location, TUS, expect=410)])


@pytest.mark.anyio
async def test_delete_of_expired_upload_returns_204(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """Termination still works after expiry; afterwards the upload is unknown."""
    location = await create(client, 10)
    clock.advance(LIFETIME + 1)
    await run(client, [Exchange("DELETE", location, TUS, expect=204),
                       Exchange("HEAD", location, TUS, expect=404)])  # fmt: skip


@pytest.mark.anyio
async def test_expiry_survives_the_sqlite_state_store(clock: FakeClock, storage: MemoryStorage, tmp_path: Path) -> None:
    """The expiry is persisted with the record (and read back as an aware UTC time)."""
    state = SQLiteStateStore(tmp_path / "state.sqlite3")
    async with open_client(clocked_app(clock, storage, state, tmp_path)) as client:
        location = await create(client, 10)
        await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Expires": expires(LIFETIME)})])
        clock.advance(LIFETIME)
        await run(client, [Exchange("PATCH", location, at(0), b"hello", expect=410, expect_code="ERR_UPLOAD_EXPIRED")])
    await state.aclose()

"""One writer per upload (PROTOCOL.md item 28, tusd TestLockRelease): a new request interrupts a stalled
PATCH, which stores what it received; a lock that is never released gives 423 Locked."""

from __future__ import annotations

from collections.abc import Mapping

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.memory import MemoryStorage
from tests.http.asgi import Captured, ScriptedReceive, asgi_call, chunk, open_client, patch_scope, upload_id
from tests.http.conftest import AppFactory
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run


async def stall_then(app: Starlette, location: str, request: Exchange, client: httpx.AsyncClient) -> Captured:
    """Start a PATCH that sends b"hello" and then stalls; once the bytes are stored, run `request`.

    Returns the stalled PATCH's response.
    """
    stalled, receive = Captured(), ScriptedReceive([chunk(b"hello")])
    with anyio.fail_after(5):  # a stall that nothing interrupts fails instead of hanging
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(asgi_call, app, patch_scope(location, 0), receive, stalled)
            await receive.exhausted.wait()
            await run(client, [request])
    return stalled


@pytest.mark.anyio
async def test_head_interrupts_stalled_patch(app: Starlette, client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    head = Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "5", "Upload-Length": "10"})
    stalled = await stall_then(app, location, head, client)
    assert (stalled.status, stalled.code) == (400, "ERR_UPLOAD_INTERRUPTED")


@pytest.mark.anyio
async def test_patch_interrupts_stalled_patch_and_continues_at_stored_offset(
    app: Starlette, client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    location = await create(client, 10)
    patch = Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "5"}, b"world", expect=204,
                     expect_headers={"Upload-Offset": "10"})  # fmt: skip
    stalled = await stall_then(app, location, patch, client)
    assert (stalled.status, stalled.code) == (400, "ERR_UPLOAD_INTERRUPTED")
    assert storage.blobs[upload_id(location)] == b"helloworld"


@pytest.mark.anyio
async def test_delete_interrupts_stalled_patch(app: Starlette, client: httpx.AsyncClient) -> None:
    location = await create(client, 10)
    stalled = await stall_then(app, location, Exchange("DELETE", location, TUS, expect=204), client)
    assert (stalled.status, stalled.code) == (400, "ERR_UPLOAD_INTERRUPTED")
    await run(client, [Exchange("HEAD", location, TUS, expect=404)])


LOCKED_REQUESTS = [
    pytest.param("HEAD", TUS, None, id="head"),
    pytest.param("PATCH", PATCH_HEADERS | {"Upload-Offset": "0"}, "ERR_UPLOAD_LOCKED", id="patch"),
    pytest.param("DELETE", TUS, "ERR_UPLOAD_LOCKED", id="delete"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("method", "headers", "code"), LOCKED_REQUESTS)
async def test_request_on_lock_never_released_gets_423(
    make_app: AppFactory, method: str, headers: Mapping[str, str], code: str | None
) -> None:
    app = make_app(lock_timeout=0.1)
    async with open_client(app) as client:
        location = await create(client, 10)
        async with app.state.tus.locker.acquire(upload_id(location), timeout=1) as lease:
            await run(client, [Exchange(method, location, headers, b"", expect=423, expect_code=code)])
        assert lease.release_requested
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])


@pytest.mark.anyio
async def test_head_on_finished_upload_takes_no_lock(make_app: AppFactory) -> None:
    """A finished upload never changes, so reading it waits for nobody (issue 2, item 4)."""
    app = make_app(lock_timeout=0.1)
    async with open_client(app) as client:
        location = await create(client, 0)
        async with app.state.tus.locker.acquire(upload_id(location), timeout=1) as lease:
            await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])
        assert not lease.release_requested


@pytest.mark.anyio
async def test_patch_rejected_as_locked_stores_nothing(make_app: AppFactory, storage: MemoryStorage) -> None:
    app = make_app(lock_timeout=0.1)
    async with open_client(app) as client:
        location = await create(client, 10)
        async with app.state.tus.locker.acquire(upload_id(location), timeout=1):
            await run(client, [Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello",
                                        expect=423, expect_code="ERR_UPLOAD_LOCKED")])  # fmt: skip
    assert storage.blobs[upload_id(location)] == b""


@pytest.mark.anyio
async def test_second_patch_at_same_offset_conflicts_after_interrupting_first(
    app: Starlette, client: httpx.AsyncClient, storage: MemoryStorage
) -> None:
    location = await create(client, 8)
    first, first_receive = Captured(), ScriptedReceive([chunk(b"AA")])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(asgi_call, app, patch_scope(location, 0), first_receive, first)
            await first_receive.exhausted.wait()
            second = await asgi_call(app, patch_scope(location, 0), ScriptedReceive([chunk(b"BBBBBBBB", more=False)]))
    assert (first.status, first.code) == (400, "ERR_UPLOAD_INTERRUPTED")
    assert (second.status, second.code, second.headers["upload-offset"]) == (409, "ERR_MISMATCHED_OFFSET", "2")
    assert storage.blobs[upload_id(location)] == b"AA"


@pytest.mark.anyio
@pytest.mark.parametrize("racers", [2, 3])
async def test_racing_patches_never_interleave_bytes(
    app: Starlette, client: httpx.AsyncClient, storage: MemoryStorage, racers: int
) -> None:
    location = await create(client, 8)
    bodies = [bytes([ord("A") + n]) * 8 for n in range(racers)]
    answers = [Captured() for _ in bodies]
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            for body, answer in zip(bodies, answers, strict=True):
                script = [chunk(body[i : i + 2], more=i < 6) for i in range(0, 8, 2)]
                tasks.start_soon(asgi_call, app, patch_scope(location, 0), ScriptedReceive(script), answer)
    stored = bytes(storage.blobs[upload_id(location)])
    assert any(body.startswith(stored) for body in bodies)
    statuses = [answer.status for answer in answers]
    assert set(statuses) <= {204, 400, 409}
    assert statuses.count(204) <= 1  # two successes at offset 0 would mean two writers
    await run(client, [Exchange("HEAD", location, TUS, expect_headers={"Upload-Offset": str(len(stored))})])

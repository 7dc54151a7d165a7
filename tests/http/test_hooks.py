"""Issue 20: hooks through the ASGI app, with in-process hooks (`create_app(hooks=...)`): every event in
order for each kind of upload, what blocking hooks decide, and what their failures do.

Without the app's lifespan (httpx's ASGI transport runs none), non-blocking events are sent in their request,
before its answer, so the order a test sees is the order they were fired.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from pathlib import Path

import anyio
import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.memory import MemoryStorage
from tests.http.asgi import ScriptedReceive, asgi_call, chunk, open_client, patch_scope, upload_id
from tests.http.clock import FakeClock
from tests.http.transcript import PATCH_HEADERS, TUS, create
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.coordination.cleanup import remove_expired
from tusserver.coordination.hooks.dispatch import InProcessHook
from tusserver.coordination.hooks.model import (
    HookChangeFileInfo,
    HookHTTPResponse,
    HookRequest,
    HookResponse,
)
from tusserver.protocol.ids import storage_key

pytestmark = pytest.mark.anyio

EVENTS = ("pre-create", "post-create", "post-receive", "pre-finish", "post-finish", "pre-terminate", "post-terminate")


class Receiver:
    """In-process hooks for every event: records each request, answers what a test scripts."""

    def __init__(self) -> None:
        self.seen: list[HookRequest] = []
        self.answers: dict[str, HookResponse] = {}
        self.failing: set[str] = set()

    def hooks(self) -> dict[str, InProcessHook]:
        async def hook(request: HookRequest) -> HookResponse | None:
            self.seen.append(request)
            if request.Type in self.failing:
                raise RuntimeError("the receiver broke")
            return self.answers.get(request.Type)

        return dict.fromkeys(EVENTS, hook)

    @property
    def types(self) -> list[str]:
        return [request.Type for request in self.seen]


@pytest.fixture
def receiver() -> Receiver:
    return Receiver()


@pytest.fixture
async def app(receiver: Receiver, tmp_path: Path) -> AsyncIterator[Starlette]:
    settings = Settings(data_dir=tmp_path, hooks_progress_interval=0.05)
    built = create_app(settings, storage=MemoryStorage(), state=MemoryStateStore(), hooks=receiver.hooks())
    yield built
    await built.state.tus.aclose()


@pytest.fixture
async def client(app: Starlette) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(app) as http:
        yield http


def metadata(**pairs: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


async def patch(client: httpx.AsyncClient, location: str, offset: int, body: bytes) -> httpx.Response:
    return await client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": str(offset)}, content=body)


async def test_plain_upload_fires_every_event_in_order(client: httpx.AsyncClient, receiver: Receiver) -> None:
    response = await client.post(
        "/files/", headers=TUS | {"Upload-Length": "10", "Upload-Metadata": metadata(filename="a.txt")}
    )
    location = response.headers["Location"]
    assert (await patch(client, location, 0, b"hello")).status_code == 204
    assert (await patch(client, location, 5, b"world")).status_code == 204
    assert (await client.delete(location, headers=TUS)).status_code == 204
    assert receiver.types == [
        "pre-create", "post-create",
        "post-receive",
        "pre-finish", "post-receive", "post-finish",  # blocking first, before the answer; then the rest
        "pre-terminate", "post-terminate",
    ]  # fmt: skip
    first, finished = receiver.seen[0], receiver.seen[5]
    assert first.Event.Upload.ID == ""
    assert first.Event.Upload.MetaData == {"filename": "a.txt"}  # decoded, as tusd hands it over
    assert first.Event.HTTPRequest.Method == "POST"
    assert first.Event.HTTPRequest.Header["Upload-Length"] == ["10"]
    assert upload_id(location) == finished.Event.Upload.ID
    assert (finished.Event.Upload.Offset, finished.Event.Upload.Size) == (10, 10)
    assert finished.Event.Upload.Storage == {"Type": "memory", "Key": upload_id(location)}
    assert len({request.EventID for request in receiver.seen}) == len(receiver.seen)  # unique ids


async def test_creation_with_upload_and_deferred_length(client: httpx.AsyncClient, receiver: Receiver) -> None:
    headers = PATCH_HEADERS | {"Upload-Defer-Length": "1"}
    response = await client.post("/files/", headers=headers, content=b"hel")
    location = response.headers["Location"]
    final = await client.patch(
        location, headers=PATCH_HEADERS | {"Upload-Offset": "3", "Upload-Length": "5"}, content=b"lo"
    )
    assert final.status_code == 204
    assert receiver.types == ["pre-create", "post-create", "post-receive", "pre-finish", "post-receive", "post-finish"]
    assert receiver.seen[0].Event.Upload.SizeIsDeferred
    assert receiver.seen[-1].Event.Upload.Size == 5


async def test_empty_upload_is_finished_at_creation(client: httpx.AsyncClient, receiver: Receiver) -> None:
    assert (await client.post("/files/", headers=TUS | {"Upload-Length": "0"})).status_code == 201
    assert receiver.types == ["pre-create", "pre-finish", "post-create", "post-finish"]


async def test_concatenation_finishes_the_final_when_it_is_joined(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    partials = []
    for data in (b"ab", b"cd"):
        location = await create(client, len(data), **{"Upload-Concat": "partial"})
        partials.append(location)
    assert (await patch(client, partials[0], 0, b"ab")).status_code == 204
    receiver.seen.clear()
    paths = " ".join(httpx.URL(location).path for location in partials)
    final = await client.post("/files/", headers=TUS | {"Upload-Concat": f"final;{paths}"})
    assert final.status_code == 201
    assert receiver.types == ["pre-create", "post-create"]  # unfinished: a partial is still coming
    assert (await patch(client, partials[1], 0, b"cd")).status_code == 204  # its last byte joins the final
    # The partial's PATCH: its own pre-finish, then the final's (the join), before any non-blocking event.
    assert receiver.types[2:4] == ["pre-finish", "pre-finish"]
    assert sorted(receiver.types[4:]) == ["post-finish", "post-finish", "post-receive"]
    (joined,) = [request for request in receiver.seen[4:] if request.Event.Upload.IsFinal]
    assert (joined.Type, joined.Event.Upload.IsFinal) == ("post-finish", True)
    assert upload_id(final.headers["Location"]) == joined.Event.Upload.ID
    assert joined.Event.Upload.PartialUploads == [upload_id(location) for location in partials]


async def test_pre_create_rejects_with_its_status_body_and_headers(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    rejection = HookHTTPResponse(StatusCode=403, Body="no filename provided", Header={"X-Reason": "filename"})
    receiver.answers["pre-create"] = HookResponse(RejectUpload=True, HTTPResponse=rejection)
    response = await client.post("/files/", headers=TUS | {"Upload-Length": "5"})
    assert (response.status_code, response.text, response.headers["X-Reason"]) == (
        403,
        "no filename provided",
        "filename",
    )
    assert receiver.types == ["pre-create"]  # nothing was created


async def test_pre_create_rejection_without_a_response_is_a_400(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.answers["pre-create"] = HookResponse(RejectUpload=True)
    response = await client.post("/files/", headers=TUS | {"Upload-Length": "5"})
    assert (response.status_code, response.text.split(":")[0]) == (400, "ERR_UPLOAD_REJECTED")


async def test_pre_create_changes_id_and_metadata(
    app: Starlette, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    change = HookChangeFileInfo(ID="scan_2026.12~v1", MetaData={"filename": "renamed.tif", "owner": "ana"})
    receiver.answers["pre-create"] = HookResponse(ChangeFileInfo=change)
    response = await client.post(
        "/files/", headers=TUS | {"Upload-Length": "2", "Upload-Metadata": metadata(filename="x")}
    )
    location = response.headers["Location"]
    assert location.endswith("/files/scan_2026.12~v1")
    head = await client.head(location, headers=TUS)
    assert head.headers["Upload-Metadata"] == metadata(filename="renamed.tif", owner="ana")
    assert (await patch(client, location, 0, b"ok")).status_code == 204
    storage: MemoryStorage = app.state.tus.storage
    assert bytes(storage.blobs[storage_key("scan_2026.12~v1")]) == b"ok"  # escaped for the storage
    assert receiver.seen[1].Event.Upload.ID == "scan_2026.12~v1"


@pytest.mark.parametrize("chosen", ["..", "a/b", "x" * 129, "ümlaut"])
async def test_unusable_custom_id_fails_the_post(
    client: httpx.AsyncClient, receiver: Receiver, chosen: str, caplog: pytest.LogCaptureFixture
) -> None:
    receiver.answers["pre-create"] = HookResponse(ChangeFileInfo=HookChangeFileInfo(ID=chosen))
    response = await client.post("/files/", headers=TUS | {"Upload-Length": "2"})
    assert response.status_code == 500
    assert "cannot be used" in caplog.text
    assert receiver.types == ["pre-create"]


async def test_custom_id_in_use_fails_the_post(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.answers["pre-create"] = HookResponse(ChangeFileInfo=HookChangeFileInfo(ID="taken"))
    assert (await client.post("/files/", headers=TUS | {"Upload-Length": "2"})).status_code == 201
    assert (await client.post("/files/", headers=TUS | {"Upload-Length": "2"})).status_code == 500


async def test_pre_finish_shapes_the_response(client: httpx.AsyncClient, receiver: Receiver) -> None:
    shaped = HookHTTPResponse(StatusCode=200, Body='{"id": "done"}', Header={"X-Processed": "yes"})
    receiver.answers["pre-finish"] = HookResponse(HTTPResponse=shaped)
    location = await create(client, 2)
    response = await patch(client, location, 0, b"ok")
    assert (response.status_code, response.text, response.headers["X-Processed"]) == (200, '{"id": "done"}', "yes")
    assert response.headers["Upload-Offset"] == "2"


async def test_failing_blocking_hook_is_a_503_and_changes_nothing(
    client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.failing = {"pre-create"}
    response = await client.post("/files/", headers=TUS | {"Upload-Length": "2"})
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    receiver.failing = {"pre-finish"}
    location = await create(client, 2)
    assert (await patch(client, location, 0, b"ok")).status_code == 503
    assert (await client.head(location, headers=TUS)).headers["Upload-Offset"] == "0"  # not finished
    receiver.failing = set()
    assert (await patch(client, location, 0, b"ok")).status_code == 204  # the client sends the end again


async def test_failing_non_blocking_hook_never_fails_the_upload(
    app: Starlette, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    receiver.failing = {"post-create", "post-receive", "post-finish"}
    location = await create(client, 2)
    assert (await patch(client, location, 0, b"ok")).status_code == 204
    assert sum(app.state.tus.hooks.failures.values()) == 3


async def test_pre_terminate_refuses(client: httpx.AsyncClient, receiver: Receiver) -> None:
    receiver.answers["pre-terminate"] = HookResponse(RejectTermination=True)
    location = await create(client, 2)
    response = await client.delete(location, headers=TUS)
    assert (response.status_code, response.text.split(":")[0]) == (400, "ERR_TERMINATION_REJECTED")
    assert (await client.head(location, headers=TUS)).status_code == 200
    assert "post-terminate" not in receiver.types


async def test_post_receive_stops_the_upload_and_keeps_its_bytes(
    app: Starlette, client: httpx.AsyncClient, receiver: Receiver
) -> None:
    """The app's background ticks a PATCH whose body stalls, so a hook can stop it meanwhile."""
    receiver.answers["post-receive"] = HookResponse(StopUpload=True)
    location = await create(client, 10)
    receive = ScriptedReceive([chunk(b"hello")])  # then the client sends nothing more: a stop ends it
    with anyio.fail_after(5):
        async with app.router.lifespan_context(app):
            stopped = await asgi_call(app, patch_scope(location, 0), receive)
    assert (stopped.status, stopped.code) == (400, "ERR_UPLOAD_STOPPED")
    assert (await client.head(location, headers=TUS)).headers["Upload-Offset"] == "5"


async def test_expiry_fires_post_terminate(receiver: Receiver, tmp_path: Path) -> None:
    clock = FakeClock()
    app = create_app(
        Settings(data_dir=tmp_path, expiration=60),
        storage=MemoryStorage(),
        state=MemoryStateStore(),
        hooks=receiver.hooks(),
        clock=clock,
    )
    try:
        async with open_client(app) as client:
            location = await create(client, 5)
            clock.advance(120)
            assert await remove_expired(app.state.tus, app.state.tus.clock()) == [upload_id(location)]
    finally:
        await app.state.tus.aclose()
    assert receiver.types[-1] == "post-terminate"
    assert upload_id(location) == receiver.seen[-1].Event.Upload.ID

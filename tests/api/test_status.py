"""The status API through the ASGI app, on SQLite and on Redis (issue 21 item 6): each user lists and reads only
their own uploads, admins everyone's; filters; cursor pages while uploads are being created; admins' verdicts; the
errors in the error table's form; `--api-path`."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import datetime
from typing import Any

import anyio
import anyio.lowlevel
import httpx
import pytest

from tests.api.conftest import ADMIN, MakeApp, create, finish
from tests.auth.jwt_keys import token
from tests.http.asgi import open_client
from tests.http.clock import FakeClock
from tusserver import HookRequest, HookResponse, MemoryStateStore
from tusserver.context import utcnow
from tusserver.coordination.locking import Lease
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.protocol.model import UploadInfo

pytestmark = pytest.mark.anyio

NOT_FOUND = "ERR_UPLOAD_NOT_FOUND: upload not found\n"


def auth(user: str | None) -> dict[str, str]:
    """Only the token: the API needs no tus headers."""
    return {"Authorization": f"Bearer {token(sub=user)}"} if user is not None else {}


async def listed(client: httpx.AsyncClient, user: str | None, **params: Any) -> list[str]:
    """The ids of one page of `user`'s listing."""
    response = await client.get("/api/uploads", headers=auth(user), params=params)
    assert response.status_code == 200, response.text
    return [upload["id"] for upload in response.json()["uploads"]]


async def held(request: HookRequest) -> HookResponse:
    """A pre-finish hook that leaves every verdict to an admin."""
    return HookResponse(HoldUpload=True, Reason="awaiting review")


async def test_each_user_lists_only_their_own_and_admins_everyones(client: httpx.AsyncClient, clock: FakeClock) -> None:
    anas = []
    for _ in range(2):
        anas.append(await create(client, "ana"))
        clock.advance(1)
    ben = await create(client, "ben")
    assert await listed(client, "ana") == anas[::-1]
    assert await listed(client, "ben") == [ben]
    assert await listed(client, "carl") == []
    assert await listed(client, ADMIN) == [ben, *anas[::-1]]
    assert await listed(client, ADMIN, owner="ana") == anas[::-1]
    assert await listed(client, "ana", owner="ana") == anas[::-1]
    refused = await client.get("/api/uploads", headers=auth("ana"), params={"owner": "ben"})
    assert (refused.status_code, refused.text) == (
        403,
        "ERR_ADMIN_REQUIRED: only an admin may list another principal's uploads\n",
    )
    assert refused.headers["content-type"].startswith("text/plain")


async def test_one_upload_shows_its_record(client: httpx.AsyncClient, clock: FakeClock) -> None:
    # "naïve.txt", and a value that is not UTF-8 (0xff), and a key without a value
    upload_id = await create(client, "ana", 3, "filename bmHDr3ZlLnR4dA==,blob /w==,flag")
    response = await client.get(f"/api/uploads/{upload_id}", headers=auth("ana"))
    assert response.status_code == 200, response.text
    assert response.headers["cache-control"] == "no-store"
    record = response.json()
    assert record == {
        "id": upload_id,
        "url": f"http://testserver/files/{upload_id}",
        "length": 3,
        "offset": 0,
        "metadata": {"filename": "naïve.txt", "blob": "\ufffd", "flag": ""},
        "state": "uploading",
        "reason": None,
        "owner": "ana",
        "created_at": "2026-03-01T12:00:00Z",
        "finished_at": None,
        "expires_at": record["expires_at"],
        "removed_at": None,
        "digest": None,
        "concat": None,
        "parts": [],
    }
    assert record["expires_at"] > record["created_at"]
    clock.advance(5)
    await finish(client, "ana", upload_id)
    record = (await client.get(f"/api/uploads/{upload_id}", headers=auth("ana"))).json()
    assert (record["state"], record["offset"], record["finished_at"]) == ("accepted", 3, "2026-03-01T12:00:05Z")


async def test_another_users_upload_is_not_found_as_a_missing_one(client: httpx.AsyncClient) -> None:
    upload_id = await create(client, "ana")
    for path in [f"/api/uploads/{upload_id}", "/api/uploads/no-such-upload"]:
        response = await client.get(path, headers=auth("ben"))
        assert (response.status_code, response.text) == (404, NOT_FOUND)
        for verdict in ("accept", "reject"):
            response = await client.post(f"{path}/{verdict}", headers=auth("ben"), json={"reason": "x"})
            assert (response.status_code, response.text) == (404, NOT_FOUND)
    assert (await client.get(f"/api/uploads/{upload_id}", headers=auth(ADMIN))).json()["owner"] == "ana"


async def test_requests_without_a_token_get_401(client: httpx.AsyncClient) -> None:
    for method, path in [("GET", "/api/uploads"), ("GET", "/api/uploads/x"), ("POST", "/api/uploads/x/accept")]:
        response = await client.request(method, path)
        assert response.status_code == 401
        assert response.text.startswith("ERR_UNAUTHORIZED: ")
        assert response.headers["www-authenticate"] == "Bearer"


async def test_state_filter(make_app: MakeApp, clock: FakeClock) -> None:
    async with open_client(make_app(hooks={"pre-finish": held})) as client:
        uploading = await create(client, "ana")
        clock.advance(1)
        uploaded = await create(client, "ana")
        await finish(client, "ana", uploaded)
        assert await listed(client, "ana", state="uploading") == [uploading]
        assert await listed(client, "ana", state="uploaded") == [uploaded]
        assert await listed(client, "ana", state="accepted") == []
        assert await listed(client, ADMIN, state="uploaded") == [uploaded]
        record = (await client.get(f"/api/uploads/{uploaded}", headers=auth("ana"))).json()
        assert (record["state"], record["reason"]) == ("uploaded", "awaiting review")


async def test_pages_while_uploads_are_being_created(client: httpx.AsyncClient, clock: FakeClock) -> None:
    """A cursor continues after the last upload shown: uploads created between pages come before the first page
    and shift nothing; each earlier upload is seen once, newest first; the last page has no cursor."""
    earlier = []
    for n in range(8):
        earlier.append(await create(client, "ana"))
        clock.advance(0.5 if n % 2 else 0)  # pairs created in the same instant: ties broken by id
    seen: list[str] = []
    cursor: str | None = None
    pages = 0
    while True:
        params = {"limit": 3} | ({"cursor": cursor} if cursor else {})
        page = (await client.get("/api/uploads", headers=auth("ana"), params=params)).json()
        seen += [upload["id"] for upload in page["uploads"]]
        pages += 1
        cursor = page["next_cursor"]
        if cursor is None:
            break
        clock.advance(1)
        await create(client, "ana")  # newer than every page so far
        await create(client, "ben")
    assert pages == 3
    assert sorted(seen) == sorted(earlier)
    by_time = sorted(earlier, key=lambda upload: (earlier.index(upload) // 2, upload), reverse=True)
    assert seen == by_time
    assert len(await listed(client, "ana", limit=100)) == 8 + 2


async def test_pages_while_uploads_are_created_at_the_same_time(make_app: MakeApp) -> None:
    """On the real clock, with another client creating uploads the whole time: no upload comes twice, each one
    that existed before the first page comes once, in order."""
    async with open_client(make_app(clock=utcnow)) as client:
        before = {await create(client, "ana") for _ in range(12)}
        seen: list[dict[str, Any]] = []
        async with anyio.create_task_group() as tasks:
            done = anyio.Event()

            async def keep_creating() -> None:
                while not done.is_set():
                    await create(client, "ana")
                    await anyio.lowlevel.checkpoint()  # SQLite's requests never wait: let the pages go on

            tasks.start_soon(keep_creating)
            page: dict[str, Any] = {"next_cursor": None}
            while True:
                await anyio.lowlevel.checkpoint()  # and the creator between two pages
                cursor = {"cursor": page["next_cursor"]} if page["next_cursor"] else {}
                page = (await client.get("/api/uploads", headers=auth("ana"), params={"limit": 4} | cursor)).json()
                seen += page["uploads"]
                if page["next_cursor"] is None:
                    break
            done.set()
        ids = [upload["id"] for upload in seen]
        assert len(ids) == len(set(ids))
        assert before <= set(ids)
        keys = [(datetime.fromisoformat(upload["created_at"]), upload["id"]) for upload in seen]
        assert keys == sorted(keys, reverse=True)
        assert len(await listed(client, "ana", limit=500)) > len(before) + 2  # created while the pages were read


async def test_admins_accept_and_reject_finished_uploads(make_app: MakeApp) -> None:
    async with open_client(make_app(hooks={"pre-finish": held})) as client:
        first, second, unfinished = [await create(client, "ana") for _ in range(3)]
        await finish(client, "ana", first)
        await finish(client, "ana", second)

        async def judge(user: str, upload_id: str, verdict: str, **body: Any) -> httpx.Response:
            return await client.post(f"/api/uploads/{upload_id}/{verdict}", headers=auth(user), json=body or None)

        refused = await judge("ana", first, "accept")
        assert (refused.status_code, refused.text) == (403, "ERR_ADMIN_REQUIRED: only an admin may do this\n")
        accepted = await judge(ADMIN, first, "accept", reason="looks fine")
        assert accepted.status_code == 200, accepted.text
        assert (accepted.json()["state"], accepted.json()["reason"]) == ("accepted", "looks fine")
        rejected = await judge(ADMIN, second, "reject", reason="not a FASTA file")
        assert (rejected.json()["state"], rejected.json()["reason"]) == ("rejected", "not a FASTA file")
        download = await client.get(f"/files/{second}", headers=auth("ana"))
        assert (download.status_code, download.text) == (403, "ERR_UPLOAD_REJECTED: not a FASTA file\n")

        again = await judge(ADMIN, second, "accept")
        assert (again.status_code, again.text) == (
            409,
            "ERR_UPLOAD_STATE_CONFLICT: a rejected upload stays rejected: cleanup removes its bytes\n",
        )
        early = await judge(ADMIN, unfinished, "reject", reason="too slow")
        assert (early.status_code, early.text) == (
            409,
            "ERR_UPLOAD_STATE_CONFLICT: an upload that is uploading cannot be judged\n",
        )
        overturned = await judge(ADMIN, first, "reject", reason="found a problem")
        assert overturned.json()["state"] == "rejected"
        assert await listed(client, ADMIN, state="rejected") == sorted([first, second], reverse=True)
        assert await listed(client, ADMIN, state="uploaded") == []


@pytest.mark.parametrize(
    ("verdict", "body", "message"),
    [
        ("reject", None, "body: Invalid JSON: EOF while parsing a value at line 1 column 0"),
        ("reject", b'{"reason": ', "body: Invalid JSON: EOF while parsing a value at line 1 column 11"),
        ("reject", b"{}", "reason: Field required"),
        ("reject", b'{"reason": ""}', "reason: String should have at least 1 character"),
        ("reject", b'{"reason": "two\\nlines"}', "reason: String should match pattern '^[^\\x00-\\x1f\\x7f]*$'"),
        ("accept", b'{"reasons": "x"}', "reasons: Extra inputs are not permitted"),
        ("accept", b"[1]", "body: Input should be an object"),
        ("accept", b"x" * 20000, "body: longer than 16384 bytes"),
    ],
)
async def test_verdict_bodies_are_checked(
    client: httpx.AsyncClient, verdict: str, body: bytes | None, message: str
) -> None:
    upload_id = await create(client, "ana")
    response = await client.post(f"/api/uploads/{upload_id}/{verdict}", headers=auth(ADMIN), content=body)
    assert (response.status_code, response.text) == (400, f"ERR_INVALID_PARAMETER: {message}\n")


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ("state=done", "state: Input should be 'uploading', 'uploaded', 'accepted', 'rejected', 'terminated' or"),
        ("limit=0", "limit: Input should be greater than or equal to 1"),
        ("limit=501", "limit: Input should be less than or equal to 500"),
        ("limit=many", "limit: Input should be a valid integer"),
        ("cursor=bm9wZQ", "cursor: not a cursor this server gave out"),
        ("cursor=%%%", "cursor: not a cursor this server gave out"),
        ("status=accepted", "status: Extra inputs are not permitted"),
        ("limit=1&limit=2", "limit: given more than once"),
        ("owner=", "owner: String should have at least 1 character"),
    ],
)
async def test_list_parameters_are_checked(client: httpx.AsyncClient, query: str, message: str) -> None:
    response = await client.get(f"/api/uploads?{query}", headers=auth("ana"))
    assert response.status_code == 400
    assert response.text.startswith(f"ERR_INVALID_PARAMETER: {message}")


async def test_without_authorization_everyone_sees_every_upload_and_nobody_judges(
    make_app: MakeApp, clock: FakeClock
) -> None:
    async with open_client(make_app(auth=False)) as client:
        first = await create(client, None)
        clock.advance(1)
        second = await create(client, None)
        await finish(client, None, second)
        assert await listed(client, None) == [second, first]
        record = (await client.get(f"/api/uploads/{first}")).json()
        assert record["owner"] is None
        refused = await client.post(f"/api/uploads/{second}/reject", json={"reason": "no"})
        assert refused.status_code == 403
        assert refused.text.startswith("ERR_ADMIN_REQUIRED: a verdict is an admin's: configure authorization")


async def test_api_path_is_configurable_or_off(make_app: MakeApp) -> None:
    async with open_client(make_app(api_path="status/v1/")) as client:
        upload_id = await create(client, "ana")
        assert (await client.get("/status/v1/uploads", headers=auth("ana"))).json()["uploads"][0]["id"] == upload_id
        assert (await client.get("/api/uploads", headers=auth("ana"))).status_code == 404
    async with open_client(make_app(api_path=None)) as client:
        missing = await client.get("/api/uploads", headers=auth("ana"))
        assert (missing.status_code, missing.text) == (404, NOT_FOUND)


async def test_wrong_methods_get_405_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/api/uploads", headers=auth("ana"))
    assert response.status_code == 405
    assert response.text.startswith("ERR_METHOD_NOT_ALLOWED: ")
    assert "GET" in response.headers["allow"]


async def test_a_verdict_needs_no_tus_resumable_header(client: httpx.AsyncClient) -> None:
    """The API's POSTs are not tus requests: no 412 for a missing Tus-Resumable (the tus POST still gets it)."""
    upload_id = await create(client, "ana")
    response = await client.post(f"/api/uploads/{upload_id}/reject", headers=auth(ADMIN), json={"reason": "x"})
    assert response.status_code == 409  # judged, not refused as a tus request: it is unfinished
    assert (await client.post("/files/", headers=auth("ana") | {"Upload-Length": "1"})).status_code == 412


async def test_beside_uploads_at_the_root(make_app: MakeApp) -> None:
    """With uploads at "/<id>", "/api/..." stays the API's (more than one segment: never an upload id)."""
    async with open_client(make_app(base_path="/")) as client:
        created = await client.post("/", headers=auth("ana") | {"Tus-Resumable": "1.0.0", "Upload-Length": "1"})
        page = (await client.get("/api/uploads", headers=auth("ana"))).json()
        assert page["uploads"][0]["url"] == created.headers["location"]
        assert (
            await client.head(created.headers["location"], headers=auth("ana") | {"Tus-Resumable": "1.0.0"})
        ).status_code == 200


class Unlisted:
    """A state store of someone else's making, without `list_uploads`."""

    def __init__(self) -> None:
        self.records = MemoryStateStore()

    async def create(self, info: UploadInfo, *, events: Sequence[OutboxEvent] = ()) -> None:
        await self.records.create(info, events=events)

    async def get(self, upload_id: str) -> UploadInfo:
        return await self.records.get(upload_id)

    async def save(self, info: UploadInfo, *, lease: Lease | None = None, events: Sequence[OutboxEvent] = ()) -> None:
        await self.records.save(info, lease=lease, events=events)

    async def delete(self, upload_id: str, *, events: Sequence[OutboxEvent] = ()) -> None:
        await self.records.delete(upload_id, events=events)

    def expiring(self, before: datetime) -> AsyncIterator[str]:
        return self.records.expiring(before)

    async def aclose(self) -> None:
        await self.records.aclose()


@pytest.mark.parametrize("state_kind", ["custom"])
async def test_a_store_that_cannot_list_answers_501_and_still_shows_one(make_app: MakeApp) -> None:
    async with open_client(make_app(state=Unlisted())) as client:
        upload_id = await create(client, "ana")
        response = await client.get("/api/uploads", headers=auth("ana"))
        assert (response.status_code, response.text) == (
            501,
            "ERR_LISTING_UNSUPPORTED: the configured state store cannot list uploads\n",
        )
        assert (await client.get(f"/api/uploads/{upload_id}", headers=auth("ana"))).json()["id"] == upload_id

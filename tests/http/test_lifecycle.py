"""Issue 21, the upload life cycle through the ASGI app, with in-process hooks: uploading -> uploaded -> accepted or
rejected, with and without a verdict hook; a rejected upload's 403; tombstones of terminated, expired and
swept uploads (404 for tus requests, as before); partial uploads that expire once finished; legacy records."""

from __future__ import annotations

import base64
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from storage_backends.memory import MemoryStorage
from tests.http.asgi import open_client, upload_id
from tests.http.clock import START, FakeClock
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, error_code, run
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.context import TusContext
from tusserver.coordination.cleanup import remove_expired
from tusserver.coordination.hooks.dispatch import merge
from tusserver.coordination.hooks.model import HookHTTPResponse, HookRequest, HookResponse
from tusserver.protocol.lifecycle import judged
from tusserver.protocol.model import UploadInfo, UploadState

pytestmark = pytest.mark.anyio

DAY = 86400
README = Path(__file__).parents[2] / "README.md"


@dataclass
class Lab:
    """An app on memory storage and state, a fake clock, and a pre-finish hook answering `answer`."""

    client: httpx.AsyncClient
    tus: TusContext
    clock: FakeClock
    answer: HookResponse | None = None
    events: list[HookRequest] = field(default_factory=list)

    async def record(self, location: str) -> UploadInfo:
        return await self.tus.state.get(upload_id(location))

    async def upload(self, data: bytes, **headers: str) -> str:
        location = await create(self.client, len(data), **headers)
        await self.client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=data)
        return location

    @property
    def types(self) -> list[str]:
        return [event.Type for event in self.events]


@pytest.fixture
async def lab(tmp_path: Path) -> AsyncIterator[Lab]:
    clock = FakeClock()
    lab: Lab

    async def hook(request: HookRequest) -> HookResponse | None:
        lab.events.append(request)
        return lab.answer if request.Type == "pre-finish" else None

    events = ("pre-finish", "post-finish", "post-terminate")
    settings = Settings(data_dir=tmp_path, expiration=60, hooks_enabled_events=events)
    hooks = dict.fromkeys(events, hook)
    app = create_app(settings, storage=MemoryStorage(), state=MemoryStateStore(), hooks=hooks, clock=clock)
    async with open_client(app) as client:
        lab = Lab(client, app.state.tus, clock)
        yield lab
    await app.state.tus.aclose()


async def test_without_a_verdict_upload_is_accepted_at_once(lab: Lab) -> None:
    location = await create(lab.client, 5)
    assert (await lab.record(location)).state is UploadState.UPLOADING
    lab.clock.advance(3)
    await lab.client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=b"hello")
    info = await lab.record(location)
    assert (info.state, info.reason, info.finished_at) == (UploadState.ACCEPTED, None, lab.clock.now)
    assert lab.events[-1].Event.Upload.State == "accepted"  # what post-finish tells a receiver
    assert (await lab.client.get(location)).content == b"hello"


async def test_pre_finish_rejects_with_a_reason(lab: Lab) -> None:
    lab.answer = HookResponse(RejectUpload=True, Reason="virus found")
    location = await create(lab.client, 5)
    patched = await lab.client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=b"hello")
    assert (patched.status_code, patched.text) == (403, "ERR_UPLOAD_REJECTED: virus found\n")
    info = await lab.record(location)
    assert (info.state, info.reason, info.offset) == (UploadState.REJECTED, "virus found", 5)
    assert lab.types == ["pre-finish", "post-finish"]
    await run(lab.client, [
        Exchange("GET", location, {}, expect=403, expect_code="ERR_UPLOAD_REJECTED"),
        Exchange("HEAD", location, TUS, expect=403, expect_headers={"Upload-Offset": None}),  # tus §HEAD allows 403
        Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": "5"}, expect=403),
    ])  # fmt: skip
    assert (await lab.client.get(location)).text == "ERR_UPLOAD_REJECTED: virus found\n"


async def test_pre_finish_rejection_may_shape_its_own_answer(lab: Lab) -> None:
    shaped = HookHTTPResponse(StatusCode=422, Body="no scans of cats", Header={"X-Reason": "cat"})
    lab.answer = HookResponse(RejectUpload=True, Reason="a cat", HTTPResponse=shaped)
    location = await create(lab.client, 5)
    patched = await lab.client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=b"hello")
    assert (patched.status_code, patched.text, patched.headers["X-Reason"]) == (422, "no scans of cats", "cat")
    assert (await lab.client.get(location)).text == "ERR_UPLOAD_REJECTED: a cat\n"


async def test_hold_keeps_it_uploaded_until_an_admin_judges(lab: Lab) -> None:
    lab.answer = HookResponse(HoldUpload=True, Reason="manual review")
    location = await lab.upload(b"hello")
    info = await lab.record(location)
    assert (info.state, info.reason) == (UploadState.UPLOADED, "manual review")
    assert (await lab.client.get(location)).status_code == 200  # a reviewer may fetch it
    assert judged(info, accepted=True, reason="looks fine").state is UploadState.ACCEPTED  # the status API's


async def test_empty_upload_rejected_at_creation_answers_403_with_its_location(lab: Lab) -> None:
    lab.answer = HookResponse(RejectUpload=True, Reason="empty files are useless")
    response = await lab.client.post("/files/", headers=TUS | {"Upload-Length": "0"})
    assert (response.status_code, error_code(response)) == (403, "ERR_UPLOAD_REJECTED")
    assert (await lab.record(response.headers["Location"])).state is UploadState.REJECTED


async def test_rejected_upload_is_swept_and_its_tombstone_goes_later(lab: Lab) -> None:
    lab.answer = HookResponse(RejectUpload=True, Reason="virus found")
    location = await lab.upload(b"hello")
    assert await remove_expired(lab.tus, lab.clock.now) == [upload_id(location)]
    storage = lab.tus.storage
    assert isinstance(storage, MemoryStorage)
    assert not storage.blobs  # its bytes are gone
    info = await lab.record(location)
    assert (info.state, info.reason, info.removed_at) == (UploadState.REJECTED, "virus found", lab.clock.now)
    assert (await lab.client.get(location)).text == "ERR_UPLOAD_REJECTED: virus found\n"  # still says why
    lab.clock.advance(7 * DAY)  # --tombstone-retention's default
    assert await remove_expired(lab.tus, lab.clock.now) == [upload_id(location)]
    await run(lab.client, [Exchange("GET", location, {}, expect=404)])
    assert lab.types.count("post-terminate") == 1  # the sweep of its bytes, not the tombstone's


async def test_delete_leaves_a_terminated_tombstone(lab: Lab) -> None:
    location = await lab.upload(b"hello")
    await run(lab.client, [
        Exchange("DELETE", location, TUS, expect=204),
        Exchange("HEAD", location, TUS, expect=404),  # PROTOCOL.md item 69, as before tombstones
        Exchange("GET", location, {}, expect=404),
        Exchange("DELETE", location, TUS, expect=404),
    ])  # fmt: skip
    info = await lab.record(location)
    assert (info.state, info.removed_at, info.expires_at) == (
        UploadState.TERMINATED,
        lab.clock.now,
        lab.clock.now + timedelta(days=7),
    )
    assert lab.types.count("post-terminate") == 1


async def test_expired_upload_leaves_an_expired_tombstone(lab: Lab) -> None:
    location = await create(lab.client, 5)
    lab.clock.advance(61)
    assert await remove_expired(lab.tus, lab.clock.now) == [upload_id(location)]
    assert (await lab.record(location)).state is UploadState.EXPIRED
    await run(lab.client, [Exchange("HEAD", location, TUS, expect=404)])  # item 59: 404 after cleanup


async def test_without_tombstone_retention_records_go_with_their_bytes(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path, tombstone_retention=None)
    app = create_app(settings, storage=MemoryStorage(), state=MemoryStateStore())
    async with open_client(app) as client:
        location = await create(client, 5)
        await run(client, [Exchange("DELETE", location, TUS, expect=204)])
        assert not [upload async for upload in app.state.tus.state.expiring(START + timedelta(days=3650))]
        await run(client, [Exchange("HEAD", location, TUS, expect=404)])
    await app.state.tus.aclose()


async def test_joined_partials_expire_after_expiration(lab: Lab) -> None:
    """Issue 21, item 7: with no --retention, finished partials still go --expiration after their last byte;
    the final, which holds a copy of their bytes, is kept."""
    partials = [await lab.upload(data, **{"Upload-Concat": "partial"}) for data in (b"hel", b"lo")]
    paths = " ".join(httpx.URL(location).path for location in partials)
    final = (await lab.client.post("/files/", headers=TUS | {"Upload-Concat": f"final;{paths}"})).headers["Location"]
    expiries = [(await lab.record(location)).expires_at for location in partials]
    assert expiries == [lab.clock.now + timedelta(seconds=60)] * 2
    assert (await lab.record(final)).expires_at is None
    lab.clock.advance(60)
    assert sorted(await remove_expired(lab.tus, lab.clock.now)) == sorted(upload_id(p) for p in partials)
    assert (await lab.client.get(final)).content == b"hello"


async def test_rejected_partial_cannot_be_joined(lab: Lab) -> None:
    lab.answer = HookResponse(RejectUpload=True, Reason="virus found")
    partial = await lab.upload(b"hello", **{"Upload-Concat": "partial"})
    response = await lab.client.post("/files/", headers=TUS | {"Upload-Concat": f"final;{httpx.URL(partial).path}"})
    assert (response.status_code, error_code(response)) == (403, "ERR_UPLOAD_REJECTED")


async def test_legacy_record_reads_as_accepted(lab: Lab) -> None:
    """A record written before the life cycle (no state fields) is served as it was: accepted."""
    legacy = '{"id": "old", "length": 2, "offset": 2, "storage": {"backend": "memory", "key": "old"},'
    legacy += ' "created_at": "2026-01-01T00:00:00Z"}'
    await lab.tus.state.create(UploadInfo.model_validate_json(legacy))
    storage = lab.tus.storage
    assert isinstance(storage, MemoryStorage)
    storage.blobs["old"] = bytearray(b"ok")
    assert (await lab.client.get("/files/old")).content == b"ok"
    assert (await lab.client.head("/files/old", headers=TUS)).headers["Upload-Offset"] == "2"


def test_hook_answers_decode_the_verdict_fields_as_go_would() -> None:
    """tusd's decoding rules (case-insensitive names), so receivers written in any case work."""
    answer = HookResponse.decode(b'{"rejectupload": true, "REASON": "virus", "holdUpload": false}')
    assert (answer.RejectUpload, answer.Reason, answer.HoldUpload) == (True, "virus", False)


def readme_blocks(section: str, language: str) -> list[str]:
    """The fenced `language` blocks of the README's `section` (a "## " heading), in order."""
    text = README.read_text().split(f"\n## {section}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def metadata(**pairs: str) -> str:
    return ",".join(f"{key} {base64.b64encode(value.encode()).decode()}" for key, value in pairs.items())


async def test_readme_pre_finish_hook(tmp_path: Path) -> None:
    """README "Upload life cycle": the in-process verdict hook, as written."""
    namespace: dict[str, object] = {}
    exec(readme_blocks("Upload life cycle", "python")[0], namespace)
    hook = namespace["pre_finish"]
    app = create_app(Settings(data_dir=tmp_path), storage=MemoryStorage(), hooks={"pre-finish": hook})  # type: ignore[dict-item]
    cases = [
        (metadata(filetype="application/x-msdownload", license="CC0"), 403, UploadState.REJECTED),
        (metadata(filetype="image/tiff"), 204, UploadState.UPLOADED),
        (metadata(filetype="image/tiff", license="CC-BY-4.0"), 204, UploadState.ACCEPTED),
    ]
    async with open_client(app) as client:
        for pairs, status, state in cases:
            location = await create(client, 2, **{"Upload-Metadata": pairs})
            patched = await client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, content=b"ok")
            assert patched.status_code == status
            assert (await app.state.tus.state.get(upload_id(location))).state is state
    await app.state.tus.aclose()


def test_readme_http_answer_is_a_rejection() -> None:
    """README "Upload life cycle": the JSON a receiver answers (run end to end in tests/e2e/test_lifecycle_e2e.py)."""
    answer = HookResponse.decode(readme_blocks("Upload life cycle", "json")[0])
    assert (answer.RejectUpload, answer.Reason) == (True, "executables are not accepted")


def test_verdicts_of_several_transports_merge_rejection_first() -> None:
    """In-process, HTTP and file hooks at once: any rejection wins, with its reason; then a hold."""
    answers = [HookResponse(HoldUpload=True, Reason="review"), HookResponse(RejectUpload=True, Reason="virus")]
    merged = merge([*answers, HookResponse(Reason="fine")])
    assert (merged.RejectUpload, merged.HoldUpload, merged.Reason) == (True, True, "virus")
    held = merge([HookResponse(Reason="fine"), HookResponse(HoldUpload=True, Reason="review")])
    assert (held.RejectUpload, held.HoldUpload, held.Reason) == (False, True, "review")

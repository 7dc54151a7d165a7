"""examples/fastapi_jobs.py (issue 24, item 3): tusserver mounted in FastAPI with bearer tokens and in-process
hooks; a finished upload's processing job runs, and only its owner reads its status."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator
from pathlib import Path
from types import ModuleType

import anyio
import httpx
import jwt
import pytest

from tests.test_examples import import_fresh

pytestmark = pytest.mark.anyio

SECRET = "a-secret-of-at-least-32-bytes-long"  # as the example's header comment runs it


def token(user: str) -> dict[str, str]:
    signed = jwt.encode({"sub": user, "exp": int(time.time()) + 600}, SECRET, algorithm="HS256")
    return {"Authorization": f"Bearer {signed}"}


@pytest.fixture
async def portal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[ModuleType, httpx.AsyncClient]]:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("TUS_JWT_SECRET", SECRET)
    example = import_fresh("examples.fastapi_jobs")
    async with example.app.router.lifespan_context(example.app):
        transport = httpx.ASGITransport(app=example.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            yield example, client


async def upload(client: httpx.AsyncClient, user: str, body: bytes) -> str:
    tus = {"Tus-Resumable": "1.0.0", **token(user)}
    created = await client.post("/uploads/", headers={**tus, "Upload-Length": str(len(body))})
    assert created.status_code == 201, created.text
    location = created.headers["location"]
    patched = await client.patch(location, headers={**tus, "Upload-Offset": "0",
                                 "Content-Type": "application/offset+octet-stream"}, content=body)  # fmt: skip
    assert patched.status_code == 204, patched.text
    return location.rstrip("/").rsplit("/", 1)[-1]


async def test_a_finished_upload_runs_its_job_and_only_its_owner_reads_it(
    portal: tuple[ModuleType, httpx.AsyncClient],
) -> None:
    example, client = portal
    body = b"ACGT" * 10_000
    upload_id = await upload(client, "alice", body)
    with anyio.fail_after(10):  # post-finish comes after the answer: poll the job as its owner would
        while (mine := await client.get(f"/jobs/{upload_id}", headers=token("alice"))).status_code == 404:  # noqa: ASYNC110
            await anyio.sleep(0.01)
        await example.jobs[upload_id].finished.wait()
        mine = await client.get(f"/jobs/{upload_id}", headers=token("alice"))
    assert mine.status_code == 200
    assert mine.json() == {"upload": upload_id, "state": "done", "sha256": hashlib.sha256(body).hexdigest(),
                           "size": len(body)}  # fmt: skip
    assert (await client.get(f"/jobs/{upload_id}", headers=token("bob"))).status_code == 404  # not bob's
    assert (await client.get(f"/jobs/{upload_id}")).status_code == 401


async def test_uploads_need_a_token_and_stay_their_owners(portal: tuple[ModuleType, httpx.AsyncClient]) -> None:
    _, client = portal
    refused = await client.post("/uploads/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "3"})
    assert refused.status_code == 401
    upload_id = await upload(client, "alice", b"abc")
    head = await client.head(f"/uploads/{upload_id}", headers={"Tus-Resumable": "1.0.0", **token("bob")})
    assert head.status_code == 404

"""A small data portal in FastAPI: tusserver mounted with bearer tokens and in-process hooks; when an upload
finishes, a processing job runs (here: its SHA-256 and size), and each user reads the status of their own jobs.

Needs: pip install fastapi "tusserver[auth]"
Run: TUS_JWT_SECRET=a-secret-of-at-least-32-bytes-long uvicorn examples.fastapi_jobs:app --port 8080
Upload to http://127.0.0.1:8080/uploads/ with `Authorization: Bearer <token>` (HS256 with that secret, the
user in `sub`), then GET http://127.0.0.1:8080/jobs/<upload id> with the same header.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import anyio
import anyio.to_thread
import jwt
from anyio.abc import TaskGroup
from fastapi import FastAPI, Header, HTTPException

from tusserver import HookRequest, Settings, create_app

SECRET = os.environ.get("TUS_JWT_SECRET", "")


@dataclass
class Job:
    """What became of one finished upload's processing."""

    owner: str | None
    state: str = "queued"  # queued, running, done, failed
    result: dict[str, object] = field(default_factory=dict)
    finished: anyio.Event = field(default_factory=anyio.Event)


jobs: dict[str, Job] = {}
background: list[TaskGroup] = []  # the app's task group, while it runs


async def post_finish(request: HookRequest) -> None:
    """A finished upload: queue its job (once: the event may come twice, with the same upload) and return at
    once, so the hook does not hold up the server's other events."""
    upload = request.Event.Upload
    if upload.ID in jobs or not background:
        return
    jobs[upload.ID] = job = Job(owner=upload.Owner)
    background[0].start_soon(process, job, Path((upload.Storage or {}).get("Path", "")))


async def process(job: Job, path: Path) -> None:
    job.state = "running"
    try:
        job.result = await anyio.to_thread.run_sync(summarize, path)  # off the event loop
        job.state = "done"
    except OSError as exc:
        job.state, job.result = "failed", {"error": str(exc)}
    job.finished.set()


def summarize(path: Path) -> dict[str, object]:
    digest, size = hashlib.sha256(), 0
    with path.open("rb") as file:
        while chunk := file.read(1 << 20):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


tus = create_app(Settings(base_path="/", data_dir="data", auth_jwt_secret=SECRET), hooks={"post-finish": post_finish})


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    async with tus.router.lifespan_context(tus), anyio.create_task_group() as tasks:
        background.append(tasks)
        yield
        background.clear()
        tasks.cancel_scope.cancel()


app = FastAPI(lifespan=lifespan)
app.mount("/uploads", tus)


@app.get("/jobs/{upload_id}")
async def job_status(upload_id: str, authorization: str = Header(default="")) -> dict[str, object]:
    """The job of one of the caller's uploads; another user's is as missing as one that does not exist."""
    scheme, _, token = authorization.partition(" ")
    try:
        user = jwt.decode(token, SECRET, algorithms=["HS256"], options={"require": ["exp", "sub"]})["sub"]
    except jwt.InvalidTokenError:
        raise HTTPException(401, "a valid bearer token is needed", {"WWW-Authenticate": "Bearer"}) from None
    job = jobs.get(upload_id)
    if scheme.lower() != "bearer" or job is None or job.owner != user:
        raise HTTPException(404, "no such job")
    return {"upload": upload_id, "state": job.state, **job.result}

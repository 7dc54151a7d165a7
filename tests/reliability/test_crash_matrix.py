"""Issue 19: kill -9 at random points of every write, on every backend; nothing acknowledged is lost.

Each trial starts a real `tusserver`, begins one operation (creation-with-upload, a PATCH, the PATCH that
completes an upload, the join of a final upload, a DELETE), kills the server with SIGKILL after a random part
of the body and a random moment (the sleeps pick the crash point; they hide no race), and starts it again on
the same storage and state. Then: the offset is never ahead of what the client sent, [0, offset) is exactly
what it sent (resuming from there ends byte-exact), and after the sweep of what no record names
(`remove_orphans`) the storage holds nothing but the uploads' own bytes.

Seeded: `TUSSERVER_CRASH_SEED` (default 19) and `TUSSERVER_CRASH_TRIALS` trials per scenario and backend
(default 1 in the test command; the full run: `TUSSERVER_CRASH_TRIALS=20 .ci/test tests/reliability`).
"""

from __future__ import annotations

import os
import random
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import anyio
import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    TUS,
    MiB,
    ServerProcess,
    connect,
    create_upload,
    head_offset,
    launch,
    patch,
    raw_request,
    send_all,
    target_of,
    upload_id,
)
from tests.e2e.test_azure_e2e import Container
from tests.e2e.test_s3_e2e import Bucket, kill_server
from tests.redis_server import RedisServer
from tests.s3_server import aws_environment
from tusserver.app import create_app
from tusserver.context import TusContext
from tusserver.coordination.cleanup import remove_orphans
from tusserver.serving.cli import parse_args

pytestmark = pytest.mark.e2e

SEED = int(os.environ.get("TUSSERVER_CRASH_SEED", "19"))
TRIALS = int(os.environ.get("TUSSERVER_CRASH_TRIALS", "1"))


@dataclass
class Backend:
    """How to start a server on one storage and state, again and again on the same ones."""

    name: str
    workdir: Path
    flags: tuple[str, ...]
    bucket: Bucket | None = None
    container: Container | None = None
    size: int = 3 * MiB  # an upload: over the 1 MiB from which bodies are spliced, several S3 parts on S3
    starts: int = 0

    def start(self) -> ServerProcess:
        self.starts += 1
        env = aws_environment() if self.bucket else None
        server = launch(self.workdir / f"run{self.starts}", *self.flags, env=env)
        server = replace(server, data_dir=self.workdir / "data")
        server.wait_ready()
        return server

    async def sweep(self) -> None:
        """What `tusserver cleanup` does to what no record names, without waiting a day for it to age."""
        settings = parse_args(list(self.flags), aws_environment() if self.bucket else {})
        tus: TusContext = create_app(settings).state.tus
        try:
            await remove_orphans(tus, older_than=0)
        finally:
            await tus.aclose()

    def upload_ids(self) -> set[str]:
        """The ids of the uploads the storage holds bytes of."""
        if self.container is not None:
            names = self.container.names(uncommitted=True)
            return {name.removeprefix(self.container.prefix).split(".", 1)[0] for name in names}
        if self.bucket is not None:
            listing = self.bucket.client.list_multipart_uploads(Bucket=self.bucket.name, Prefix=self.bucket.prefix)
            keys = self.bucket.keys() + [item["Key"] for item in listing.get("Uploads", [])]
            return {key.removeprefix(self.bucket.prefix).split(".", 1)[0] for key in keys}
        directory = self.workdir / "data" / "uploads"
        return {path.name.split(".", 1)[0] for path in directory.iterdir()} if directory.exists() else set()

    def leftovers(self, finished: set[str]) -> list[str]:
        """What the storage holds besides the bytes of the finished uploads `finished` (their ids)."""
        if self.container is not None:  # blobs, tails, and blobs with uncommitted blocks only
            keys = [name.removeprefix(self.container.prefix) for name in self.container.names(uncommitted=True)]
        elif self.bucket is not None:
            object_keys = self.bucket.keys()
            keys = [key.removeprefix(self.bucket.prefix) for key in object_keys]
            listing = self.bucket.client.list_multipart_uploads(Bucket=self.bucket.name, Prefix=self.bucket.prefix)
            keys += [f"multipart:{item['Key']}" for item in listing.get("Uploads", [])]
        else:
            keys = [path.name for path in (self.workdir / "data" / "uploads").iterdir()]
        return sorted(set(keys) - finished)


@pytest.fixture(params=["local", "s3", "azure", "local-redis"])
def backend(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Backend]:
    data = ("--data-dir", str(tmp_path / "data"), "--server", "uvicorn", "--checkpoint-size", "1M")
    if request.param == "local":
        yield Backend("local", tmp_path, data)
    elif request.param == "local-redis":
        redis: RedisServer = request.getfixturevalue("redis_server")
        prefix = f"crash{secrets.token_hex(4)}:"
        # --lock-ttl 1: the killed server's locks lapse within a second
        yield Backend(
            "local-redis", tmp_path, (*data, "--redis-url", redis.url, "--redis-prefix", prefix, "--lock-ttl", "1")
        )
    elif request.param == "azure":
        container: Container = request.getfixturevalue("azure_container")
        yield Backend("azure", tmp_path, (*data, *container.flags("--azure-block-size", "1M")), container=container)
    else:
        request.getfixturevalue("aws_credentials")  # for the sweep, which runs in this process
        bucket: Bucket = request.getfixturevalue("s3_bucket")
        yield Backend("s3", tmp_path, (*data, *bucket.flags("--s3-part-size", "5M")), bucket, size=12 * MiB)


@dataclass
class Outcome:
    """What one crashed operation leaves to check: the upload the client knows of, and its bytes."""

    location: str | None  # None: the client never learned it
    data: bytes
    sent: int  # bytes of `data` the client sent before the crash (the offset is never past them)
    partials: tuple[str, ...] = ()  # a final upload's, which the client POSTs again


def send_then_crash(server: ServerProcess, rng: random.Random, request: bytes) -> None:
    """Send `request` and SIGKILL the server at a random moment while it works on it."""
    with connect(server) as sock:
        send_all(sock, request)
        time.sleep(rng.uniform(0, 0.05))  # the crash point
        kill_server(server)


def crash_patch(server: ServerProcess, rng: random.Random, size: int, *, completing: bool) -> Outcome:
    """A PATCH (the one that completes the upload, with `completing`) cut at a random byte, then a crash."""
    data = os.urandom(size)
    location = create_upload(server, size)
    start = size - rng.randrange(1, MiB) if completing else rng.randrange(0, size // 2)
    if start:
        assert patch(location, 0, data[:start]).status_code == 204
    end = size if completing else rng.randrange(start, size + 1)
    head = PATCH_HEADERS | {"Upload-Offset": str(start), "Content-Length": str(size - start)}
    send_then_crash(server, rng, raw_request("PATCH", target_of(location), head) + data[start:end])
    return Outcome(location, data, end)


def crash_creation_with_upload(server: ServerProcess, rng: random.Random, size: int) -> Outcome:
    """A POST with a body, cut at a random byte, then a crash: the client never learns the upload's URL."""
    data = os.urandom(size)
    end = rng.randrange(0, size + 1)
    head = PATCH_HEADERS | {"Upload-Length": str(size), "Content-Length": str(size)}
    send_then_crash(server, rng, raw_request("POST", target_of(server.url), head) + data[:end])
    return Outcome(None, data, end)


def crash_join(server: ServerProcess, rng: random.Random, size: int) -> Outcome:
    """The POST of a final upload (joined at once: its partials are finished), then a crash."""
    datas = [os.urandom(size // 2), os.urandom(size // 3)]
    partials = []
    for data in datas:
        location = create_upload(server, len(data), {"Upload-Concat": "partial"})
        assert patch(location, 0, data).status_code == 204
        partials.append(target_of(location))
    head = TUS | {"Upload-Concat": "final;" + " ".join(partials)}
    send_then_crash(server, rng, raw_request("POST", target_of(server.url), head))
    return Outcome(None, datas[0] + datas[1], len(datas[0]) + len(datas[1]), tuple(partials))


def crash_delete(server: ServerProcess, rng: random.Random, size: int) -> Outcome:
    """A DELETE of an unfinished upload, then a crash: after the restart it is gone, or DELETE finishes it."""
    location = create_upload(server, size)
    assert patch(location, 0, os.urandom(size // 2)).status_code == 204
    send_then_crash(server, rng, raw_request("DELETE", target_of(location), TUS))
    return Outcome(location, b"", 0)


SCENARIOS: dict[str, Callable[[ServerProcess, random.Random, int], Outcome]] = {
    "patch": lambda server, rng, size: crash_patch(server, rng, size, completing=False),
    "completing-patch": lambda server, rng, size: crash_patch(server, rng, size, completing=True),
    "creation-with-upload": crash_creation_with_upload,
    "join": crash_join,
    "delete": crash_delete,
}


def resume(server: ServerProcess, backend: Backend, outcome: Outcome, known: set[str]) -> set[str]:
    """After the restart: check each upload the crash left, finish it from its recorded offset; returns the
    ids of the finished uploads it leaves."""
    if outcome.partials:  # the client POSTs the final again: the same upload (its id derives from the partials)
        head = TUS | {"Upload-Concat": "final;" + " ".join(outcome.partials)}
        response = requests.post(server.url, headers=head, timeout=IO_TIMEOUT)
        assert response.status_code == 201, response.text
        location = requests.compat.urljoin(server.url, response.headers["Location"])
        return {finish(location, outcome), *(upload_id(part) for part in outcome.partials)}
    if outcome.location is None:  # lost with the crash: any upload it created must still hold its promises
        found = [server.url + key for key in backend.upload_ids() - known]
        alive = [location for location in found if requests.head(location, headers=TUS, timeout=IO_TIMEOUT).ok]
        return {finish(location, outcome) for location in alive}  # the rest is the sweep's
    location = server.url + upload_id(outcome.location)
    if not outcome.data:  # deleted, or deleted now
        assert requests.delete(location, headers=TUS, timeout=IO_TIMEOUT).status_code in {204, 404, 410}
        assert requests.head(location, headers=TUS, timeout=IO_TIMEOUT).status_code in {404, 410}
        return set()
    return {finish(location, outcome)}


def finish(location: str, outcome: Outcome) -> str:
    """The offset is never ahead of what the client sent; finishing from it gives exactly the client's bytes."""
    offset = head_offset(location)
    assert offset <= outcome.sent
    if offset < len(outcome.data):
        response = patch(location, offset, outcome.data[offset:])
        assert response.status_code == 204, response.text
    download = requests.get(location, headers=TUS, timeout=IO_TIMEOUT)
    assert download.status_code == 200
    assert download.content == outcome.data  # so [0, offset) was exactly what the client sent
    return upload_id(location)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_kill_9_loses_no_acknowledged_byte(backend: Backend, scenario: str) -> None:
    finished: set[str] = set()
    for trial in range(TRIALS):
        rng = random.Random(f"{SEED}:{backend.name}:{scenario}:{trial}")
        known = backend.upload_ids()
        outcome = SCENARIOS[scenario](backend.start(), rng, backend.size)
        server = backend.start()
        try:
            finished |= resume(server, backend, outcome, known)
        finally:
            server.stop()
            assert "Traceback" not in server.log(), server.log()
    anyio.run(backend.sweep)
    assert backend.leftovers(finished) == []

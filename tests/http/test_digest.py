"""Issue 21, the whole-file digest through the ASGI app, on local files, S3 (SeaweedFS) and Azure (Azurite): a
digest declared in metadata (`checksum`) is verified after the last byte, without reading the file again when
this process hashed it on the way, with one streamed read when it did not (another instance took the start, a
final's join); a mismatch rejects the upload; finished uploads carry `Repr-Digest` on GET and HEAD."""

from __future__ import annotations

import base64
import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.azure.store import AzureBlobStorage
from storage_backends.base import StorageBackend, StorageRef
from storage_backends.local import LocalStorage
from storage_backends.memory import MemoryStorage
from storage_backends.s3.store import S3Storage
from tests.http.asgi import open_client, upload_id
from tests.http.transcript import PATCH_HEADERS, TUS, create, error_code
from tusserver import MemoryStateStore, Settings, create_app
from tusserver.coordination.hooks.dispatch import InProcessHook
from tusserver.coordination.hooks.model import HookRequest, HookResponse
from tusserver.protocol.checksums import new_hasher
from tusserver.protocol.model import UploadInfo, UploadState

pytestmark = pytest.mark.anyio

DATA = b"hello, research data " * 1000
SHA256 = base64.b64encode(hashlib.sha256(DATA).digest()).decode()


def declared(algorithm: str, digest: bytes | str) -> dict[str, str]:
    """Upload-Metadata declaring the file's digest: `checksum` = "<algorithm> <base64>", base64 again in the header."""
    value = digest if isinstance(digest, str) else base64.b64encode(digest).decode()
    return {"Upload-Metadata": "checksum " + base64.b64encode(f"{algorithm} {value}".encode()).decode()}


SHA256_DECLARED = declared("sha256", SHA256)
WRONG_DECLARED = declared("sha256", hashlib.sha256(b"something else").digest())


@dataclass
class Reads:
    """Every `read` the storage was asked for (the downloads' too)."""

    calls: list[tuple[int, int | None]] = field(default_factory=list)


@pytest.fixture(params=["local", "s3", "azure"])
async def storage(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[StorageBackend]:
    """Local files, S3 (SeaweedFS) and Azure Blob (Azurite): the digest lives in the record, the read back goes
    through the storage contract, so every backend gets both."""
    if request.param == "local":
        yield LocalStorage(tmp_path / "files")
        return
    fixture = {"s3": "s3_storage_on_seaweedfs", "azure": "azure_storage"}[request.param]
    remote: S3Storage | AzureBlobStorage = request.getfixturevalue(fixture)
    yield remote
    await remote.aclose()


@pytest.fixture
def reads(storage: StorageBackend, monkeypatch: pytest.MonkeyPatch) -> Reads:
    seen = Reads()
    original = storage.read

    def read(ref: StorageRef, start: int = 0, end: int | None = None) -> AsyncIterator[bytes]:
        seen.calls.append((start, end))
        return original(ref, start, end)

    monkeypatch.setattr(storage, "read", read)
    return seen


@pytest.fixture
def state() -> MemoryStateStore:
    return MemoryStateStore()


def app_on(storage: StorageBackend, state: MemoryStateStore, tmp: Path, **hooks: InProcessHook) -> Starlette:
    """An instance on the shared storage and state: two of them are two server instances."""
    return create_app(Settings(data_dir=tmp), storage=storage, state=state, hooks=hooks)


@pytest.fixture
async def client(storage: StorageBackend, state: MemoryStateStore, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(app_on(storage, state, tmp_path / "one")) as client:
        yield client


@pytest.fixture
async def other(storage: StorageBackend, state: MemoryStateStore, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    """A second instance on the same storage and state (no sticky sessions)."""
    async with open_client(app_on(storage, state, tmp_path / "two")) as client:
        yield client


async def patch(client: httpx.AsyncClient, location: str, offset: int, data: bytes) -> httpx.Response:
    return await client.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": str(offset)}, content=data)


async def upload_in_two(first: httpx.AsyncClient, second: httpx.AsyncClient, **headers: str) -> httpx.Response:
    """Create on `first`, send the first half there and the rest through `second`; the last PATCH's answer."""
    location = await create(first, len(DATA), **headers)
    assert (await patch(first, location, 0, DATA[:7000])).status_code == 204
    return await patch(second, location, 7000, DATA[7000:])


async def record(state: MemoryStateStore, response: httpx.Response) -> UploadInfo:
    return await state.get(upload_id(str(response.request.url)))


async def test_digest_hashed_on_the_way_needs_no_read_back(
    client: httpx.AsyncClient, state: MemoryStateStore, reads: Reads
) -> None:
    finished = await upload_in_two(client, client, **SHA256_DECLARED)
    assert finished.status_code == 204
    assert reads.calls == []  # in order, in one process: checked as it arrived
    info = await record(state, finished)
    assert (info.state, info.digest) == (UploadState.ACCEPTED, f"sha256 {SHA256}")
    location = str(finished.request.url)
    assert (await client.head(location, headers=TUS)).headers["Repr-Digest"] == f"sha-256=:{SHA256}:"
    download = await client.get(location)
    assert (download.content, download.headers["Repr-Digest"]) == (DATA, f"sha-256=:{SHA256}:")


async def test_wrong_digest_rejects_the_upload(client: httpx.AsyncClient, state: MemoryStateStore) -> None:
    finished = await upload_in_two(client, client, **WRONG_DECLARED)
    assert (finished.status_code, error_code(finished)) == (403, "ERR_UPLOAD_REJECTED")
    assert f"the file's sha256 is {SHA256}" in finished.text
    info = await record(state, finished)
    assert (info.state, info.digest) == (UploadState.REJECTED, None)
    assert (await client.get(str(finished.request.url))).status_code == 403


@pytest.mark.parametrize(("metadata", "state_after"), [(SHA256_DECLARED, "accepted"), (WRONG_DECLARED, "rejected")])
async def test_digest_is_read_back_once_when_another_instance_took_the_start(
    client: httpx.AsyncClient,
    other: httpx.AsyncClient,
    state: MemoryStateStore,
    reads: Reads,
    metadata: dict[str, str],
    state_after: str,
) -> None:
    finished = await upload_in_two(client, other, **metadata)
    assert finished.status_code == (204 if state_after == "accepted" else 403)
    assert reads.calls == [(0, len(DATA))]  # one streamed read of the whole file
    assert (await record(state, finished)).state == state_after


async def test_final_upload_digest_is_read_back_after_the_join(
    client: httpx.AsyncClient, state: MemoryStateStore, reads: Reads
) -> None:
    partials = []
    for piece in (DATA[:9000], DATA[9000:]):
        location = await create(client, len(piece), **{"Upload-Concat": "partial"})
        await patch(client, location, 0, piece)
        partials.append(httpx.URL(location).path)
    headers = TUS | SHA256_DECLARED | {"Upload-Concat": "final;" + " ".join(partials)}
    final = await client.post("/files/", headers=headers)
    assert final.status_code == 201
    assert reads.calls == [(0, len(DATA))]
    assert (await state.get(upload_id(final.headers["Location"]))).digest == f"sha256 {SHA256}"
    assert (await client.get(final.headers["Location"])).headers["Repr-Digest"] == f"sha-256=:{SHA256}:"


# --- memory only: what is decided before or beside the storage ---------------------------------------------------


@pytest.fixture
def memory() -> MemoryStorage:
    return MemoryStorage()


@pytest.fixture
async def on_memory(memory: MemoryStorage, state: MemoryStateStore, tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(app_on(memory, state, tmp_path)) as client:
        yield client


async def test_checksum_mismatch_460_keeps_the_running_hash(
    on_memory: httpx.AsyncClient, memory: MemoryStorage, state: MemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk discarded for its Upload-Checksum was hashed but not recorded: the hash goes back to before it."""
    monkeypatch.setattr(memory, "read", None)  # any read back would fail the test
    location = await create(on_memory, len(DATA), **SHA256_DECLARED)
    await patch(on_memory, location, 0, DATA[:7000])
    wrong = PATCH_HEADERS | {"Upload-Offset": "7000", "Upload-Checksum": "sha1 " + "A" * 27 + "="}
    assert (await on_memory.patch(location, headers=wrong, content=DATA[7000:])).status_code == 460
    assert (await patch(on_memory, location, 7000, DATA[7000:])).status_code == 204
    assert (await state.get(upload_id(location))).digest == f"sha256 {SHA256}"


@pytest.mark.parametrize(
    ("algorithm", "header"),
    [("xxh64", None), ("crc32", None), ("md5", "md5"), ("sha1", "sha"), ("sha512", "sha-512")],
)
async def test_any_checksum_algorithm_may_be_declared(
    on_memory: httpx.AsyncClient, state: MemoryStateStore, algorithm: str, header: str | None
) -> None:
    """Algorithms without an RFC 9530 key keep their digest in the record only (the status API)."""
    hasher = new_hasher(algorithm)
    hasher.update(DATA)
    location = await create(on_memory, len(DATA), **declared(algorithm, hasher.digest()))
    assert (await patch(on_memory, location, 0, DATA)).status_code == 204
    encoded = base64.b64encode(hasher.digest()).decode()
    assert (await state.get(upload_id(location))).digest == f"{algorithm} {encoded}"
    head = await on_memory.head(location, headers=TUS)
    assert head.headers.get("Repr-Digest") == (f"{header}=:{encoded}:" if header else None)


async def test_digest_that_cannot_be_checked_is_refused_at_creation(on_memory: httpx.AsyncClient) -> None:
    response = await on_memory.post("/files/", headers=TUS | {"Upload-Length": "5"} | declared("md4", b"x"))
    assert (response.status_code, error_code(response)) == (400, "ERR_INVALID_METADATA")


@pytest.mark.parametrize(("digest", "status"), [(hashlib.sha256(b"").digest(), 201), (b"\0" * 32, 403)])
async def test_empty_upload_is_checked_at_creation(on_memory: httpx.AsyncClient, digest: bytes, status: int) -> None:
    response = await on_memory.post("/files/", headers=TUS | {"Upload-Length": "0"} | declared("sha256", digest))
    assert response.status_code == status


async def test_creation_with_upload_is_hashed_on_the_way(
    on_memory: httpx.AsyncClient, memory: MemoryStorage, state: MemoryStateStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory, "read", None)
    headers = PATCH_HEADERS | {"Upload-Length": str(len(DATA))} | SHA256_DECLARED
    response = await on_memory.post("/files/", headers=headers, content=DATA)
    assert response.status_code == 201
    assert (await state.get(upload_id(response.headers["Location"]))).state is UploadState.ACCEPTED


async def test_checks_that_stopped_half_way_finish_at_the_next_get(
    memory: MemoryStorage, state: MemoryStateStore, tmp_path: Path
) -> None:
    """A read back, then a failing pre-finish: 503 for the last PATCH, the upload recorded `uploaded` with its
    verified digest; the next GET asks pre-finish again (no second read) and serves the accepted upload."""
    failures = [RuntimeError("the receiver is down")]

    async def pre_finish(request: HookRequest) -> HookResponse | None:
        if failures:
            raise failures.pop()
        return None

    hooks: dict[str, InProcessHook] = {"pre-finish": pre_finish}
    settings = Settings(data_dir=tmp_path, hooks_enabled_events=("pre-finish",))
    second = create_app(settings, storage=memory, state=state, hooks=hooks)
    async with open_client(app_on(memory, state, tmp_path / "a")) as first, open_client(second) as then:
        finished = await upload_in_two(first, then, **SHA256_DECLARED)
        assert finished.status_code == 503
        info = await record(state, finished)
        assert (info.state, info.reason, info.digest) == (UploadState.UPLOADED, None, f"sha256 {SHA256}")
        download = await then.get(str(finished.request.url))
        assert (download.status_code, download.content) == (200, DATA)
    assert (await record(state, finished)).state is UploadState.ACCEPTED


async def test_final_upload_with_a_wrong_digest_is_rejected_at_its_post(
    on_memory: httpx.AsyncClient, state: MemoryStateStore
) -> None:
    location = await create(on_memory, len(DATA), **{"Upload-Concat": "partial"})
    await patch(on_memory, location, 0, DATA)
    headers = TUS | WRONG_DECLARED | {"Upload-Concat": f"final;{httpx.URL(location).path}"}
    final = await on_memory.post("/files/", headers=headers)
    assert (final.status_code, error_code(final)) == (403, "ERR_UPLOAD_REJECTED")
    assert (await state.get(upload_id(final.headers["Location"]))).state is UploadState.REJECTED
    assert (await on_memory.post("/files/", headers=headers)).status_code == 403  # a retried POST: the same upload

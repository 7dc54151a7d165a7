"""Redis mode through the ASGI app (issue 6): apps on one Redis and one MemoryStorage act as instances of one
cluster. State, locks and release requests cross between them only through Redis; Redis being unreachable
is a 503; Redis round trips per request are counted on the client."""

from __future__ import annotations

import contextlib
import logging
import secrets
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from redis import Redis as SyncRedis
from redis import exceptions as redis_errors
from redis.asyncio import Redis
from redis.asyncio.client import Pipeline
from starlette.applications import Starlette

from storage_backends.base import StorageRef
from storage_backends.memory import MemoryStorage
from tests.http.asgi import Captured, ScriptedReceive, asgi_call, chunk, open_client, patch_scope, upload_id
from tests.http.conftest import AppFactory
from tests.http.doubles import CompletionRecorder
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run
from tests.redis_server import RedisServer
from tests.server_process import free_ports
from tests.tls import self_signed_certificate
from tusserver import Settings, create_app
from tusserver.context import utcnow
from tusserver.coordination.redis_locking import RedisLocker
from tusserver.coordination.state.redis import RedisStateStore
from tusserver.protocol.errors import OffsetMismatchError
from tusserver.protocol.model import UploadInfo

pytestmark = pytest.mark.anyio

Sent = list[tuple[str, str]]  # (command, first key) of every command sent through a client


@pytest.fixture
def prefix() -> str:
    """A key prefix of this test's own, so tests never see each other's keys."""
    return f"t{secrets.token_hex(4)}:"


@pytest.fixture
async def make_redis_app(
    redis_server: RedisServer, storage: MemoryStorage, tmp_path: Path, prefix: str
) -> AsyncIterator[AppFactory]:
    """`make_redis_app(**settings)`: an instance on the shared Redis and the shared MemoryStorage."""
    apps: list[Starlette] = []

    def factory(**settings: Any) -> Starlette:
        settings = {"redis_url": redis_server.url, "redis_prefix": prefix} | settings
        apps.append(create_app(Settings(data_dir=tmp_path / "data", **settings), storage=storage))
        return apps[-1]

    yield factory
    for app in apps:
        await app.state.tus.aclose()  # closes each instance's Redis client (httpx runs no lifespan)


def patch_step(location: str, offset: int, body: bytes, expect: int = 204) -> Exchange:
    return Exchange("PATCH", location, PATCH_HEADERS | {"Upload-Offset": str(offset)}, body, expect=expect)


def head_step(location: str, offset: int) -> Exchange:
    return Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": str(offset)})


async def stall_on(app: Starlette, location: str, then: Callable[[], Awaitable[object]]) -> Captured:
    """A PATCH on `app` sends b"hello" and stalls; once the bytes are stored, await `then()`.

    Returns the stalled PATCH's response.
    """
    stalled, receive = Captured(), ScriptedReceive([chunk(b"hello")])
    with anyio.fail_after(5):  # a stall that nothing interrupts fails instead of hanging
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(asgi_call, app, patch_scope(location, 0), receive, stalled)
            await receive.exhausted.wait()
            await then()
    return stalled


async def eventually(check: Callable[[], Awaitable[bool]], *, what: str, timeout: float = 5.0) -> None:
    """Poll `check` until it holds; fail after `timeout` seconds."""
    with anyio.fail_after(timeout):
        while not await check():  # noqa: ASYNC110  # Redis state has no event to wait on
            await anyio.sleep(0.01)


# --- one instance, and two sharing Redis -----------------------------------------------------------------------


async def test_create_patch_head_round_trip(make_redis_app: AppFactory, storage: MemoryStorage) -> None:
    async with open_client(make_redis_app()) as client:
        location = await create(client, 10)
        await run(client, [patch_step(location, 0, b"helloworld"), head_step(location, 10)])
    assert storage.blobs[upload_id(location)] == b"helloworld"


async def test_upload_started_on_one_instance_resumes_on_another(
    make_redis_app: AppFactory, storage: MemoryStorage
) -> None:
    async with open_client(make_redis_app()) as a, open_client(make_redis_app()) as b:
        location = await create(a, 10)
        await run(a, [patch_step(location, 0, b"hello")])
        await run(b, [head_step(location, 5), patch_step(location, 5, b"world"), head_step(location, 10)])
    assert storage.blobs[upload_id(location)] == b"helloworld"


async def test_head_on_other_instance_interrupts_stalled_patch(make_redis_app: AppFactory) -> None:
    """The release request reaches instance A through Redis pub/sub; A stores its bytes and lets go."""
    app_a, app_b = make_redis_app(), make_redis_app()
    async with open_client(app_b) as b:
        location = await create(b, 10)
        stalled = await stall_on(app_a, location, lambda: run(b, [head_step(location, 5)]))
    assert (stalled.status, stalled.code) == (400, "ERR_UPLOAD_INTERRUPTED")


async def test_patch_on_other_instance_interrupts_stalled_patch_and_continues(
    make_redis_app: AppFactory, storage: MemoryStorage
) -> None:
    app_a, app_b = make_redis_app(), make_redis_app()
    async with open_client(app_b) as b:
        location = await create(b, 10)
        stalled = await stall_on(app_a, location, lambda: run(b, [patch_step(location, 5, b"world")]))
    assert (stalled.status, stalled.code) == (400, "ERR_UPLOAD_INTERRUPTED")
    assert storage.blobs[upload_id(location)] == b"helloworld"


@pytest.mark.parametrize(
    ("method", "headers", "code"),
    [pytest.param("HEAD", TUS, None, id="head"),
     pytest.param("PATCH", PATCH_HEADERS | {"Upload-Offset": "0"}, "ERR_UPLOAD_LOCKED", id="patch")],
)  # fmt: skip
async def test_lock_held_on_one_instance_gives_423_on_another(
    make_redis_app: AppFactory, method: str, headers: dict[str, str], code: str | None
) -> None:
    app_a, app_b = make_redis_app(), make_redis_app(lock_timeout=0.2)
    async with open_client(app_b) as b:
        location = await create(b, 10)
        async with app_a.state.tus.locker.acquire(upload_id(location), timeout=1) as lease:
            asked = anyio.Event()
            lease.on_release_request(asked.set)
            await run(b, [Exchange(method, location, headers, b"", expect=423, expect_code=code)])
            with anyio.fail_after(5):
                await asked.wait()  # B asked A to let go, across instances


async def test_crashed_instance_lock_expires_by_itself(
    make_redis_app: AppFactory, redis_client: Redis, prefix: str, storage: MemoryStorage
) -> None:
    """A lock whose holder is gone (no renewal, deaf to release requests) frees itself after its TTL."""
    async with open_client(make_redis_app(lock_timeout=5)) as client:
        location = await create(client, 5)
        await redis_client.set(f"{prefix}lock:{upload_id(location)}", "a-crashed-instance", px=300)
        started = time.monotonic()
        await run(client, [patch_step(location, 0, b"hello")])
    assert time.monotonic() - started >= 0.25  # it waited for the TTL: nobody released the lock
    assert storage.blobs[upload_id(location)] == b"hello"


async def test_holder_that_lost_its_lock_records_nothing(
    make_redis_app: AppFactory, redis_client: Redis, prefix: str
) -> None:
    """A lock can expire under a live holder (renewals late past the TTL) and go to another instance; from
    then on the former holder must not record its offset (issue 6: no request writes while another holds
    the lock), or it could record bytes the new holder has already truncated away."""
    app_a = make_redis_app(lock_ttl=0.3)
    async with open_client(app_a) as a:
        location = await create(a, 10)
        lock, record = f"{prefix}lock:{upload_id(location)}", f"{prefix}upload:{upload_id(location)}"

        async def taken_over() -> None:
            await redis_client.set(lock, "instance-b", px=5000)  # A's lock expired; instance B holds it now

        stalled = await stall_on(app_a, location, taken_over)
    assert stalled.status != 500
    assert UploadInfo.model_validate_json(await redis_client.get(record) or "").offset == 0


async def test_holder_that_lost_its_lock_never_finishes_the_upload_in_storage(
    redis_server: RedisServer, redis_client: Redis, prefix: str, tmp_path: Path
) -> None:
    """Issue 19: a holder paused past its lock that wakes with the last byte must not complete the upload in
    storage (S3 would finish the object with its bytes): a fenced save comes first, and is refused."""
    storage = CompletionRecorder()
    settings = Settings(data_dir=tmp_path / "data", redis_url=redis_server.url, redis_prefix=prefix, lock_ttl=5)
    app = create_app(settings, storage=storage)
    try:
        async with open_client(app) as client:
            location = await create(client, 5)

            async def taken_over() -> None:
                await redis_client.set(f"{prefix}lock:{upload_id(location)}", "instance-b", px=5000)

            stalled = await stall_on(app, location, taken_over)  # it holds all 5 bytes when it finds out
    finally:
        await app.state.tus.aclose()
    assert stalled.status == 423
    assert storage.completed == []


# --- Redis unreachable -------------------------------------------------------------------------------------------

UNREACHABLE_REQUESTS = [
    pytest.param("POST", "/files/", TUS | {"Upload-Length": "10"}, id="post"),
    pytest.param("HEAD", "/files/" + "0" * 32, TUS, id="head"),
    pytest.param("PATCH", "/files/" + "0" * 32, PATCH_HEADERS | {"Upload-Offset": "0"}, id="patch"),
    pytest.param("DELETE", "/files/" + "0" * 32, TUS, id="delete"),
]


def closed_port() -> int:
    return free_ports(1)[0]  # nobody listens on it


@pytest.mark.parametrize(("method", "path", "headers"), UNREACHABLE_REQUESTS)
async def test_redis_unreachable_answers_503_with_retry_after(
    make_redis_app: AppFactory, caplog: pytest.LogCaptureFixture, method: str, path: str, headers: dict[str, str]
) -> None:
    caplog.set_level(logging.INFO, logger="tusserver")
    app = make_redis_app(redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    async with open_client(app) as client:
        response = await client.request(method, path, headers=headers, content=b"hello" if method == "PATCH" else b"")
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "1")
    assert "error=ERR_SERVICE_UNAVAILABLE" in caplog.text  # the access log shows the code, for HEAD too


@contextlib.contextmanager
def unresponsive(server: RedisServer) -> Iterator[None]:
    """Redis stops answering (SIGSTOP: a stalled host, a partition) but keeps its connections open."""
    assert server.process is not None
    server.process.send_signal(signal.SIGSTOP)
    try:
        yield
    finally:
        server.process.send_signal(signal.SIGCONT)


async def test_unresponsive_redis_answers_503_not_423(make_redis_app: AppFactory, own_redis: RedisServer) -> None:
    """No other request holds the lock: Redis not answering within the lock wait is unavailability."""
    app = make_redis_app(redis_url=own_redis.url, lock_timeout=0.5)
    async with open_client(app) as client:
        with unresponsive(own_redis), anyio.fail_after(10):
            response = await client.patch("/files/" + "0" * 32, headers=PATCH_HEADERS | {"Upload-Offset": "0"})
    assert (response.status_code, response.headers.get("Retry-After")) == (503, "1"), response.text


async def test_holder_cut_off_from_redis_lets_go_within_its_ttl(
    make_redis_app: AppFactory, own_redis: RedisServer
) -> None:
    """Once its TTL runs out the lock is another instance's to take, so a holder whose renewals go
    unanswered must have been told to stop by then (the module's promise: "long before its TTL")."""
    app = make_redis_app(redis_url=own_redis.url, lock_ttl=0.3)
    async with app.state.tus.locker.acquire("0" * 32, timeout=1) as lease:
        asked = anyio.Event()
        lease.on_release_request(asked.set)
        with unresponsive(own_redis), anyio.move_on_after(0.3):
            await asked.wait()
        assert asked.is_set(), "the holder kept the lock past its TTL while Redis did not answer its renewals"


# --- the state store ----------------------------------------------------------------------------------------------


@pytest.fixture
async def two_stores(redis_server: RedisServer, prefix: str) -> AsyncIterator[tuple[RedisStateStore, RedisStateStore]]:
    """Two state stores with their own clients: two instances."""
    stores = [RedisStateStore(Redis.from_url(redis_server.url, decode_responses=True), prefix=prefix) for _ in "ab"]
    yield stores[0], stores[1]
    for store in stores:
        await store.aclose()


def new_record(length: int = 100) -> UploadInfo:
    upload = secrets.token_hex(16)
    return UploadInfo(id=upload, length=length, storage=StorageRef(backend="memory", key=upload), created_at=utcnow())


async def test_save_never_moves_an_offset_backwards(two_stores: tuple[RedisStateStore, RedisStateStore]) -> None:
    a, b = two_stores
    info = new_record()
    await a.create(info)
    await a.save(info.model_copy(update={"offset": 8}))
    with pytest.raises(OffsetMismatchError) as raised:
        await b.save(info.model_copy(update={"offset": 3}))  # an older record, from another instance
    assert raised.value.current_offset == 8
    assert (await b.get(info.id)).offset == 8


async def test_racing_saves_keep_the_highest_offset(two_stores: tuple[RedisStateStore, RedisStateStore]) -> None:
    info = new_record()
    await two_stores[0].create(info)
    offsets = [offset for pair in zip(range(1, 41, 2), range(40, 0, -2), strict=True) for offset in pair]

    async def save(store: RedisStateStore, offset: int) -> None:
        with contextlib.suppress(OffsetMismatchError):  # a racer saved a higher offset first
            await store.save(info.model_copy(update={"offset": offset}))

    async with anyio.create_task_group() as tasks:
        for index, offset in enumerate(offsets):
            tasks.start_soon(save, two_stores[index % 2], offset)
    assert (await two_stores[1].get(info.id)).offset == 40


# --- keys, connections --------------------------------------------------------------------------------------------


async def test_every_key_has_the_prefix(make_redis_app: AppFactory, redis_client: Redis, prefix: str) -> None:
    app = make_redis_app()
    async with open_client(app) as client:
        location = await create(client, 10)
        async with app.state.tus.locker.acquire(upload_id(location), timeout=1):
            keys = {key async for key in redis_client.scan_iter()}  # the database was flushed for this test
    upload = upload_id(location)
    listing = {f"{prefix}listed", f"{prefix}list", f"{prefix}list:state"}  # the status API's (no owner: no more)
    assert keys == {f"{prefix}upload:{upload}", f"{prefix}expires", f"{prefix}lock:{upload}", *listing}


async def test_release_channel_has_the_prefix(make_redis_app: AppFactory, redis_client: Redis, prefix: str) -> None:
    app = make_redis_app()
    async with open_client(app) as client:
        location = await create(client, 10)
        expected = [f"{prefix}release:{upload_id(location)}"]
        async with app.state.tus.locker.acquire(upload_id(location), timeout=1):
            await eventually(lambda: _channels_are(redis_client, expected), what="the holder to subscribe")


async def _channels_are(client: Redis, expected: list[str]) -> bool:
    return sorted(await client.pubsub_channels()) == expected


@pytest.fixture
async def acl_user(redis_client: Redis, prefix: str) -> AsyncIterator[tuple[str, str]]:
    """A Redis ACL user allowed only the keys and channels under `prefix`."""
    name, password = f"user{secrets.token_hex(4)}", secrets.token_hex(8)
    await redis_client.acl_setuser(
        name, enabled=True, passwords=[f"+{password}"], categories=["+@all"],
        reset_keys=True, keys=[f"{prefix}*"], reset_channels=True, channels=[f"{prefix}*"],
    )  # fmt: skip
    yield name, password
    await redis_client.acl_deluser(name)


async def test_acl_user_limited_to_the_prefix_serves_uploads(
    make_redis_app: AppFactory, redis_server: RedisServer, acl_user: tuple[str, str]
) -> None:
    name, password = acl_user
    app_a = make_redis_app(redis_url=f"redis://{name}:{password}@127.0.0.1:{redis_server.port}/0")
    app_b = make_redis_app(redis_url=f"redis://{name}:{password}@127.0.0.1:{redis_server.port}/0")
    async with open_client(app_b) as b:
        location = await create(b, 10)
        stalled = await stall_on(app_a, location, lambda: run(b, [patch_step(location, 5, b"world")]))
        await run(b, [head_step(location, 10)])
    assert (stalled.status, stalled.code) == (400, "ERR_UPLOAD_INTERRUPTED")


@pytest.fixture
def unix_redis(tmp_path: Path) -> Iterator[Path]:
    """A second redis-server listening only on a unix socket; yields the socket's path."""
    executable = shutil.which("redis-server")
    assert executable, "redis-server is not installed"
    path = tmp_path / "r.sock"
    assert len(str(path)) < 100, f"unix socket path too long: {path}"
    command = [executable, "--port", "0", "--unixsocket", str(path), "--save", "", "--dir", str(tmp_path)]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while not _unix_ping(path):
            assert process.poll() is None, "redis-server exited"
            assert time.monotonic() < deadline, "redis-server did not answer PING within 10 s"
            time.sleep(0.02)
        yield path
    finally:
        process.terminate()
        process.wait(10)


def _unix_ping(path: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(0.5)
            sock.connect(str(path))
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


async def test_unix_socket_url_serves_uploads(make_redis_app: AppFactory, unix_redis: Path) -> None:
    async with open_client(make_redis_app(redis_url=f"unix://{unix_redis}?db=0")) as client:
        location = await create(client, 5)
        await run(client, [patch_step(location, 0, b"hello"), head_step(location, 5)])


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    """A redis-server speaking only TLS with a self-signed certificate; yields its rediss:// URL."""
    cert, key = self_signed_certificate(tmp_path)
    port = free_ports(1)[0]
    tls = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
           "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no"]  # fmt: skip
    command = [
        shutil.which("redis-server") or "redis-server",
        "--bind",
        "127.0.0.1",
        "--save",
        "",
        "--dir",
        str(tmp_path),
    ]
    process = subprocess.Popen([*command, *tls], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"rediss://127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    try:
        _wait_for_tls(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(10)


def _wait_for_tls(url: str, process: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 10
    while True:
        try:
            if SyncRedis.from_url(url, socket_timeout=1).ping():
                return
        except redis_errors.ConnectionError:
            assert process.poll() is None, "redis-server (TLS) exited"
            assert time.monotonic() < deadline, "redis-server (TLS) did not answer within 10 s"
            time.sleep(0.05)


async def test_rediss_tls_url_serves_uploads(make_redis_app: AppFactory, tls_redis: str) -> None:
    """Issue 6: rediss:// (TLS) URLs are accepted."""
    async with open_client(make_redis_app(redis_url=tls_redis)) as client:
        location = await create(client, 5)
        await run(client, [patch_step(location, 0, b"hello"), head_step(location, 5)])


# --- round trips --------------------------------------------------------------------------------------------------


@pytest.fixture
async def counted(
    redis_server: RedisServer, storage: MemoryStorage, tmp_path: Path, prefix: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[tuple[httpx.AsyncClient, Sent]]:
    """A client of an app whose one Redis client records every round trip: a command, or a pipeline of them
    (recorded as ("PIPELINE", "<command> <key>; <command> <key>"))."""
    redis = Redis.from_url(redis_server.url, decode_responses=True)
    sent: Sent = []
    original: Callable[..., Awaitable[Any]] = redis.execute_command
    original_pipeline: Callable[..., Awaitable[Any]] = Pipeline.execute

    async def recording(*args: Any, **options: Any) -> Any:
        key = args[3] if args[0] == "EVALSHA" else args[1] if len(args) > 1 else ""
        sent.append((str(args[0]), str(key)))
        return await original(*args, **options)

    async def recording_pipeline(pipe: Pipeline, *args: Any, **options: Any) -> Any:
        commands = "; ".join(" ".join(str(part) for part in command[0][:2]) for command in pipe.command_stack)
        sent.append(("PIPELINE", commands))
        return await original_pipeline(pipe, *args, **options)

    monkeypatch.setattr(redis, "execute_command", recording)
    monkeypatch.setattr(Pipeline, "execute", recording_pipeline)
    state, locker = RedisStateStore(redis, prefix=prefix), RedisLocker(redis, prefix=prefix)
    app = create_app(Settings(data_dir=tmp_path / "data"), storage=storage, state=state, locker=locker)
    async with open_client(app) as client:
        yield client, sent
    await redis.aclose()


@pytest.mark.parametrize("length", [0, 10], ids=["finished", "unfinished-free"])
async def test_head_costs_one_round_trip(counted: tuple[httpx.AsyncClient, Sent], prefix: str, length: int) -> None:
    """Issue 6: a HEAD reads the record and checks the lock in one pipelined round trip, no storage call."""
    client, sent = counted
    location = await create(client, length)
    sent.clear()
    await run(client, [head_step(location, 0)])
    upload = upload_id(location)
    assert sent == [("PIPELINE", f"GET {prefix}upload:{upload}; EXISTS {prefix}lock:{upload}")]


async def test_patch_costs_two_round_trips_besides_the_lock(
    counted: tuple[httpx.AsyncClient, Sent], prefix: str
) -> None:
    client, sent = counted
    location = await create(client, 15)
    await run(client, [patch_step(location, 0, b"hello")])  # the first save loads the script into Redis
    sent.clear()
    await run(client, [patch_step(location, 5, b"world")])
    upload, lock = upload_id(location), f"{prefix}lock:{upload_id(location)}"
    record = f"{prefix}upload:{upload}"
    assert [command for command in sent if command[1] != lock] == [("GET", record), ("EVALSHA", record)]
    assert [command for command in sent if command[1] == lock] == [("SET", lock), ("EVALSHA", lock)]
    # The PATCH that completes the upload saves once more, fenced, before the storage finishes it (issue 19).
    sent.clear()
    await run(client, [patch_step(location, 10, b"done!")])
    assert [command for command in sent if command[1] != lock] == [
        ("GET", record),
        ("EVALSHA", record),
        ("EVALSHA", record),
    ]


async def test_served_locker_shares_one_subscription(redis_client: Redis, prefix: str) -> None:
    """With `serve` running (the app's lifespan starts it), release requests reach a lease through the one
    pattern subscription of the process: no subscription per lease."""
    holder, waiter = RedisLocker(redis_client, prefix=prefix), RedisLocker(redis_client, prefix=prefix, poll=0.01)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            await tasks.start(holder.serve)
            assert holder.serving
            async with holder.acquire("u1", timeout=1) as lease:
                asked = anyio.Event()
                lease.on_release_request(asked.set)
                assert (await redis_client.pubsub_numsub(f"{prefix}release:u1"))[0][1] == 0
                tasks.start_soon(_acquire_once, waiter)
                await asked.wait()
            tasks.cancel_scope.cancel()


async def _acquire_once(locker: RedisLocker) -> None:
    async with locker.acquire("u1", timeout=5):
        pass

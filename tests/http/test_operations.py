"""Operations through the ASGI app: metrics values after scripted uploads and errors, health and readiness
(with a state store and a storage that fail or hang), the drain gate, and X-Request-ID."""

from __future__ import annotations

from typing import Any

import anyio
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from starlette.applications import Starlette

from storage_backends.errors import StorageUnavailableError
from storage_backends.memory import MemoryStorage
from tests.redis_server import RedisServer
from tusserver import HookRequest, HookResponse, MemoryStateStore, Settings, create_app
from tusserver.pipeline import operations

pytestmark = pytest.mark.anyio

TUS = {"Tus-Resumable": "1.0.0"}


def client_of(app: Starlette) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver")


async def samples(client: httpx.AsyncClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict[Any, float], name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


async def upload(client: httpx.AsyncClient, data: bytes) -> str:
    created = await client.post("/files/", headers=TUS | {"Upload-Length": str(len(data))})
    assert created.status_code == 201
    location = created.headers["Location"]
    patched = await client.patch(
        location, content=data, headers=TUS | {"Upload-Offset": "0", "Content-Type": "application/offset+octet-stream"}
    )
    assert patched.status_code == 204
    return location


async def test_metrics_count_uploads_errors_and_hooks(tmp_path: Any) -> None:
    async def post_finish(request: Any) -> None:
        raise RuntimeError("the receiver is down")  # a failing non-blocking hook

    app = create_app(
        Settings(data_dir=tmp_path),
        storage=MemoryStorage(),
        state=MemoryStateStore(),
        hooks={"post-finish": post_finish},
    )
    async with client_of(app) as client:
        before = await samples(client)
        location = await upload(client, b"x" * 1000)
        await upload(client, b"y" * 24)
        assert (await client.delete(location, headers=TUS)).status_code == 204
        assert (await client.head("/files/" + "f" * 32, headers=TUS)).status_code == 404
        assert (await client.post("/files/", headers={"Upload-Length": "1"})).status_code == 412
        after = await samples(client)

    def delta(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert delta("tusserver_requests_total", method="POST") == 3
    assert delta("tusserver_requests_total", method="PATCH") == 2
    assert delta("tusserver_request_duration_seconds_count", method="PATCH") == 2
    assert delta("tusserver_errors_total", status="404", code="ERR_UPLOAD_NOT_FOUND") == 1
    assert delta("tusserver_errors_total", status="412", code="ERR_UNSUPPORTED_VERSION") == 1
    assert delta("tusserver_bytes_received_total") == 1024
    assert delta("tusserver_uploads_created_total") == 2
    assert delta("tusserver_uploads_finished_total") == 2
    assert delta("tusserver_uploads_terminated_total") == 1
    assert delta("tusserver_storage_seconds_count", backend="memory", operation="append") == 2
    assert delta("tusserver_state_seconds_count", store="memory", operation="create") == 2
    assert delta("tusserver_lock_wait_seconds_count") >= 3
    assert value(after, "tusserver_connections_open") == 0
    assert value(after, "tusserver_uploads_in_flight") == 0


async def test_metrics_path_off_and_moved(tmp_path: Any) -> None:
    off = create_app(Settings(data_dir=tmp_path, metrics_path=None), storage=MemoryStorage(), state=MemoryStateStore())
    moved = create_app(
        Settings(data_dir=tmp_path, metrics_path="ops/m"), storage=MemoryStorage(), state=MemoryStateStore()
    )
    async with client_of(off) as client:
        assert (await client.get("/metrics")).status_code == 404
    async with client_of(moved) as client:
        assert "tusserver_requests_total" in (await client.get("/ops/m")).text


async def test_health_and_readiness_bypass_authorization(tmp_path: Any) -> None:
    settings = Settings(data_dir=tmp_path, auth_jwt_secret="s" * 32)
    app = create_app(settings, storage=MemoryStorage(), state=MemoryStateStore())
    async with client_of(app) as client:
        assert (await client.post("/files/", headers=TUS | {"Upload-Length": "1"})).status_code == 401
        health = await client.get("/healthz")
        assert (health.status_code, health.text) == (200, "ok\n")
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        assert (await client.get("/metrics")).status_code == 200


class BrokenState(MemoryStateStore):
    async def get(self, upload_id: str) -> Any:
        raise ConnectionError("no route to the state store")


class HangingState(MemoryStateStore):
    async def get(self, upload_id: str) -> Any:
        await anyio.sleep_forever()


class UnreachableStorage(MemoryStorage):
    async def open(self) -> None:
        raise StorageUnavailableError("the bucket does not answer")


@pytest.mark.parametrize(
    ("state", "storage", "reason"),
    [
        (BrokenState(), MemoryStorage(), "ERR_SERVICE_UNAVAILABLE: the state store failed (ConnectionError)\n"),
        (HangingState(), MemoryStorage(), "ERR_SERVICE_UNAVAILABLE: the state store did not answer within 0.2 s\n"),
        (
            MemoryStateStore(),
            UnreachableStorage(),
            "ERR_SERVICE_UNAVAILABLE: the storage failed (StorageUnavailableError)\n",
        ),
    ],
)
async def test_not_ready_says_why(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch, state: MemoryStateStore, storage: MemoryStorage, reason: str
) -> None:
    monkeypatch.setattr(operations, "READY_TIMEOUT", 0.2)
    app = create_app(Settings(data_dir=tmp_path), storage=storage, state=state)
    async with client_of(app) as client:
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.text) == (503, reason)
        assert (await client.get("/healthz")).status_code == 200


async def test_draining_answers_503_with_retry_after(tmp_path: Any) -> None:
    app = create_app(Settings(data_dir=tmp_path), storage=MemoryStorage(), state=MemoryStateStore())
    app.state.tus.draining = True
    async with client_of(app) as client:
        refused = await client.post("/files/", headers=TUS | {"Upload-Length": "1"})
        assert refused.status_code == 503
        assert refused.headers["Retry-After"] == "1"
        assert refused.headers["Connection"] == "close"
        assert refused.text.startswith("ERR_SERVICE_UNAVAILABLE: the server is shutting down")
        ready = await client.get("/readyz")
        assert (ready.status_code, ready.text) == (503, "ERR_SERVICE_UNAVAILABLE: the server is shutting down\n")
        assert (await client.get("/healthz")).status_code == 200


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("abc-123_x.y:z", True), ("a" * 128, True), ("a" * 129, False), ("bad id", False), ("x\u00e9", False)],
)
async def test_request_id_taken_when_safe_else_generated(tmp_path: Any, sent: str, kept: bool) -> None:
    settings = Settings(data_dir=tmp_path, cors_origins=("https://app.example",))
    app = create_app(settings, storage=MemoryStorage(), state=MemoryStateStore())
    async with client_of(app) as client:
        headers = {"X-Request-ID": sent, "Origin": "https://app.example"}
        response = await client.options("/files/", headers=[(k.encode(), v.encode()) for k, v in headers.items()])
    returned = response.headers["X-Request-ID"]
    assert (returned == sent) is kept
    assert len(returned) <= 128
    assert "x-request-id" in response.headers["Access-Control-Expose-Headers"].lower()


async def test_hook_counters_count_invocations_and_failures_by_event(tmp_path: Any) -> None:
    async def pre_create(request: HookRequest) -> HookResponse:
        if request.Event.Upload.MetaData.get("filename") == "boom":
            raise RuntimeError("the policy service is down")  # a failing blocking hook: the POST gets 503
        return HookResponse()

    async def post_receive(request: HookRequest) -> None:
        raise RuntimeError("the progress receiver is down")  # a failing non-blocking hook

    async def post_finish(request: HookRequest) -> None:
        return None

    hooks = {"pre-create": pre_create, "post-receive": post_receive, "post-finish": post_finish}
    app = create_app(Settings(data_dir=tmp_path), storage=MemoryStorage(), state=MemoryStateStore(), hooks=hooks)
    async with client_of(app) as client:
        before = await samples(client)
        await upload(client, b"z" * 10)
        await upload(client, b"z" * 20)
        refused = TUS | {"Upload-Length": "1", "Upload-Metadata": "filename Ym9vbQ=="}  # filename "boom"
        boom = await client.post("/files/", headers=refused)
        assert boom.status_code == 503
        after = await samples(client)

    def delta(name: str, event: str) -> float:
        return value(after, name, event=event) - value(before, name, event=event)

    assert delta("tusserver_hook_invocations_total", "pre-create") == 3
    assert delta("tusserver_hook_errors_total", "pre-create") == 1
    assert delta("tusserver_hook_invocations_total", "post-receive") == 2
    assert delta("tusserver_hook_errors_total", "post-receive") == 2
    assert delta("tusserver_hook_invocations_total", "post-finish") == 2
    assert delta("tusserver_hook_errors_total", "post-finish") == 0
    assert delta("tusserver_hook_invocations_total", "pre-finish") == 0  # no hook for it: not sent, not counted


async def test_not_ready_while_redis_is_stopped(tmp_path: Any, own_redis: RedisServer) -> None:
    app = create_app(Settings(data_dir=tmp_path, redis_url=own_redis.url), storage=MemoryStorage())
    try:
        async with client_of(app) as client:
            ready = await client.get("/readyz")
            assert (ready.status_code, ready.text) == (200, "ready\n")
            own_redis.stop()
            with anyio.fail_after(operations.READY_TIMEOUT + 5):
                stopped = await client.get("/readyz")
            assert stopped.status_code == 503
            assert stopped.text == "ERR_SERVICE_UNAVAILABLE: the state store is unreachable: ConnectionError\n"
            assert stopped.headers["Retry-After"] == "1"
            assert (await client.get("/healthz")).status_code == 200  # the process still serves
            own_redis.start()  # the same port and data
            with anyio.fail_after(operations.READY_TIMEOUT + 5):
                again = await client.get("/readyz")
            assert (again.status_code, again.text) == (200, "ready\n")
    finally:
        await app.state.tus.aclose()

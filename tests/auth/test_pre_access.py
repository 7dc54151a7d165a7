"""The pre-access hook (issue 21 item 1) through the ASGI app: what it is asked, on which requests, and what its
allowances and denials do; in-process, from a module, as a file hook, and the README's example."""

from __future__ import annotations

import base64
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from storage_backends.memory import MemoryStorage
from tests.auth.jwt_keys import SECRET, TUS, bearer
from tests.auth.readme import section_blocks
from tests.http.asgi import open_client, upload_id
from tusserver import HookHTTPResponse, HookPrincipal, HookRequest, HookResponse, MemoryStateStore, Settings, create_app
from tusserver.coordination.hooks.events import DEFAULT_ENABLED
from tusserver.coordination.hooks.setup import module_hooks

pytestmark = pytest.mark.anyio

PATCH = {"Content-Type": "application/offset+octet-stream"}


class Gate:
    """An in-process pre-access hook: records each request; allows as the X-User header says, or as scripted."""

    def __init__(self) -> None:
        self.seen: list[HookRequest] = []
        self.answer: Callable[[HookRequest], HookResponse | None] = self.by_header

    async def __call__(self, request: HookRequest) -> HookResponse | None:
        self.seen.append(request)
        return self.answer(request)

    @staticmethod
    def by_header(request: HookRequest) -> HookResponse | None:
        user = request.Event.HTTPRequest.Header.get("X-User", [""])[0]
        return HookResponse(Principal=HookPrincipal(ID=user)) if user else None


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Callable[..., Starlette]]:
    built: list[Starlette] = []

    def make(hooks: dict[str, Any] | None = None, **settings: Any) -> Starlette:
        app = create_app(
            Settings(data_dir=tmp_path, **settings), storage=MemoryStorage(), state=MemoryStateStore(), hooks=hooks
        )
        built.append(app)
        return app

    yield make
    for app in built:
        await app.state.tus.aclose()


@pytest.fixture
def gate() -> Gate:
    return Gate()


@pytest.fixture
async def client(apps: Callable[..., Starlette], gate: Gate) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(apps({"pre-access": gate})) as http:
        yield http


def user(name: str) -> dict[str, str]:
    return TUS | {"X-User": name}


async def test_the_hook_gets_the_request_and_the_upload(
    apps: Callable[..., Starlette], gate: Gate, client: httpx.AsyncClient
) -> None:
    metadata = {"Upload-Metadata": f"filename {base64.b64encode(b'scan.tif').decode()}"}
    created = await client.post("/files/", headers=user("alice") | metadata | {"Upload-Length": "4"})
    assert created.status_code == 201
    location = created.headers["location"]
    creation = gate.seen[-1].Event
    assert (creation.HTTPRequest.Method, creation.HTTPRequest.URI) == ("POST", "/files/")
    assert creation.HTTPRequest.Header["X-User"] == ["alice"]
    assert creation.HTTPRequest.RemoteAddr.startswith("127.0.0.1:")
    assert creation.Upload.ID == ""  # nothing exists yet
    assert (await client.head(location, headers=user("alice"))).status_code == 200
    upload = gate.seen[-1].Event.Upload
    assert (upload.ID, upload.Owner, upload.State, upload.MetaData) == (
        upload_id(location), "alice", "uploading", {"filename": "scan.tif"}
    )  # fmt: skip
    assert gate.seen[-1].Type == "pre-access"
    assert (await client.head("/files/" + "0" * 32, headers=user("alice"))).status_code == 404
    assert gate.seen[-1].Event.Upload.ID == ""  # an id no upload has: asked all the same, about nothing


async def test_the_principal_it_names_owns_what_it_creates(client: httpx.AsyncClient) -> None:
    location = (await client.post("/files/", headers=user("alice") | {"Upload-Length": "3"})).headers["location"]
    patch = PATCH | {"Upload-Offset": "0"}
    assert (await client.patch(location, headers=user("bob") | patch, content=b"abc")).status_code == 404
    assert (await client.patch(location, headers=user("alice") | patch, content=b"abc")).status_code == 204
    assert (await client.get(location, headers=user("bob"))).status_code == 404
    assert (await client.get(location, headers=user("alice"))).content == b"abc"


async def test_a_denial_goes_out_as_the_hook_wrote_it(gate: Gate, client: httpx.AsyncClient) -> None:
    challenge = HookHTTPResponse(StatusCode=401, Body="log in first\n", Header={"WWW-Authenticate": 'Bearer realm="x"'})
    gate.answer = lambda request: HookResponse(RejectAccess=True, HTTPResponse=challenge)
    refused = await client.post("/files/", headers=TUS | {"Upload-Length": "3"})
    assert (refused.status_code, refused.text) == (401, "log in first\n")
    assert refused.headers["www-authenticate"] == 'Bearer realm="x"'
    gate.answer = lambda request: HookResponse(RejectAccess=True)
    plain = await client.post("/files/", headers=TUS | {"Upload-Length": "3"})
    assert (plain.status_code, plain.text) == (403, "ERR_ACCESS_DENIED: a hook refused access\n")


async def test_a_failing_hook_fails_closed(gate: Gate, client: httpx.AsyncClient) -> None:
    def broken(request: HookRequest) -> HookResponse:
        raise RuntimeError("the policy service is down")

    gate.answer = broken
    answer = await client.post("/files/", headers=TUS | {"Upload-Length": "3"})
    assert (answer.status_code, answer.headers["retry-after"]) == (503, "1")
    assert answer.text == "ERR_SERVICE_UNAVAILABLE: a hook failed; retry later\n"


async def test_options_and_preflights_never_reach_it(gate: Gate, client: httpx.AsyncClient) -> None:
    assert (await client.options("/files/")).status_code == 200
    preflight = {"Origin": "https://app.example", "Access-Control-Request-Method": "PATCH"}
    assert (await client.options("/files/" + "0" * 32, headers=preflight)).status_code == 200
    assert gate.seen == []


async def test_each_partial_a_final_names_is_asked_about(gate: Gate, client: httpx.AsyncClient) -> None:
    partials = []
    for data in (b"ab", b"cd"):
        headers = user("alice") | {"Upload-Length": "2", "Upload-Concat": "partial"}
        created = await client.post("/files/", headers=headers)
        location = created.headers["location"]
        await client.patch(location, headers=user("alice") | PATCH | {"Upload-Offset": "0"}, content=data)
        partials.append(upload_id(location))
    concat = {"Upload-Concat": "final;" + " ".join(f"/files/{part}" for part in partials)}
    gate.seen.clear()
    assert (await client.post("/files/", headers=user("alice") | concat)).status_code == 201
    assert [request.Event.Upload.ID for request in gate.seen] == ["", *partials]
    locked = partials[1]

    def deny_one(request: HookRequest) -> HookResponse | None:
        if locked == request.Event.Upload.ID:
            return HookResponse(RejectAccess=True, HTTPResponse=HookHTTPResponse(StatusCode=404, Body="no\n"))
        return Gate.by_header(request)

    gate.answer = deny_one
    metadata = {"Upload-Metadata": "name YQ=="}  # another final of the same partials
    refused = await client.post("/files/", headers=user("alice") | concat | metadata)
    assert (refused.status_code, refused.text) == (404, "no\n")


async def test_with_tokens_it_sees_the_token_and_may_name_another_principal(
    apps: Callable[..., Starlette], gate: Gate
) -> None:
    app = apps({"pre-access": gate}, auth_jwt_secret=SECRET, auth_admins=("root",))
    async with open_client(app) as client:
        assert (await client.post("/files/", headers=user("alice") | {"Upload-Length": "1"})).status_code == 401
        assert gate.seen == []  # the token is checked first
        created = await client.post("/files/", headers=bearer(sub="alice") | {"X-User": "team-a", "Upload-Length": "1"})
        assert gate.seen[-1].Event.HTTPRequest.Header["Authorization"][0].startswith("Bearer ")
        location = created.headers["location"]
        assert (await app.state.tus.state.get(upload_id(location))).owner == "team-a"
        assert (await client.head(location, headers=bearer(sub="alice"))).status_code == 404  # the token's alice
        assert (await client.head(location, headers=bearer(sub="bob") | {"X-User": "team-a"})).status_code == 200
        assert (await client.head(location, headers=bearer(sub="alice") | {"X-User": "team-b"})).status_code == 404
        assert (await client.head(location, headers=bearer(sub="bob") | {"X-User": "root"})).status_code == 200


async def test_allowed_without_a_principal_acts_for_nobody(apps: Callable[..., Starlette], gate: Gate) -> None:
    app = apps({"pre-access": gate})
    async with open_client(app) as client:
        created = await client.post("/files/", headers=TUS | {"Upload-Length": "1"})
        assert (await app.state.tus.state.get(upload_id(created.headers["location"]))).owner is None


async def test_the_readme_example(apps: Callable[..., Starlette]) -> None:
    namespace: dict[str, Any] = {}
    exec(section_blocks("python")[1], namespace)
    async with open_client(apps({"pre-access": namespace["pre_access"]})) as client:
        alice, bob = (TUS | {"Authorization": f"ApiKey {key}"} for key in ("k-7f3a9c", "k-2b8e41"))
        location = (await client.post("/files/", headers=alice | {"Upload-Length": "1"})).headers["location"]
        assert (await client.head(location, headers=alice)).status_code == 200
        assert (await client.head(location, headers=bob)).status_code == 404
        refused = await client.get(location, headers=TUS | {"Authorization": "ApiKey k-guessed"})
        assert (refused.status_code, refused.text) == (401, "ERR_UNAUTHORIZED: an API key is needed\n")
        assert refused.headers["www-authenticate"] == "ApiKey"


async def test_file_hooks_get_it_only_when_enabled(apps: Callable[..., Starlette], tmp_path: Path) -> None:
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    script = hooks / "pre-access"
    script.write_text(
        f"#!{sys.executable}\n"
        "import json, sys\n"
        "request = json.load(sys.stdin)\n"
        "user = request['Event']['HTTPRequest']['Header'].get('X-User', [''])[0]\n"
        "print(json.dumps({'Principal': {'ID': user}} if user else {'RejectAccess': True}))\n"
    )
    script.chmod(0o755)
    default = apps(hooks_dir=hooks)
    async with open_client(default) as client:
        assert (await client.post("/files/", headers=TUS | {"Upload-Length": "1"})).status_code == 201
    enabled = apps(hooks_dir=hooks, hooks_enabled_events=(*DEFAULT_ENABLED, "pre-access"))
    async with open_client(enabled) as client:
        assert (await client.post("/files/", headers=TUS | {"Upload-Length": "1"})).status_code == 403
        created = await client.post("/files/", headers=user("alice") | {"Upload-Length": "1"})
        assert (await enabled.state.tus.state.get(upload_id(created.headers["location"]))).owner == "alice"


def test_a_hooks_module_provides_pre_access(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "access_policy.py").write_text(section_blocks("python")[1])
    monkeypatch.syspath_prepend(str(tmp_path))
    assert set(module_hooks("access_policy")) == {"pre-access"}


async def test_a_mounted_app_asks_about_the_upload_its_url_names(apps: Callable[..., Starlette], gate: Gate) -> None:
    tus = apps({"pre-access": gate}, base_path="/")
    parent = Starlette(routes=[Mount("/api/uploads", app=tus)])
    async with open_client(parent) as client:
        created = await client.post("/api/uploads/", headers=user("alice") | {"Upload-Length": "1"})
        location = created.headers["location"]
        assert location.startswith("http://testserver/api/uploads/")
        assert (await client.head(location, headers=user("alice"))).status_code == 200
        assert upload_id(location) == gate.seen[-1].Event.Upload.ID
        assert httpx.URL(location).path == gate.seen[-1].Event.HTTPRequest.URI
        assert (await client.head(location, headers=user("bob"))).status_code == 404

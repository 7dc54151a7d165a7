"""Ownership through the ASGI app with bearer tokens (issue 21 items 2 and 3): the principal that creates an upload
owns it; another gets 404, exactly as for a missing upload, on every method and when naming it as a partial;
admins reach all; requests without a usable token get 401 in the error table's form; without authorization
configured nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from storage_backends.memory import MemoryStorage
from tests.auth.jwt_keys import SECRET, TUS, JWKSServer, SigningKey, bearer, token
from tests.http.asgi import open_client, upload_id
from tusserver import MemoryStateStore, Settings, create_app

pytestmark = pytest.mark.anyio

PATCH = {"Content-Type": "application/offset+octet-stream"}
MakeClient = Callable[..., Any]


@pytest.fixture
async def apps(tmp_path: Path) -> AsyncIterator[Callable[..., Starlette]]:
    built: list[Starlette] = []

    def make(**settings: Any) -> Starlette:
        options = {"auth_jwt_secret": SECRET, "auth_admins": ("root",), **settings}
        app = create_app(Settings(data_dir=tmp_path, **options), storage=MemoryStorage(), state=MemoryStateStore())
        built.append(app)
        return app

    yield make
    for app in built:
        await app.state.tus.aclose()


@pytest.fixture
async def client(apps: Callable[..., Starlette]) -> AsyncIterator[httpx.AsyncClient]:
    async with open_client(apps()) as http:
        yield http


async def create(client: httpx.AsyncClient, user: str, length: int = 10, **headers: str) -> str:
    response = await client.post("/files/", headers=bearer(sub=user) | {"Upload-Length": str(length)} | headers)
    assert response.status_code == 201, response.text
    return response.headers["location"]


async def upload(client: httpx.AsyncClient, user: str, data: bytes, **headers: str) -> str:
    location = await create(client, user, len(data), **headers)
    answer = await client.patch(location, headers=bearer(sub=user) | PATCH | {"Upload-Offset": "0"}, content=data)
    assert answer.status_code == 204, answer.text
    return location


def same_answer(one: httpx.Response, other: httpx.Response) -> bool:
    """The same status, body and headers, but for the request's own id (every answer has a new one)."""
    return (one.status_code, one.content, _headers(one)) == (other.status_code, other.content, _headers(other))


def _headers(response: httpx.Response) -> dict[str, str]:
    return {name: value for name, value in response.headers.items() if name != "x-request-id"}


async def each_method(client: httpx.AsyncClient, url: str, user: str) -> dict[str, httpx.Response]:
    headers = bearer(sub=user)
    return {
        "HEAD": await client.head(url, headers=headers),
        "GET": await client.get(url, headers=headers),
        "PATCH": await client.patch(url, headers=headers | PATCH | {"Upload-Offset": "5"}, content=b"x"),
        "DELETE": await client.delete(url, headers=headers),
    }


async def test_another_principal_gets_404_as_for_a_missing_upload_on_every_method(client: httpx.AsyncClient) -> None:
    location = await upload(client, "alice", b"0123456789")
    missing = await each_method(client, "/files/" + "0" * 32, "bob")
    theirs = await each_method(client, location, "bob")
    for method, answer in theirs.items():
        assert answer.status_code == 404, method
        assert same_answer(answer, missing[method]), method  # not a byte more or less: no hint
    assert missing["GET"].text == "ERR_UPLOAD_NOT_FOUND: upload not found\n"
    assert (await client.get(location, headers=bearer(sub="alice"))).content == b"0123456789"  # untouched


async def test_the_owner_and_admins_use_it(apps: Callable[..., Starlette]) -> None:
    app = apps(auth_admin_claim="roles=curator")
    async with open_client(app) as client:
        location = await upload(client, "alice", b"0123456789")
        assert (await app.state.tus.state.get(upload_id(location))).owner == "alice"
        for admin in (bearer(sub="root"), bearer(sub="carol", roles=["curator"])):
            head = await client.head(location, headers=admin)
            assert (head.status_code, head.headers["upload-offset"]) == (200, "10")
            assert (await client.get(location, headers=admin)).content == b"0123456789"
        other = await create(client, "alice", 3)
        patched = await client.patch(other, headers=bearer(sub="root") | PATCH | {"Upload-Offset": "0"}, content=b"abc")
        assert patched.status_code == 204
        assert (await app.state.tus.state.get(upload_id(other))).owner == "alice"  # an admin's PATCH keeps it hers
        assert (await client.delete(location, headers=bearer(sub="carol", roles=["curator"]))).status_code == 204
        assert (await client.head(location, headers=bearer(sub="alice"))).status_code == 404


async def test_requests_without_a_usable_token_get_401(client: httpx.AsyncClient) -> None:
    location = await create(client, "alice")
    for method in ("POST", "HEAD", "GET", "PATCH", "DELETE"):
        url = "/files/" if method == "POST" else location
        answer = await client.request(method, url, headers=TUS | {"Upload-Length": "1"})
        assert answer.status_code == 401, method
        assert answer.headers["www-authenticate"] == "Bearer"
        expected = "" if method == "HEAD" else "ERR_UNAUTHORIZED: this server needs a bearer token"
        assert answer.text.startswith(expected)
    expired = await client.get(location, headers={"Authorization": f"Bearer {token(expires_in=-3600)}"})
    assert expired.status_code == 401
    assert expired.text == "ERR_UNAUTHORIZED: the token has expired\n"
    challenge = 'Bearer error="invalid_token", error_description="the token has expired"'
    assert expired.headers["www-authenticate"] == challenge


async def test_options_and_cors_preflights_are_never_gated(client: httpx.AsyncClient) -> None:
    assert (await client.options("/files/")).status_code == 200
    preflight = await client.options(
        "/files/",
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                 "Access-Control-Request-Headers": "authorization,tus-resumable,upload-length"},
    )  # fmt: skip
    assert preflight.status_code == 200
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    refused = await client.post("/files/", headers=TUS | {"Origin": "https://app.example", "Upload-Length": "1"})
    assert refused.status_code == 401
    assert refused.headers["access-control-allow-origin"] == "*"  # a browser page can read the refusal...
    assert "WWW-Authenticate" in refused.headers["access-control-expose-headers"]  # ...and its challenge


async def test_concatenation_joins_only_partials_the_caller_may_use(
    apps: Callable[..., Starlette], client: httpx.AsyncClient
) -> None:
    partial = {"Upload-Concat": "partial"}
    alices = [await upload(client, "alice", data, **partial) for data in (b"abc", b"def")]
    bobs = await upload(client, "bob", b"ghi", **partial)

    async def join(user: str, *parts: str) -> httpx.Response:
        concat = "final;" + " ".join(httpx.URL(part).path for part in parts)
        return await client.post("/files/", headers=bearer(sub=user) | {"Upload-Concat": concat})

    theirs = await join("bob", bobs, alices[0])
    missing = await join("bob", bobs, "/files/" + "0" * 32)
    assert theirs.status_code == 404
    assert same_answer(theirs, missing)
    own = await join("alice", *alices)
    assert own.status_code == 201
    joined = own.headers["location"]
    assert (await client.get(joined, headers=bearer(sub="alice"))).content == b"abcdef"
    assert (await client.get(joined, headers=bearer(sub="bob"))).status_code == 404
    by_admin = await join("root", *alices)
    assert by_admin.status_code == 201
    assert by_admin.headers["location"] != joined  # the admin's own final, not alice's found again
    assert (await client.get(by_admin.headers["location"], headers=bearer(sub="alice"))).status_code == 404


async def test_a_stranger_never_takes_an_uploads_lock(apps: Callable[..., Starlette]) -> None:
    """Taking the lock would stop the owner's PATCH, or wait and answer 423: both tell that the upload exists."""
    app = apps(lock_timeout=5.0)
    async with open_client(app) as client:
        location = await create(client, "alice")
        async with app.state.tus.locker.acquire(upload_id(location), timeout=1) as lease:
            for method in ("PATCH", "DELETE"):
                headers = bearer(sub="bob") | PATCH | {"Upload-Offset": "0"}
                assert (await client.request(method, location, headers=headers)).status_code == 404
            assert not lease.release_requested


async def test_rs256_tokens_checked_with_the_issuers_jwks(
    apps: Callable[..., Starlette], jwks_server: JWKSServer, rsa_signer: SigningKey
) -> None:
    app = apps(auth_jwt_secret=None, auth_jwks_url=jwks_server.url, auth_jwt_audience="tus")
    async with open_client(app) as client:
        alice = TUS | {"Authorization": f"Bearer {token(rsa_signer, 'alice', aud='tus')}"}
        created = await client.post("/files/", headers=alice | {"Upload-Length": "3"})
        assert created.status_code == 201
        bob = TUS | {"Authorization": f"Bearer {token(rsa_signer, 'bob', aud='tus')}"}
        assert (await client.head(created.headers["location"], headers=bob)).status_code == 404
        assert (await client.head(created.headers["location"], headers=alice)).status_code == 200
        hs256 = await client.head(created.headers["location"], headers=bearer(sub="alice", aud="tus"))
        assert hs256.status_code == 401  # a token signed otherwise than by the issuer's keys
    assert jwks_server.fetches == 1


async def test_without_authorization_nothing_changes(apps: Callable[..., Starlette]) -> None:
    app = apps(auth_jwt_secret=None, auth_admins=())
    async with open_client(app) as client:
        created = await client.post("/files/", headers=TUS | {"Upload-Length": "3"})
        assert created.status_code == 201
        assert (await app.state.tus.state.get(upload_id(created.headers["location"]))).owner is None
        with_token = bearer(sub="bob")  # a token is ignored: nobody checks it
        assert (await client.head(created.headers["location"], headers=with_token)).status_code == 200

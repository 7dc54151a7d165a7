"""Location must be reachable by the client (PROTOCOL.md item 32): absolute, from the request's Host, from
Forwarded / X-Forwarded-* only when the peer is a trusted proxy, and below the configured base path."""

from __future__ import annotations

import re
from collections.abc import Mapping

import httpx
import pytest

from tests.http.asgi import ScriptedReceive, asgi_call, chunk, http_scope, open_client
from tests.http.conftest import AppFactory
from tests.http.transcript import PATCH_HEADERS, TUS, Exchange, create, run

X_FORWARDED = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.example"}
FORWARDED = {"Forwarded": "for=192.0.2.60;proto=https;host=proxy.example"}
ID = r"[0-9a-f]{32}"


async def location_seen_by(
    make_app: AppFactory, headers: Mapping[str, str], *, trusted: tuple[str, ...] = (), peer: str = "127.0.0.1"
) -> str:
    async with open_client(make_app(trusted_proxies=trusted), client=(peer, 123)) as client:
        return await create(client, 10, **headers)


@pytest.mark.anyio
async def test_location_is_absolute_from_host_header(make_app: AppFactory) -> None:
    async with open_client(make_app(), base_url="http://uploads.example:8080") as client:
        location = await create(client, 10)
        await run(client, [Exchange("HEAD", location, TUS, expect=200, expect_headers={"Upload-Offset": "0"})])
    assert httpx.URL(location).scheme == "http"
    assert httpx.URL(location).netloc == b"uploads.example:8080"
    assert httpx.URL(location).path.startswith("/files/")


@pytest.mark.anyio
@pytest.mark.parametrize("headers", [X_FORWARDED, FORWARDED], ids=["x-forwarded", "forwarded"])
async def test_forwarding_headers_ignored_by_default(make_app: AppFactory, headers: Mapping[str, str]) -> None:
    location = await location_seen_by(make_app, headers)
    assert location.startswith("http://testserver/files/")


SERVER_FALLBACK = [
    pytest.param(None, ("uploads.internal", 8080), "http://uploads.internal:8080/files/", id="no-host-header"),
    pytest.param("evil.example/x?", ("uploads.internal", 80), "http://uploads.internal/files/", id="not-a-host"),
    pytest.param("a b", ("uploads.internal", 80), "http://uploads.internal/files/", id="space"),
    pytest.param(None, ("::1", 8080), "http://[::1]:8080/files/", id="ipv6-server"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("host", "server", "expected"), SERVER_FALLBACK)
async def test_location_falls_back_to_server_address(
    make_app: AppFactory, host: str | None, server: tuple[str, int], expected: str
) -> None:
    """Without a usable Host header, Location names the server's own address, never the header's junk."""
    scope = http_scope("POST", "/files/", TUS | {"Upload-Length": "10"})
    scope["headers"] = [(name, value) for name, value in scope["headers"] if name != b"host"]
    if host is not None:
        scope["headers"].append((b"host", host.encode()))
    scope["server"] = server
    response = await asgi_call(make_app(), scope, ScriptedReceive([chunk(b"", more=False)]))
    assert response.status == 201
    assert re.fullmatch(re.escape(expected) + ID, response.headers["location"])


TRUSTED = [
    pytest.param(("127.0.0.1",), "127.0.0.1", id="ip"),
    pytest.param(("10.0.0.0/8",), "10.1.2.3", id="cidr"),
    pytest.param(("*",), "10.1.2.3", id="everyone"),
    pytest.param(("192.0.2.1", "::1"), "::1", id="ipv6-in-list"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("trusted", "peer"), TRUSTED)
@pytest.mark.parametrize("headers", [X_FORWARDED, FORWARDED], ids=["x-forwarded", "forwarded"])
async def test_forwarding_headers_honoured_from_trusted_proxy(
    make_app: AppFactory, headers: Mapping[str, str], trusted: tuple[str, ...], peer: str
) -> None:
    location = await location_seen_by(make_app, headers, trusted=trusted, peer=peer)
    assert location.startswith("https://proxy.example/files/")


UNTRUSTED = [
    pytest.param(("127.0.0.1",), "10.1.2.3", id="other-ip"),
    pytest.param(("10.0.0.0/8",), "192.168.0.1", id="outside-cidr"),
    pytest.param(("127.0.0.1",), "testclient", id="peer-not-an-ip"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("trusted", "peer"), UNTRUSTED)
async def test_forwarding_headers_ignored_from_untrusted_peer(
    make_app: AppFactory, trusted: tuple[str, ...], peer: str
) -> None:
    location = await location_seen_by(make_app, X_FORWARDED | FORWARDED, trusted=trusted, peer=peer)
    assert location.startswith("http://testserver/files/")


@pytest.mark.anyio
async def test_forwarded_wins_over_x_forwarded(make_app: AppFactory) -> None:
    headers = FORWARDED | {"X-Forwarded-Proto": "http", "X-Forwarded-Host": "other.example"}
    location = await location_seen_by(make_app, headers, trusted=("127.0.0.1",))
    assert location.startswith("https://proxy.example/files/")


@pytest.mark.anyio
async def test_port_in_forwarded_host_is_kept(make_app: AppFactory) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "proxy.example:8443, internal.example"}
    location = await location_seen_by(make_app, headers, trusted=("127.0.0.1",))
    assert location.startswith("https://proxy.example:8443/files/")


MALICIOUS_HOSTS = ["evil.com/x", "evil.com\r\nX-Injected: 1", "user@evil.com", "evil.com?x=", "evil .com", "evil.com#"]


@pytest.mark.anyio
@pytest.mark.parametrize("host", MALICIOUS_HOSTS)
async def test_malformed_forwarded_host_is_ignored(make_app: AppFactory, host: str) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": host}
    location = await location_seen_by(make_app, headers, trusted=("*",))
    assert httpx.URL(location).netloc == b"testserver"
    assert httpx.URL(location).path.startswith("/files/")


@pytest.mark.anyio
@pytest.mark.parametrize("proto", ["javascript", "ftp", "https://evil.com"])
async def test_unknown_forwarded_proto_is_ignored(make_app: AppFactory, proto: str) -> None:
    location = await location_seen_by(make_app, {"X-Forwarded-Proto": proto}, trusted=("*",))
    assert location.startswith("http://testserver/files/")


@pytest.mark.anyio
@pytest.mark.parametrize("collection", ["/uploads/v1/", "/uploads/v1"])
async def test_base_path_serves_whole_upload(make_app: AppFactory, collection: str) -> None:
    async with open_client(make_app(base_path="/uploads/v1/")) as client:
        created, *_ = await run(client, [
            Exchange("POST", collection, TUS | {"Upload-Length": "5"}, expect=201),
            Exchange("PATCH", "{location}", PATCH_HEADERS | {"Upload-Offset": "0"}, b"hello", expect=204),
            Exchange("HEAD", "{location}", TUS, expect=200, expect_headers={"Upload-Offset": "5"}),
        ])  # fmt: skip
    assert re.fullmatch(rf"http://testserver/uploads/v1/{ID}", created.headers["location"])


@pytest.mark.anyio
async def test_base_path_replaces_default_path(make_app: AppFactory) -> None:
    async with open_client(make_app(base_path="/uploads/v1/")) as client:
        await run(client, [Exchange("POST", "/files/", TUS | {"Upload-Length": "5"}, expect=404,
                                    expect_code="ERR_UPLOAD_NOT_FOUND")])  # fmt: skip

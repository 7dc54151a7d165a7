"""The upload page's serving (`--ui`): off by default, its files and configuration, public under authorization."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.routing import Mount

from tusserver import Settings, create_app
from tusserver.serving.cli import parse_args
from tusserver.ui import CONTENT_SECURITY_POLICY

pytestmark = pytest.mark.anyio

SECRET = "s" * 32


async def client_for(app: Starlette, tus: Starlette | None = None) -> AsyncIterator[httpx.AsyncClient]:
    """A client of `app`; the tus app (`app` itself unless given) is closed afterwards."""
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://testserver") as client:
        yield client
    await (tus or app).state.tus.aclose()


@pytest.fixture
async def client(tmp_path: Path) -> AsyncIterator[httpx.AsyncClient]:
    async for client in client_for(create_app(Settings(data_dir=tmp_path, ui=True, max_size=1000))):
        yield client


async def test_no_page_unless_asked(tmp_path: Path) -> None:
    async for client in client_for(create_app(Settings(data_dir=tmp_path))):
        assert (await client.get("/")).status_code == 404
        assert (await client.get("/static/page.js")).status_code == 404


async def test_the_page_with_a_strict_policy(client: httpx.AsyncClient) -> None:
    page = await client.get("/")
    assert page.status_code == 200
    assert page.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
    assert "script-src 'self';" in CONTENT_SECURITY_POLICY
    assert '<script type="module" src="static/page.js">' in page.text
    assert "http" not in page.text.replace("http-equiv", "")  # nothing from another site


@pytest.mark.parametrize(
    ("path", "media_type"),
    [("static/page.js", "text/javascript"), ("static/vendor/uppy/uppy.min.mjs", "text/javascript"),
     ("static/vendor/uppy/uppy.min.css", "text/css"), ("static/vendor/uppy/LICENSE", "application/octet-stream")],
)  # fmt: skip
async def test_its_files(client: httpx.AsyncClient, path: str, media_type: str) -> None:
    response = await client.get("/" + path)
    assert response.status_code == 200
    assert response.headers["content-type"].split(";")[0] in (media_type, "text/plain")
    assert (await client.head("/" + path)).status_code == 200


@pytest.mark.parametrize("path", ["/static/nothing.js", "/static/../page.py", "/static/%2e%2e/page.py", "/page.py"])
async def test_nothing_else(client: httpx.AsyncClient, path: str) -> None:
    assert (await client.get(path)).status_code == 404


async def test_the_configuration_says_where_and_how(client: httpx.AsyncClient) -> None:
    config = (await client.get("/config.json")).json()
    assert config == {
        "endpoint": "/files/", "uploads": "/api/uploads", "maxSize": 1000, "parallelUploads": 4,
        "parallelMinSize": 64 * 1024 * 1024, "auth": False,
    }  # fmt: skip


async def test_the_tus_routes_are_untouched(client: httpx.AsyncClient) -> None:
    created = await client.post("/files/", headers={"Tus-Resumable": "1.0.0", "Upload-Length": "3"})
    assert created.status_code == 201


async def test_another_path_redirects_to_its_slash(tmp_path: Path) -> None:
    async for client in client_for(create_app(Settings(data_dir=tmp_path, ui=True, ui_path="upload"))):
        assert (await client.get("/")).status_code == 404
        redirect = await client.get("/upload")
        assert (redirect.status_code, redirect.headers["location"]) == (307, "/upload/")
        assert (await client.get("/upload/")).status_code == 200
        assert (await client.get("/upload/static/page.css")).status_code == 200


async def test_mounted_the_page_names_the_mount(tmp_path: Path) -> None:
    tus = create_app(Settings(data_dir=tmp_path, ui=True, ui_path="/ui", api_path=None))
    async for client in client_for(Starlette(routes=[Mount("/uploads", app=tus)]), tus):
        config = (await client.get("/uploads/ui/config.json")).json()
        assert (config["endpoint"], config["uploads"]) == ("/uploads/files/", None)


async def test_the_page_is_public_under_authorization(tmp_path: Path) -> None:
    async for client in client_for(create_app(Settings(data_dir=tmp_path, ui=True, auth_jwt_secret=SECRET))):
        assert (await client.get("/")).status_code == 200
        assert (await client.get("/config.json")).json()["auth"] is True
        assert (await client.get("/api/uploads")).status_code == 401


@pytest.mark.parametrize(
    "flags", [["--ui", "--base-path", "/"], ["--ui", "--ui-path", "/files/x"], ["--ui", "--ui-path", "/api"]]
)
def test_a_page_path_that_would_hide_routes_is_refused(flags: list[str]) -> None:
    with pytest.raises(SystemExit):
        parse_args(flags, {})


def test_the_flag_alone_turns_it_on() -> None:
    assert parse_args(["--ui"], {}).ui
    assert not parse_args([], {}).ui
    assert parse_args(["--ui-path", "/upload"], {"TUSSERVER_UI": "true"}).ui_path == "/upload/"

"""`tusserver --ui` in headless Chromium: uploads through the page, byte-exact, through the failures a user meets."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from playwright.sync_api import Page, expect

from tests.browser.conftest import MAX_SIZE, PageLog, copy_static, keep_screenshot, start_server, stop_now
from tests.browser.helpers import (
    assert_self_contained,
    created_location,
    downloaded_sha256,
    serve_directory,
    set_network,
    throttle,
    tus_keys,
    wait_stored,
)
from tests.e2e.helpers import MiB, ServerProcess, launch, random_file, sha256_file

FILE_INPUT = 'input.uppy-Dashboard-input[name="files[]"]:not([webkitdirectory])'  # a folder input shares the name
UPLOAD_BUTTON = ".uppy-StatusBar-actionBtn--upload"


def add_files(page: Page, *paths: Path) -> None:
    page.locator(FILE_INPUT).set_input_files([str(path) for path in paths])


def upload(page: Page) -> dict[str, Any]:
    """Start the upload and wait for Uppy's `complete`; its summary (successful and failed files)."""
    page.locator(UPLOAD_BUTTON).click()
    page.wait_for_function("() => window.uploadResult !== undefined", timeout=45_000)
    result: dict[str, Any] = page.evaluate("window.uploadResult")
    return result


def assert_uploaded(result: dict[str, Any], *sources: Path) -> None:
    assert result["failed"] == []
    by_name = {file["name"]: file["uploadURL"] for file in result["successful"]}
    assert set(by_name) == {source.name for source in sources}
    for source in sources:
        assert downloaded_sha256(by_name[source.name]) == sha256_file(source)


def test_two_files_through_the_input_arrive_byte_exact_and_are_listed(
    page: Page, page_log: PageLog, server: ServerProcess, files: Path
) -> None:
    sources = random_file(files / "first.bin", 3 * MiB), random_file(files / "second.txt", 100_000)
    page.goto(server.origin + "/")
    add_files(page, *sources)
    assert_uploaded(upload(page), *sources)
    assert tus_keys(page) == []  # removeFingerprintOnSuccess: nothing left to resume
    # The status API's list, with each upload's state and a download link.
    listed = page.locator("#uploads-body tr", has_text="first.bin")
    listed.wait_for()
    assert "accepted" in listed.inner_text()
    assert listed.locator("a").get_attribute("href", timeout=1000)
    assert_self_contained(page_log, server)


def test_network_cut_mid_file_and_restored_completes_byte_exact(
    page: Page, page_log: PageLog, server: ServerProcess, files: Path
) -> None:
    source = random_file(files / "offline.bin", 12 * MiB)
    page.goto(server.origin + "/?chunkSize=1048576")
    cdp = throttle(page, upload_rate=4 * MiB)
    add_files(page, source)
    page.locator(UPLOAD_BUTTON).click()
    location = created_location(page, page_log)
    wait_stored(page, server, location, 3 * MiB)
    cdp.detach()  # the throttle off: Playwright's own offline switch takes over (one mechanism at a time)
    page.context.set_offline(True)
    page.wait_for_timeout(2000)
    page.context.set_offline(False)
    page.wait_for_function("() => window.uploadResult !== undefined", timeout=45_000)
    assert_uploaded(page.evaluate("window.uploadResult"), source)
    assert len(page_log.tus_requests("POST")) == 1  # resumed, never started again
    assert any("ERR_INTERNET_DISCONNECTED" in (request.failure or "") for request in page_log.requests)


def test_reload_mid_file_then_a_file_too_large_to_keep_is_chosen_again_and_resumes(
    page: Page, page_log: PageLog, server: ServerProcess, files: Path
) -> None:
    # Golden Retriever keeps files up to restoreMaxFileSize in the browser; a larger one comes back without its bytes.
    source = random_file(files / "reload.bin", 16 * MiB)
    page.goto(server.origin + "/?restoreMaxFileSize=1048576")
    throttle(page, upload_rate=4 * MiB)
    add_files(page, source)
    page.locator(UPLOAD_BUTTON).click()
    location = created_location(page, page_log)
    stored = wait_stored(page, server, location, 4 * MiB)
    keys = tus_keys(page)
    assert len(keys) == 1
    page.reload()
    assert tus_keys(page) == keys
    ghost = page.locator(".uppy-Dashboard-Item.is-ghost")  # listed, but its bytes must be chosen again
    expect(ghost).to_have_count(1)
    expect(page.locator(UPLOAD_BUTTON)).to_be_disabled()
    keep_screenshot(page, "reload-ghost")
    sent_before = len(page_log.requests)
    ghost.locator(".uppy-Dashboard-Item-reSelect").click()
    add_files(page, source)  # the same file (name, size, mtime): the same fingerprint
    expect(ghost).to_have_count(0)
    assert_uploaded(upload(page), source)
    after = page_log.requests[sent_before:]
    assert [request.method for request in after if "/files/" in request.url][:1] == ["HEAD"]
    patches = [int(request.headers["upload-offset"]) for request in after if request.method == "PATCH"]
    assert patches
    assert patches[0] >= stored - 512 * 1024  # from the server's offset (its last checkpoint), not from 0
    assert len(page_log.tus_requests("POST")) == 1


def test_a_file_over_max_size_shows_the_servers_reason(page: Page, server: ServerProcess, files: Path) -> None:
    source = random_file(files / "huge.bin", MAX_SIZE + 1)
    page.goto(server.origin + "/")
    add_files(page, source)
    result = upload(page)
    assert [file["name"] for file in result["failed"]] == ["huge.bin"]
    shown = page.locator("#error-list li").inner_text()
    assert "huge.bin" in shown
    assert "ERR_MAX_SIZE_EXCEEDED" in shown


def test_large_files_go_up_in_parallel_parts_joined_by_the_server(
    page: Page, page_log: PageLog, server: ServerProcess, files: Path
) -> None:
    source = random_file(files / "parallel.bin", 8 * MiB)
    page.goto(server.origin + "/?parallelMinSize=1048576")
    add_files(page, source)
    assert_uploaded(upload(page), source)
    concat = [request.headers.get("upload-concat", "") for request in page_log.tus_requests("POST")]
    assert sum(value == "partial" for value in concat) == 4
    assert sum(value.startswith("final;") for value in concat) == 1
    assert page.locator("#uploads-body tr", has_text="parallel.bin").count() == 1  # partials are not listed


@pytest.fixture
def other_origin(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The page's files served by another HTTP server (another origin): its URL and directory."""
    site = copy_static(tmp_path / "site")
    with serve_directory(site) as url:
        yield url, site


def test_the_page_on_another_origin_uploads_through_cors(
    page: Page, page_log: PageLog, other_origin: tuple[str, Path], tmp_path: Path, files: Path
) -> None:
    page_origin, site = other_origin
    server = start_server(tmp_path / "server", "--cors-origins", page_origin)
    try:
        config = {"endpoint": server.url, "uploads": server.origin + "/api/uploads"}
        (site / "config.json").write_text(json.dumps(config))
        source = random_file(files / "cors.bin", 2 * MiB)
        page.goto(page_origin + "/")
        add_files(page, source)
        assert_uploaded(upload(page), source)
        page.locator("#uploads-body tr", has_text="cors.bin").wait_for()  # the status API, cross-origin too
        assert [request.all_headers().get("origin") for request in page_log.tus_requests("POST")] == [page_origin]
    finally:
        stop_now(server)


def test_server_killed_and_restarted_mid_file_resumes(
    page: Page, page_log: PageLog, tmp_path: Path, files: Path
) -> None:
    workdir = tmp_path / "server"
    servers = [start_server(workdir)]
    try:
        source = random_file(files / "restart.bin", 16 * MiB)
        page.goto(servers[0].origin + "/")
        cdp = throttle(page, upload_rate=4 * MiB)
        add_files(page, source)
        page.locator(UPLOAD_BUTTON).click()
        wait_stored(page, servers[0], created_location(page, page_log), 4 * MiB)
        servers[0].process.kill()  # a crash, mid-PATCH
        servers[0].process.wait(10)
        page.wait_for_timeout(1000)
        servers.append(launch(workdir, "--ui", "--port", str(servers[0].port)))  # the same port and data
        servers[1].port = servers[0].port
        servers[1].wait_ready()
        set_network(cdp, upload_rate=-1)
        page.wait_for_function("() => window.uploadResult !== undefined", timeout=45_000)
        assert_uploaded(page.evaluate("window.uploadResult"), source)
        patches = [int(request.headers["upload-offset"]) for request in page_log.tus_requests("PATCH")]
        assert len(patches) >= 2
        assert patches[-1] > 0  # the last PATCH went on from the server's offset
        assert len(page_log.tus_requests("POST")) == 1
    finally:
        for server in servers:
            stop_now(server)


def test_a_token_from_the_link_goes_with_every_request(
    page: Page, page_log: PageLog, tmp_path: Path, files: Path
) -> None:
    secret = "k" * 32
    token = jwt.encode({"sub": "alice", "exp": int(time.time()) + 600}, secret, algorithm="HS256")
    server = start_server(tmp_path / "server", "--auth-jwt-secret", secret)
    try:
        source = random_file(files / "alice.bin", 1 * MiB)
        page.goto(f"{server.origin}/#token={token}")
        page.locator("#uploads-body").wait_for(state="attached")
        assert "token" not in page.url  # out of the address bar and the history
        add_files(page, source)
        assert_uploaded_as(upload(page), source, token)
        page.locator("#uploads-body tr", has_text="alice.bin").wait_for()  # alice's list
        api = [sent for sent in page_log.requests if "/files/" in sent.url or "/api/" in sent.url]
        assert api
        assert all(sent.headers.get("authorization") == f"Bearer {token}" for sent in api if sent.method != "OPTIONS")
    finally:
        stop_now(server)


def assert_uploaded_as(result: dict[str, Any], source: Path, token: str) -> None:
    assert result["failed"] == []
    url = result["successful"][0]["uploadURL"]
    assert requests.get(url, timeout=10).status_code == 401  # the bytes are alice's
    got = requests.get(url, headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert hashlib.sha256(got.content).hexdigest() == sha256_file(source)

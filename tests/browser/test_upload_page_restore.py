"""The upload page's files survive a reload (Uppy's Golden Retriever), and its pause button pauses: issue 24's
acceptance test ("drop two files, pull the network, reload the page, and both finish byte-exact") in Chromium."""

from __future__ import annotations

import base64
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TypeVar

import pytest
from playwright.sync_api import Browser, Page, Request, expect
from playwright.sync_api import Error as PlaywrightError

from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, PageLog, keep_screenshot
from tests.browser.helpers import (
    assert_self_contained,
    created_location,
    downloaded_sha256,
    drop_new_files,
    set_network,
    throttle,
    wait_kept_for_restore,
    wait_released,
    wait_stored,
)
from tests.e2e.helpers import MiB, ServerProcess, head_offset, random_file, sha256_file

FILE_INPUT = 'input.uppy-Dashboard-input[name="files[]"]:not([webkitdirectory])'  # a folder input shares the name
UPLOAD_BUTTON = ".uppy-StatusBar-actionBtn--upload"
ITEM = ".uppy-Dashboard-Item"
DROPPED_SIZE = 6 * MiB
K = TypeVar("K")


def locations_by_name(
    log: PageLog, count: int, page: Page, key: Callable[[Request], str] | None = None
) -> dict[str, str]:
    """The upload URL of each upload, by its file's name (or by `key`), once `count` POSTs have been answered."""
    for _ in range(600):
        answered = [request for request in log.tus_requests("POST") if request.response() is not None]
        if len(answered) >= count:
            return {(key or filename)(request): location(request) for request in answered}
        page.wait_for_timeout(50)
    raise AssertionError(f"{count} uploads were never created")


def filename(request: Request) -> str:
    """The `filename` entry of the request's Upload-Metadata (base64)."""
    pairs = (entry.split(" ") for entry in request.headers["upload-metadata"].split(","))
    return next(base64.b64decode(value).decode() for key, value in pairs if key == "filename")


def location(request: Request) -> str:
    response = request.response()
    assert response is not None
    return response.headers["location"]


def sent_offsets(requests: list[Request], url: str, method: str = "PATCH") -> list[int]:
    return [
        int(request.headers["upload-offset"]) for request in requests if request.method == method and request.url == url
    ]


def add_two_files(page: Page, chosen: Path) -> dict[str, str]:
    """`chosen` through the file chooser ("browse"), and dropped.bin made in the page and dropped on the Dashboard:
    the user's two ways in. Their SHA-256 by name."""
    with page.expect_file_chooser() as chooser:
        page.locator(".uppy-Dashboard-browse").first.click()
    chooser.value.set_files(str(chosen))
    digests = drop_new_files(page, ".uppy-Dashboard-inner", ("dropped.bin", DROPPED_SIZE))
    digests[chosen.name] = sha256_file(chosen)
    expect(page.locator(ITEM)).to_have_count(2)
    return digests


def assert_resumed_from_the_servers_offsets(
    after: list[Request], locations: dict[K, str], held: dict[K, int], sizes: dict[K, int] | None = None
) -> None:
    """Each upload, after the reload: a HEAD on its own URL first, then (unless it was whole) PATCHes from the offset
    it answered, which is at least what the server `held` when the page went (and less than the size)."""
    for key, url in locations.items():
        first = next(request for request in after if request.url == url)
        assert first.method == "HEAD"
        response = first.response()
        assert response is not None
        offset = int(response.headers["upload-offset"])
        assert offset >= held[key]  # late bytes of a request cut short may still have arrived: at least
        if sizes is not None:
            assert offset < sizes[key]
        assert sent_offsets(after, url)[:1] in ([offset], [])


def test_two_files_dropped_and_chosen_survive_a_network_cut_and_a_reload_byte_exact(
    page: Page, page_log: PageLog, server: ServerProcess, files: Path
) -> None:
    chosen = random_file(files / "chosen.bin", 5 * MiB)
    sizes = {"dropped.bin": DROPPED_SIZE, chosen.name: chosen.stat().st_size}
    page.goto(server.origin + "/?chunkSize=524288")  # chunks: going offline fails the next one, the file is not done
    cdp = throttle(page, upload_rate=2 * MiB)
    digests = add_two_files(page, chosen)
    page.locator(UPLOAD_BUTTON).click()
    locations = locations_by_name(page_log, 2, page)
    assert set(locations) == set(digests)
    for url in locations.values():
        wait_stored(page, server, url, 1 * MiB)
    kept = wait_kept_for_restore(page, 2)  # both files' bytes in IndexedDB, and their uploads as started

    # The network goes: the requests after those in flight fail; the user reloads and gets the browser's error page.
    with page.expect_event("requestfailed", lambda request: "/files/" in request.url):
        set_network(cdp, offline=True)
    with pytest.raises(PlaywrightError, match="ERR_INTERNET_DISCONNECTED"):
        page.reload()
    held = {name: head_offset(url) for name, url in locations.items()}
    assert all(0 < held[name] < sizes[name] for name in locations), held  # mid-file, both

    # The network is back; the user opens the page again and adds nothing: both uploads go on from the server's offset.
    set_network(cdp, offline=False)
    sent_before = len(page_log.requests)
    page.goto(server.origin + "/?chunkSize=524288")
    expect(page.locator(ITEM)).to_have_count(2)
    keep_screenshot(page, "reload-restored")
    page.wait_for_function("() => window.uploadResult !== undefined", timeout=45_000)
    result = page.evaluate("window.uploadResult")
    assert result["failed"] == []
    assert {file["name"]: file["uploadURL"] for file in result["successful"]} == locations
    for name, url in locations.items():
        assert sha256_file(server.stored_path(url)) == digests[name]  # byte-exact, on the server's disk
    assert_resumed_from_the_servers_offsets(page_log.requests[sent_before:], locations, held, sizes)
    assert len(page_log.tus_requests("POST")) == 2  # never created again
    # The files are those Golden Retriever kept, restored with their bytes (not ghosts waiting to be chosen again).
    restored = page.evaluate("window.uppy.getFiles().map((file) => [file.id, file.isRestored, file.isGhost])")
    assert sorted(restored) == [[file_id, True, False] for file_id in kept["blobs"]]
    wait_released(page)  # uploaded: Golden Retriever lets go of its copies
    expect(page.locator(".uppy-StatusBar")).to_contain_text("Complete")
    assert_self_contained(page_log, server)


def test_the_pause_button_pauses_and_resume_finishes_byte_exact(
    page: Page, page_log: PageLog, server: ServerProcess, files: Path
) -> None:
    source = random_file(files / "paused.bin", 12 * MiB)
    page.goto(server.origin + "/")
    cdp = throttle(page, upload_rate=4 * MiB)
    page.locator(FILE_INPUT).set_input_files(str(source))
    page.locator(UPLOAD_BUTTON).click()
    url = created_location(page, page_log)
    wait_stored(page, server, url, 2 * MiB)
    with page.expect_event("requestfailed", lambda request: request.method == "PATCH"):  # the PATCH is cut short
        page.get_by_role("button", name="Pause upload", exact=True).click()
    paused_at = head_offset(url)  # HEAD takes the upload's lock: the cut PATCH has been handled
    patches = len(page_log.tus_requests("PATCH"))
    # Paused, nothing moves: not in a second (4 MiB at this rate), not a request. The wait is the observation.
    page.wait_for_timeout(1000)
    assert head_offset(url) == paused_at < source.stat().st_size
    assert len(page_log.tus_requests("PATCH")) == patches
    expect(page.locator(".uppy-StatusBar")).to_contain_text("Paused")
    keep_screenshot(page, "paused")

    set_network(cdp)  # no limit: the rest goes up at once
    sent_before = len(page_log.requests)
    page.get_by_role("button", name="Resume upload", exact=True).click()
    page.wait_for_function("() => window.uploadResult !== undefined", timeout=45_000)
    result = page.evaluate("window.uploadResult")
    assert result["failed"] == []
    assert [file["uploadURL"] for file in result["successful"]] == [url]
    assert sha256_file(server.stored_path(url)) == sha256_file(source)
    assert sent_offsets(page_log.requests[sent_before:], url)[:1] == [paused_at]  # on from where it paused
    assert len(page_log.tus_requests("POST")) == 1


@contextmanager
def browser_with_profile(browser: Browser, profile: Path, log: PageLog, screenshot: str) -> Iterator[Page]:
    """A browser of its own on the profile directory `profile` (closing it is quitting the browser), its page
    recorded in `log`; the page's screenshot is kept as `screenshot`."""
    context = browser.browser_type.launch_persistent_context(
        profile, executable_path=CHROMIUM, args=CHROMIUM_ARGS, viewport={"width": 1100, "height": 900}
    )
    try:
        page = context.pages[0] if context.pages else context.new_page()
        page.set_default_timeout(30_000)
        page.on("request", log.record)
        yield page
        keep_screenshot(page, screenshot)
    finally:
        context.close()


def test_a_browser_restart_mid_file_restores_it_and_its_parallel_parts_resume(
    browser: Browser, server: ServerProcess, files: Path, tmp_path: Path
) -> None:
    source = random_file(files / "restart.bin", 8 * MiB)
    # 4 partial uploads joined by the server, in chunks: quitting lets the chunks in flight go at full speed, no more.
    page_url = server.origin + "/?parallelMinSize=1048576&chunkSize=262144"
    before, after = PageLog(), PageLog()
    with browser_with_profile(browser, tmp_path / "profile", before, "restart-before") as page:
        page.goto(page_url)
        throttle(page, upload_rate=2 * MiB)
        page.locator(FILE_INPUT).set_input_files(str(source))
        page.locator(UPLOAD_BUTTON).click()
        parts = list(locations_by_name(before, 4, page, key=location).values())
        for part in parts:
            wait_stored(page, server, part, 256 * 1024)
        wait_kept_for_restore(page, 1)
    held = [head_offset(part) for part in parts]  # the browser has quit, mid-file
    assert sum(held) < source.stat().st_size, held
    with browser_with_profile(browser, tmp_path / "profile", after, "restart-after") as page:
        page.goto(page_url)  # the user comes back and adds nothing
        page.wait_for_function("() => window.uploadResult !== undefined", timeout=45_000)
        result = page.evaluate("window.uploadResult")
        # Within the browser's life: the requests' answers are read from it.
        assert_resumed_from_the_servers_offsets(after.requests, dict(enumerate(parts)), dict(enumerate(held)))
    assert result["failed"] == []
    assert [file["name"] for file in result["successful"]] == [source.name]
    assert downloaded_sha256(result["successful"][0]["uploadURL"]) == sha256_file(source)
    [final] = [request.headers.get("upload-concat", "") for request in after.tus_requests("POST")]
    assert sorted(final.removeprefix("final;").split(" ")) == sorted(parts)  # the parts resumed: none made again
    assert after.tus_requests("PATCH")  # what was missing went up after the restart


def test_with_restore_off_the_browser_keeps_no_copy(
    page: Page, page_log: PageLog, server: ServerProcess, files: Path
) -> None:
    source = random_file(files / "unkept.bin", 4 * MiB)
    page.goto(server.origin + "/?restore=off")
    throttle(page, upload_rate=4 * MiB)
    page.locator(FILE_INPUT).set_input_files(str(source))
    page.locator(UPLOAD_BUTTON).click()
    wait_stored(page, server, created_location(page, page_log), 1 * MiB)  # Golden Retriever would have kept it by now
    assert not page.evaluate("indexedDB.databases()")  # no database at all: no copy, no list of files
    page.reload()
    page.locator(".uppy-Dashboard-browse").first.wait_for()  # an empty Dashboard: nothing came back
    assert page.locator(ITEM).count() == 0

"""examples/browser/ (a plain page with tus-js-client), served as its header comment says, in headless Chromium:
an upload, stopped by a reload mid-file and resumed when the same file is chosen again, arrives byte-exact."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.browser.conftest import PageLog
from tests.browser.helpers import created_location, downloaded_sha256, serve_directory, throttle, wait_stored
from tests.e2e.helpers import MiB, ServerProcess, random_file, sha256_file

EXAMPLES = Path(__file__).parent.parent.parent / "examples"


@pytest.fixture(scope="module")
def examples_site() -> Iterator[str]:
    """`python -m http.server --directory examples`, in a thread."""
    assert (EXAMPLES / "js" / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in examples/js"
    with serve_directory(EXAMPLES) as url:
        yield url


def test_plain_tus_js_client_page_resumes_after_a_reload(
    page: Page, page_log: PageLog, server: ServerProcess, examples_site: str, files: Path
) -> None:
    source = random_file(files / "example.bin", 12 * MiB)
    page.goto(f"{examples_site}/browser/?endpoint={server.url}")
    throttle(page, upload_rate=4 * MiB)
    page.locator("#file").set_input_files(str(source))
    stored = wait_stored(page, server, created_location(page, page_log), 2 * MiB)
    page.reload()
    throttle(page)  # no limit
    sent_before = len(page_log.requests)
    page.locator("#file").set_input_files(str(source))
    page.locator("#status", has_text="Done").wait_for()
    url = page.locator("#link").get_attribute("href")
    assert url is not None
    assert downloaded_sha256(url) == sha256_file(source)
    patches = [int(sent.headers["upload-offset"]) for sent in page_log.requests[sent_before:] if sent.method == "PATCH"]
    assert patches[0] >= stored - 512 * 1024  # from the server's offset (its last checkpoint), not from 0
    assert len(page_log.tus_requests("POST")) == 1

"""What the browser tests share: driving pages, throttling or cutting their network, watching the server."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import requests
from playwright.sync_api import CDPSession, Page

from tests.browser.conftest import PageLog
from tests.e2e.helpers import ServerProcess


def downloaded_sha256(url: str) -> str:
    """The upload's bytes as the server gives them back (GET), hashed."""
    response = requests.get(url, timeout=30)
    assert response.status_code == 200, response.text
    return hashlib.sha256(response.content).hexdigest()


def throttle(page: Page, *, upload_rate: int = -1, offline: bool = False) -> CDPSession:
    """Slow the page's request bodies (bytes/s; -1: no limit), or cut its network. Both through one CDP session:
    a second mechanism (Playwright's `set_offline`) would override it (../shared/BROWSER.md)."""
    cdp = page.context.new_cdp_session(page)
    conditions = {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_rate}
    cdp.send("Network.enable")
    cdp.send("Network.emulateNetworkConditions", conditions)
    return cdp


def set_network(cdp: CDPSession, *, upload_rate: int = -1, offline: bool = False) -> None:
    conditions = {"offline": offline, "latency": 0, "downloadThroughput": -1, "uploadThroughput": upload_rate}
    cdp.send("Network.emulateNetworkConditions", conditions)


def created_location(page: Page, log: PageLog) -> str:
    """The first upload's URL, once its POST has been answered."""
    page.wait_for_function("() => true")  # let events be delivered
    for _ in range(600):
        posts = [request for request in log.tus_requests("POST") if request.response() is not None]
        if posts:
            response = posts[0].response()
            assert response is not None
            return response.headers["location"]
        page.wait_for_timeout(50)
    raise AssertionError("no upload was created")


def wait_stored(page: Page, server: ServerProcess, location: str, at_least: int) -> int:
    """Poll (the page's event loop kept running) until the server holds `at_least` bytes of the upload."""
    path = server.stored_path(location)
    for _ in range(600):
        stored = path.stat().st_size if path.exists() else 0
        if stored >= at_least:
            return stored
        page.wait_for_timeout(50)
    raise AssertionError(f"the server never held {at_least} bytes of {location}")


def tus_keys(page: Page) -> list[str]:
    """The upload URLs tus-js-client keeps in localStorage to resume with."""
    keys: list[str] = page.evaluate("Object.keys(localStorage).filter((key) => key.startsWith('tus::'))")
    return keys


@contextmanager
def serve_directory(directory: Path) -> Iterator[str]:
    """`directory` served over HTTP on another port (another origin than the server's); its URL."""
    handler = partial(http.server.SimpleHTTPRequestHandler, directory=str(directory))
    handler.log_message = lambda *args: None  # type: ignore[attr-defined]
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()

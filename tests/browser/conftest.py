"""The upload page in a real browser: Debian's Chromium driven by Playwright for Python (no browser download).

`CHROMIUM` names the browser (default: Debian's binary behind /usr/bin/chromium, which skips the wrapper's
noisy /dev/shm check); without it these tests are skipped. Every test leaves a
screenshot in `TUSSERVER_ARTEFACTS` (default /tmp/tusserver-artefacts/browser), kept after the run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, Request, sync_playwright

from tests.e2e.helpers import MiB, ServerProcess, launch

CHROMIUM: str = os.environ.get("CHROMIUM") or next(
    (path for path in ("/usr/lib/chromium/chromium", "/usr/bin/chromium") if Path(path).exists()), ""
)
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-auto-reload",  # an error page reloads itself after 1 s: it would race the tests' own reload
]  # fmt: skip
ARTEFACTS = Path(os.environ.get("TUSSERVER_ARTEFACTS") or Path(tempfile.gettempdir()) / "tusserver-artefacts/browser")
MAX_SIZE = 32 * MiB  # the shared server's --max-size: every test file is smaller but the "too large" one


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    mine = [item for item in items if here in Path(str(item.fspath)).parents]
    for item in mine:
        item.add_marker(pytest.mark.browser)
        if not CHROMIUM or not Path(CHROMIUM).exists():
            item.add_marker(pytest.mark.skip(reason="no Chromium (apt-get install chromium, or set CHROMIUM)"))


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Module-scoped, not session-scoped: Playwright's sync API keeps an asyncio loop running in this thread
    while it is started, and the async tests of later modules could not run their own."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@dataclass
class PageLog:
    """What the page said (console, errors) and asked for (every request's method, URL and headers)."""

    console: list[str] = field(default_factory=list)
    requests: list[Request] = field(default_factory=list)

    def record(self, request: Request) -> None:
        self.requests.append(request)

    def tus_requests(self, method: str) -> list[Request]:
        return [request for request in self.requests if request.method == method and "/files/" in request.url]


@pytest.fixture
def page_log() -> PageLog:
    return PageLog()


@pytest.fixture
def page(browser: Browser, page_log: PageLog, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A page in a fresh context (its own localStorage); a screenshot of it is kept after the test."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.on("console", lambda message: page_log.console.append(f"{message.type}: {message.text}"))
    page.on("pageerror", lambda error: page_log.console.append(f"pageerror: {error}"))
    page.on("request", page_log.record)
    yield page
    try:
        keep_screenshot(page, request.node.name)
    finally:
        context.close()


def keep_screenshot(page: Page, name: str) -> None:
    """The whole page, as `ARTEFACTS/<name>.png`."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=ARTEFACTS / f"{name}.png", full_page=True)


def start_server(workdir: Path, *flags: str) -> ServerProcess:
    """`tusserver --ui` with the given flags, on a free port, ready."""
    server = launch(workdir, "--ui", "--checkpoint-size", "256K", "--log-level", "warning", *flags)
    server.wait_ready()
    return server


def stop_now(server: ServerProcess) -> None:
    """Kill: a graceful stop would wait up to 10 s for the connections a browser keeps or a test cut."""
    server.process.kill()
    server.process.wait(10)


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One server for the tests that touch only their own uploads."""
    server = start_server(tmp_path_factory.mktemp("server"), "--max-size", str(MAX_SIZE))
    try:
        yield server
    finally:
        stop_now(server)


@pytest.fixture(scope="session")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory for the tests' files (random bytes, made on demand by `random_file`)."""
    return tmp_path_factory.mktemp("files")


def copy_static(destination: Path) -> Path:
    """The page's files, as a site other than the server would host them."""
    from tusserver.ui.page import STATIC_DIR  # noqa: PLC0415

    shutil.copytree(STATIC_DIR, destination / "static")
    shutil.copy(STATIC_DIR / "index.html", destination / "index.html")
    return destination

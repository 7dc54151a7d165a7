"""What the browser tests share: driving pages, throttling or cutting their network, watching the server."""

from __future__ import annotations

import hashlib
import http.server
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import Any

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


# Random files made in the page (as a user's files would be, never seen by Python): their names, sizes and SHA-256.
_MAKE_FILES = """async (wanted) => {
  const made = []
  for (const [name, size] of wanted) {
    const bytes = new Uint8Array(size)
    for (let at = 0; at < size; at += 65536) crypto.getRandomValues(bytes.subarray(at, at + 65536))
    const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes))
    made.push({ file: new File([bytes], name, { type: 'application/octet-stream', lastModified: 1700000000000 }),
                sha256: Array.from(digest, (byte) => byte.toString(16).padStart(2, '0')).join('') })
  }
  return made
}"""

# The drag-and-drop gesture as the browser delivers it: dragenter, dragover, drop, all carrying one DataTransfer.
_DROP = """([target, made]) => {
  const transfer = new DataTransfer()
  for (const { file } of made) transfer.items.add(file)
  const element = document.querySelector(target)
  for (const type of ['dragenter', 'dragover', 'drop']) {
    element.dispatchEvent(new DragEvent(type, { bubbles: true, cancelable: true, dataTransfer: transfer }))
  }
}"""


def drop_new_files(page: Page, target: str, *wanted: tuple[str, int]) -> dict[str, str]:
    """Make files of these (name, size) in the page and drop them on `target`; their SHA-256 by name."""
    made = page.evaluate_handle(_MAKE_FILES, [list(pair) for pair in wanted])
    try:
        page.evaluate(_DROP, [target, made])
        digests: dict[str, str] = page.evaluate(
            "(made) => Object.fromEntries(made.map((m) => [m.file.name, m.sha256]))", made
        )
    finally:
        made.dispose()
    return digests


# What Golden Retriever has kept in IndexedDB to restore after a reload: the ids of the files whose bytes it holds,
# and the uploads it will resume (file id -> whether it had started).
_KEPT = """async () => {
  const empty = { blobs: [], uploads: 0, started: {} }
  if (!(await indexedDB.databases()).some((db) => db.name === 'uppy-blobs')) return empty  // not made yet
  const db = await new Promise((resolve, reject) => {
    const opening = indexedDB.open('uppy-blobs')
    opening.onsuccess = () => resolve(opening.result)
    opening.onerror = () => reject(opening.error)
  })
  const read = (store, how) => new Promise((resolve, reject) => {
    const request = how(db.transaction([store]).objectStore(store))
    request.onsuccess = () => resolve(request.result)
    request.onerror = () => reject(request.error)
  })
  try {
    if (!db.objectStoreNames.contains('metadata')) return empty  // being made
    const blobs = await read('files', (store) => store.getAll())
    const saved = await read('metadata', (store) => store.get('uppy'))
    if (!saved) return { ...empty, blobs: blobs.map((blob) => blob.fileID).sort() }
    const state = JSON.parse(saved.metadata)
    const started = Object.fromEntries(Object.values(state.files).map((f) => [f.id, !!f.progress.uploadStarted]))
    const uploads = Object.keys(state.currentUploads).length
    return { blobs: blobs.map((blob) => blob.fileID).sort(), uploads, started }
  } finally {
    db.close()
  }
}"""


def kept_for_restore(page: Page) -> dict[str, Any]:
    """Golden Retriever's store (`_KEPT`): {"blobs": [file ids], "uploads": n, "started": {file id: bool}}."""
    kept: dict[str, Any] = page.evaluate(_KEPT)
    return kept


def wait_kept_for_restore(page: Page, count: int) -> dict[str, Any]:
    """Wait until Golden Retriever holds the bytes of `count` files and has saved them as started uploads: it writes
    asynchronously (the metadata at most every 500 ms), and a reload before that would restore less."""
    for _ in range(600):
        kept = kept_for_restore(page)
        if len(kept["blobs"]) == count and kept["uploads"] and sum(kept["started"].values()) == count:
            return kept
        page.wait_for_timeout(50)
    raise AssertionError(f"Golden Retriever never kept {count} started uploads: {kept_for_restore(page)}")


def wait_released(page: Page) -> None:
    """Wait until Golden Retriever holds no file's bytes (it deletes them once their upload is complete)."""
    for _ in range(600):
        if not kept_for_restore(page)["blobs"]:
            return
        page.wait_for_timeout(50)
    raise AssertionError(f"Golden Retriever kept files after their upload: {kept_for_restore(page)}")


def assert_self_contained(log: PageLog, server: ServerProcess) -> None:
    """The page broke no Content Security Policy rule and fetched nothing from anywhere but the server."""
    assert not [line for line in log.console if "Content Security Policy" in line], log.console
    assert all(request.url.startswith(server.origin) for request in log.requests)

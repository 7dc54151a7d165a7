"""`TusClient`: the same client for code without an event loop.

It runs an `AsyncTusClient` on an event loop of its own, in a thread started with the client and stopped by
`close()` (anyio's blocking portal), rather than a second implementation on a sync HTTP stack: one code path,
one set of tests, and the connection pool lives as long as the client, across calls. Progress callbacks run on
that thread.
"""

from __future__ import annotations

from collections.abc import Iterable
from contextlib import ExitStack
from pathlib import Path
from types import TracebackType

from anyio.from_thread import start_blocking_portal

from tusserver.client.client import AsyncTusClient
from tusserver.client.downloads import DownloadResult
from tusserver.client.files import Source
from tusserver.client.options import ProgressCallback, TransferOptions
from tusserver.client.store import ResumeStore
from tusserver.client.uploads import UploadResult

__all__ = ["TusClient"]


def _backend_options() -> dict[str, bool]:
    try:
        import uvloop  # noqa: F401, PLC0415 -- only asks whether it is installed
    except ImportError:
        return {}
    return {"use_uvloop": True}


class TusClient:
    """A tus client for synchronous code; the arguments and methods are `AsyncTusClient`'s.

    Use it as `with TusClient(...) as client:`, or call `close()`.
    """

    def __init__(
        self,
        options: TransferOptions | None = None,
        *,
        store: ResumeStore | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(start_blocking_portal("asyncio", backend_options=_backend_options()))
        self._client = AsyncTusClient(options, store=store, progress=progress)

    @property
    def options(self) -> TransferOptions:
        return self._client.options

    def upload(self, path: str | Path, endpoint: str) -> UploadResult:
        """See `AsyncTusClient.upload`."""
        return self._portal.call(self._client.upload, path, endpoint)

    def upload_all(self, sources: Iterable[Source], endpoint: str) -> list[UploadResult]:
        """See `AsyncTusClient.upload_all`."""
        return self._portal.call(self._client.upload_all, list(sources), endpoint)

    def upload_paths(self, paths: Iterable[str | Path], endpoint: str) -> list[UploadResult]:
        """See `AsyncTusClient.upload_paths`."""
        return self._portal.call(self._client.upload_paths, list(paths), endpoint)

    def download(self, url: str, destination: str | Path | None = None) -> DownloadResult:
        """See `AsyncTusClient.download`."""
        return self._portal.call(self._client.download, url, destination)

    def close(self) -> None:
        """Close the connections and stop the event loop thread."""
        try:
            self._portal.call(self._client.aclose)
        finally:
            self._stack.close()

    def __enter__(self) -> TusClient:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

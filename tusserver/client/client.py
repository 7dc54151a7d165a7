"""`AsyncTusClient`: uploads (files and directories) and downloads from async code, over one connection pool."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

import anyio

from tusserver.client.downloads import DownloadResult, Downloads
from tusserver.client.errors import BatchError, TusClientError
from tusserver.client.files import Source, collect
from tusserver.client.options import ProgressCallback, TransferOptions
from tusserver.client.session import Session
from tusserver.client.store import ResumeStore
from tusserver.client.uploads import UploadResult, Uploads

__all__ = ["AsyncTusClient"]


class AsyncTusClient:
    """A tus client for async code (asyncio or trio through anyio).

    Args:
        options: chunk size, parallel streams, checksums, headers, retries (`TransferOptions`).
        store: where uploads and downloads are remembered so that they resume across runs; None forgets them
            when the process ends (`ResumeStore()` is the CLI's file in the user's data directory).
        progress: `progress(path, transferred, length)`, called on the event loop as bytes move.

    Use it as `async with AsyncTusClient(...) as client:`, or call `aclose()`.
    """

    def __init__(
        self,
        options: TransferOptions | None = None,
        *,
        store: ResumeStore | None = None,
        progress: ProgressCallback | None = None,
    ) -> None:
        self.options = options or TransferOptions()
        self.store = store
        # Enough connections for every stream, plus one for the HEADs and the POSTs between them.
        self._session = Session(
            self.options.headers, timeout=self.options.timeout, connections=self.options.parallel + 1
        )
        self._uploads = Uploads(self._session, self.options, store, progress)
        self._downloads = Downloads(self._session, self.options, store, progress)

    async def upload(self, path: str | Path, endpoint: str) -> UploadResult:
        """Upload one file to a tus creation endpoint (e.g. `http://127.0.0.1:8080/files/`).

        Raises:
            TusClientError: it failed for good (after retries); the message says why.
        """
        return await self._uploads.upload(Source.of(Path(path), Path(path).name), endpoint)

    async def upload_all(self, sources: Iterable[Source], endpoint: str) -> list[UploadResult]:
        """Upload many files (from `collect([...])`: directories recursively), `options.parallel` streams at once.

        Every file is tried even if others fail.

        Raises:
            BatchError: some files failed; it holds the results of the others and each failure.
        """
        files = list(sources)
        results: dict[int, UploadResult] = {}
        failures: list[tuple[Path, TusClientError]] = []
        pending = anyio.CapacityLimiter(self.options.parallel)

        async def one(index: int, source: Source) -> None:
            async with pending:
                try:
                    results[index] = await self._uploads.upload(source, endpoint)
                except TusClientError as exc:
                    failures.append((source.path, exc))
                except OSError as exc:
                    failures.append((source.path, TusClientError(f"{source.path}: {exc}")))

        async with anyio.create_task_group() as group:
            for index, source in enumerate(files):
                group.start_soon(one, index, source)
        done = [results[index] for index in sorted(results)]
        if failures:
            raise BatchError(done, failures)
        return done

    async def upload_paths(self, paths: Iterable[str | Path], endpoint: str) -> list[UploadResult]:
        """`upload_all(collect(paths))`: files as given, directories recursively."""
        return await self.upload_all(collect(paths), endpoint)

    async def download(self, url: str, destination: str | Path | None = None) -> DownloadResult:
        """Download a finished upload to `destination`: a file, or a directory (one that exists, or any path
        ending in `/`) to put it in under its own name; None: the current directory.

        Raises:
            TusClientError: it failed for good; `DigestMismatchError` if the bytes do not match the digest.
        """
        return await self._downloads.download(url, destination)

    async def aclose(self) -> None:
        await self._session.aclose()

    async def __aenter__(self) -> AsyncTusClient:
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

"""The requests of one upload stream: POST, HEAD and the PATCH loop, each with its retries, and progress.

Every loop here ends: each failure without progress spends one of `RetryPolicy.retries`, and each wait is the
server's `Retry-After` or a capped backoff. A 2xx PATCH answer is believed only if its `Upload-Offset` moved
forward within what was sent (tus §PATCH: the offset is the old one plus the bytes stored); anything else sends
the client to HEAD, whose offset the next PATCH must start from (PROTOCOL.md items 18, 28, 29).
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from pathlib import Path

import anyio
import anyio.to_thread

from tusserver.client.errors import TransferError, UploadGoneError
from tusserver.client.files import Source, hash_range, read_range
from tusserver.client.options import ProgressCallback, TransferOptions
from tusserver.client.protocol import OCTET_STREAM, TUS_HEADERS, Outcome, classify, format_digest, parse_offset
from tusserver.client.session import DEFAULT_READ, Attempts, NetworkError, Session, describe, httpx
from tusserver.client.store import PartRecord

__all__ = ["CREATE_WITH_BODY", "Streams"]

# Files up to this size go in the creation POST itself (creation-with-upload): one request instead of two per
# small file of a directory. Larger ones are created empty first, so their URL is stored before any byte goes.
CREATE_WITH_BODY = 1024 * 1024
_GONE = frozenset({403, 404, 410})  # HEAD on a stored URL: the upload is not there for us (PROTOCOL.md item 14)


class Streams:
    """Sends bytes of local files to tus uploads; at most `parallel` streams hold a `slot()` at once."""

    def __init__(self, session: Session, options: TransferOptions, progress: ProgressCallback | None) -> None:
        self._session = session
        self._options = options
        self._progress = progress
        self._limiter = anyio.CapacityLimiter(options.parallel)
        self._positions: dict[Path, dict[int, int]] = {}

    def slot(self) -> AbstractAsyncContextManager[None]:
        """Held while a stream transfers, so that files and parts together keep `parallel` streams busy."""
        limiter: AbstractAsyncContextManager[None] = self._limiter
        return limiter

    async def offset(self, url: str) -> int | None:
        """The server's offset of the upload at `url` (HEAD), None if it is gone."""
        return await self._head(url, Attempts(self._options.retry, f"HEAD {url}"))

    async def finished(self, url: str, length: int) -> bool:
        """The upload at `url` exists and holds all `length` bytes (tus §HEAD; PROTOCOL.md item 13)."""
        return await self.offset(url) == length

    async def create(
        self, endpoint: str, source: Source, part: PartRecord, headers: dict[str, str], *, with_body: bool
    ) -> tuple[str, int]:
        """POST a new upload for `part` (tus §Creation); small ones carry their bytes (creation-with-upload).

        Returns:
            The upload's absolute URL and the offset the server holds.
        """
        headers = TUS_HEADERS | headers | {"Upload-Length": str(part.length)}
        small = 0 < part.length <= min(CREATE_WITH_BODY, self._options.chunk_size)
        body = part if with_body and small else None
        url, offset = await self._post(endpoint, source, headers, body, read_timeout=DEFAULT_READ)
        self._set(source, part, offset)
        return url, offset

    async def create_final(self, endpoint: str, source: Source, headers: dict[str, str]) -> tuple[str, int]:
        """POST the final upload of a concatenation and wait for its answer however long the join takes."""
        return await self._post(endpoint, source, TUS_HEADERS | headers, None, read_timeout=None)

    async def _post(
        self,
        endpoint: str,
        source: Source,
        headers: dict[str, str],
        body: PartRecord | None,
        *,
        read_timeout: float | None,
    ) -> tuple[str, int]:
        attempts = Attempts(self._options.retry, f"{source.path}: POST {endpoint}")
        while True:
            request_headers, content = dict(headers), None
            if body is not None:
                self._set(source, body, 0)
                request_headers |= await self._body_headers(source, body.start, body.length)
                content = read_range(source.path, body.start, body.length, lambda n: self._add(source, body, n))
            try:
                response = await self._session.request(
                    "POST", endpoint, request_headers, content=content, read_timeout=read_timeout
                )
            except NetworkError as exc:
                await attempts.wait(error=exc)
                continue
            outcome = classify(response.status_code, response.text)
            if outcome is Outcome.DONE:
                return await self._created(endpoint, response, attempts.what, sent=body is not None)
            if outcome is not Outcome.RETRY:
                raise TransferError(f"{attempts.what}: {describe(response)}", status=response.status_code)
            await attempts.wait(response=response)

    async def _created(self, endpoint: str, response: httpx.Response, what: str, *, sent: bool) -> tuple[str, int]:
        location = response.headers.get("location")
        if not location:
            raise TransferError(f"{what}: {describe(response)} without a Location", status=response.status_code)
        url = str(httpx.URL(endpoint).join(location))  # tus §POST: Location may be relative (item 31)
        offset = parse_offset(response.headers.get("upload-offset")) if sent else 0
        if offset is None:
            offset = await self.offset(url) or 0
        return url, offset

    async def send(self, source: Source, part: PartRecord, offset: int) -> None:
        """PATCH the bytes of `part` from the server's `offset` on, chunk by chunk, until it holds them all.

        Raises:
            UploadGoneError: the upload vanished on the server (404/410) in the middle.
            TransferError: a request was refused, or failures outlasted the retries.
        """
        attempts = Attempts(self._options.retry, f"{source.path}: PATCH {part.url}")
        self._set(source, part, offset)
        while offset < part.length:
            length = min(self._options.chunk_size, part.length - offset)
            try:
                response = await self._patch(source, part, offset, length)
            except NetworkError as exc:
                await attempts.wait(error=exc)
                offset = await self._resync(source, part, attempts)
                continue
            outcome = classify(response.status_code, response.text)
            stored = parse_offset(response.headers.get("upload-offset"))
            if outcome is Outcome.DONE and stored is not None and offset < stored <= offset + length:
                attempts.progressed()
                offset = stored
                self._set(source, part, offset)
                continue
            if outcome is Outcome.GONE:
                raise UploadGoneError(f"{attempts.what}: {describe(response)}", status=response.status_code)
            if outcome is Outcome.FAIL:
                raise TransferError(f"{attempts.what}: {describe(response)}", status=response.status_code)
            # 409, an interrupted PATCH, a 2xx with a strange offset: at once; 423/5xx/460: after the wait.
            await attempts.wait(response=response, at_once=outcome is not Outcome.RETRY)
            offset = await self._resync(source, part, attempts)

    async def _patch(self, source: Source, part: PartRecord, offset: int, length: int) -> httpx.Response:
        headers = TUS_HEADERS | {"Upload-Offset": str(offset)}
        headers |= await self._body_headers(source, part.start + offset, length)
        self._set(source, part, offset)
        body = read_range(source.path, part.start + offset, length, lambda n: self._add(source, part, n))
        return await self._session.request("PATCH", part.url, headers, content=body)

    async def _body_headers(self, source: Source, start: int, length: int) -> dict[str, str]:
        """The headers of a body of file bytes: its length (never chunked, so that tusserver can splice it, and
        proxies that frame only Content-Length pass it), its type, and its `Upload-Checksum` (tus §Checksum),
        hashed on a worker thread first: the header comes before the body, so the chunk is read twice (the
        second time from the page cache)."""
        algorithm = self._options.checksum
        headers = {"Content-Type": OCTET_STREAM, "Content-Length": str(length)}  # tus §PATCH: the type MUST
        if algorithm is not None:
            digest = await anyio.to_thread.run_sync(hash_range, source.path, start, length, algorithm)
            headers["Upload-Checksum"] = format_digest(algorithm, digest)
        return headers

    async def _resync(self, source: Source, part: PartRecord, attempts: Attempts) -> int:
        offset = await self._head(part.url, attempts)
        if offset is None:
            raise UploadGoneError(f"{attempts.what}: the upload is gone")
        self._set(source, part, offset)
        return offset

    async def _head(self, url: str, attempts: Attempts) -> int | None:
        while True:
            try:
                response = await self._session.request("HEAD", url, TUS_HEADERS)
            except NetworkError as exc:
                await attempts.wait(error=exc)
                continue
            if response.status_code in _GONE:
                return None
            outcome = classify(response.status_code)
            if outcome is Outcome.DONE:
                offset = parse_offset(response.headers.get("upload-offset"))
                if offset is None:  # tus §HEAD: "The Server MUST always include the Upload-Offset header"
                    raise TransferError(f"HEAD {url}: {describe(response)} without a valid Upload-Offset")
                return offset
            if outcome is Outcome.FAIL:
                raise TransferError(f"HEAD {url}: {describe(response)}", status=response.status_code)
            await attempts.wait(response=response)

    def report(self, path: Path, transferred: int, length: int) -> None:
        """Tell the progress callback about a file directly (one found finished already)."""
        if self._progress is not None:
            self._progress(path, transferred, length)

    def _set(self, source: Source, part: PartRecord, position: int) -> None:
        self._positions.setdefault(source.path, {})[part.start] = position
        self._emit(source)

    def _add(self, source: Source, part: PartRecord, count: int) -> None:
        positions = self._positions.setdefault(source.path, {})
        positions[part.start] = positions.get(part.start, 0) + count
        self._emit(source)

    def _emit(self, source: Source) -> None:
        if self._progress is not None:
            self._progress(source.path, sum(self._positions[source.path].values()), source.length)

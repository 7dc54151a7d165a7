"""Downloading a finished upload with GET: resumed with `Range` + `If-Range`, checked against the digest.

Bytes go to `<file>.part`, renamed to `<file>` only once every byte is in and the digest the uploader declared
(the `checksum` metadata, read with HEAD) matches, so a file under its final name is always complete and
verified. A second run continues the `.part` file only if the server's strong ETag is still the one its first
bytes came with (RFC 9110 §13.1.5 `If-Range`: the server sends the whole file instead when it changed), so a
resumed file is never a mix of two versions. Without an ETag there is no such proof, and the download starts
over. A server without Range support (@tus/server) answers 200, and the download starts over as well.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import anyio.to_thread

from tusserver.client.errors import DigestMismatchError, TransferError
from tusserver.client.files import hasher_over
from tusserver.client.options import ProgressCallback, TransferOptions
from tusserver.client.protocol import (
    TUS_HEADERS,
    Outcome,
    classify,
    format_digest,
    parse_content_range,
    parse_digest,
    parse_offset,
    read_metadata,
    safe_name,
)
from tusserver.client.session import Attempts, NetworkError, Session, describe, httpx
from tusserver.client.store import DownloadRecord, ResumeStore
from tusserver.protocol.checksums import Hasher, new_hasher

__all__ = ["DownloadResult", "Downloads", "download_key"]


@dataclass(frozen=True, slots=True)
class DownloadResult:
    """One downloaded file.

    Attributes:
        resumed: the download continued a `.part` file left by an earlier run.
        digest: the declared digest the bytes matched (`<algorithm> <base64>`); None if none was declared.
    """

    url: str
    path: Path
    length: int
    resumed: bool
    digest: str | None


@dataclass
class _State:
    """Where a download stands: the `.part` file's length, the hasher fed with it, and the ETag it belongs to."""

    target: Path
    algorithm: str | None
    position: int = 0
    hasher: Hasher | None = None
    etag: str | None = None
    resumed: bool = False

    def restart(self) -> None:
        self.position, self.resumed = 0, False
        self.hasher = new_hasher(self.algorithm) if self.algorithm is not None else None


class Downloads:
    """Downloads uploads to local files."""

    def __init__(
        self, session: Session, options: TransferOptions, store: ResumeStore | None, progress: ProgressCallback | None
    ) -> None:
        self._session = session
        self._options = options
        self._store = store
        self._progress = progress

    async def download(self, url: str, destination: str | Path | None = None) -> DownloadResult:
        """Download `url` to `destination` (a file, or a directory to put it in under its own name: one that
        exists, or any path ending in `/`).

        Raises:
            TransferError: the server refused, the upload is unfinished, or failures outlasted the retries.
            DigestMismatchError: the bytes do not match the declared digest (the `.part` file is removed).
        """
        metadata, length = await self._describe(url)
        target = _target(url, destination, metadata.get("filename"))
        partial = _partial(target)
        key = download_key(url, target)
        expected = parse_digest(metadata.get("checksum"))
        state = await self._resume_state(target, key, expected[0] if expected else None)
        attempts = Attempts(self._options.retry, f"GET {url}")
        while not await self._fetch(url, partial, key, state, attempts, length):
            pass
        if length is not None and state.position != length:  # tus §HEAD: the upload's Upload-Length
            partial.unlink(missing_ok=True)
            raise TransferError(f"GET {url}: {state.position} bytes arrived, the upload has {length}")
        digest = _verify(state, expected, partial)
        os.replace(partial, target)
        if self._store is not None:
            self._store.forget(key)
        return DownloadResult(url, target, state.position, state.resumed, digest)

    async def _describe(self, url: str) -> tuple[dict[str, str], int | None]:
        """HEAD (tus §HEAD): the upload's metadata and length; nothing if the URL is not a tus upload."""
        attempts = Attempts(self._options.retry, f"HEAD {url}")
        while True:
            try:
                response = await self._session.request("HEAD", url, TUS_HEADERS)
            except NetworkError as exc:
                await attempts.wait(error=exc)
                continue
            if classify(response.status_code) is not Outcome.RETRY:
                break
            await attempts.wait(response=response)
        if not response.is_success:
            return {}, None
        offset = parse_offset(response.headers.get("upload-offset"))
        length = parse_offset(response.headers.get("upload-length"))
        if offset is not None and length is not None and offset < length:
            raise TransferError(f"{url}: the upload is not finished ({offset} of {length} bytes)")
        return read_metadata(response.headers.get("upload-metadata")), length

    async def _resume_state(self, target: Path, key: str, algorithm: str | None) -> _State:
        """Continue the `.part` file if the store knows the ETag of its bytes, hashing them first."""
        state = _State(target, algorithm)
        state.restart()
        partial = _partial(target)
        record = self._store.get_download(key) if self._store is not None else None
        size = partial.stat().st_size if partial.exists() else 0
        if record is not None and record.etag is not None and size:
            state.position, state.etag, state.resumed = size, record.etag, True
            if algorithm is not None:
                state.hasher = await anyio.to_thread.run_sync(hasher_over, partial, 0, size, algorithm)
        return state

    async def _fetch(
        self, url: str, partial: Path, key: str, state: _State, attempts: Attempts, length: int | None
    ) -> bool:
        """One GET from `state.position`; True once the file is complete, False to try again."""
        headers = {"Accept-Encoding": "identity"}  # ranges count bytes of the file, not of a compressed form
        if state.position and state.etag:
            headers |= {"Range": f"bytes={state.position}-", "If-Range": state.etag}
        before = state.position
        try:
            async with self._session.stream(url, headers) as response:
                total = self._start(response, state, length)
                if total is None:
                    await self._refused(response, attempts)
                    return False
                self._remember(key, state.etag, total)
                if response.status_code == 416:  # its body is an error text, not bytes of the file
                    return True
                with partial.open("r+b" if state.position else "wb") as file:
                    file.truncate(state.position)
                    file.seek(state.position)
                    await self._receive(response, file, state, total)
        except NetworkError as exc:
            if state.position > before:
                attempts.progressed()
            await attempts.wait(error=exc)
            return False
        if total < 0 or state.position == total:
            return True  # without a known length, the end of the body is the end of the file
        await attempts.wait(error=TransferError(f"the body ended after {state.position} of {total} bytes"))
        return False

    def _start(self, response: httpx.Response, state: _State, length: int | None) -> int | None:
        """Check the answer against the state (restarting it on a 200); the file's total length, or None."""
        etag = response.headers.get("etag")
        if response.status_code == 206:
            first, _, total = parse_content_range(response.headers.get("content-range")) or (-1, -1, None)
            if first == state.position and etag == state.etag and total is not None:
                return total
            state.etag = None  # not the bytes asked for: the next GET starts over
            return None
        if response.status_code == 416:  # RFC 9110 §15.5.17: the `.part` file holds every byte already
            unsatisfied = response.headers.get("content-range", "")
            complete = parse_offset(unsatisfied.removeprefix("bytes */"))
            if unsatisfied.startswith("bytes */") and complete == state.position and state.etag is not None:
                return complete
            state.etag = None
            return None
        if response.status_code != 200:
            return None
        if state.position:
            state.restart()
        state.etag = etag if etag and not etag.startswith("W/") else None  # only a strong ETag proves the bytes
        declared = parse_offset(response.headers.get("content-length"))
        return declared if declared is not None else length if length is not None else -1

    async def _refused(self, response: httpx.Response, attempts: Attempts) -> None:
        if response.status_code in {206, 416}:  # not the bytes asked for: leave the body unread, start over
            await attempts.wait(response=response, at_once=True)
            return
        await response.aread()  # an error's text, for the message
        outcome = classify(response.status_code, response.text)
        if outcome is Outcome.RETRY:
            await attempts.wait(response=response)
        else:
            raise TransferError(f"{attempts.what}: {describe(response)}", status=response.status_code)

    async def _receive(self, response: httpx.Response, file: IO[bytes], state: _State, total: int) -> None:
        async for data in response.aiter_raw():
            if 0 <= total < state.position + len(data):
                raise TransferError(f"GET {response.url}: more bytes than the {total} announced")
            file.write(data)
            if state.hasher is not None:
                state.hasher.update(data)
            state.position += len(data)
            if self._progress is not None:
                self._progress(state.target, state.position, max(total, state.position))

    def _remember(self, key: str, etag: str | None, total: int) -> None:
        if self._store is not None:
            self._store.put_download(key, DownloadRecord(etag, None if total < 0 else total))


def download_key(url: str, target: Path) -> str:
    """The resume store's key of downloading `url` to `target`."""
    return "download:" + hashlib.sha256(f"{url}\n{target.absolute()}".encode()).hexdigest()


def _partial(target: Path) -> Path:
    return target.with_name(target.name + ".part")


def _verify(state: _State, expected: tuple[str, bytes] | None, partial: Path) -> str | None:
    if expected is None or state.hasher is None:
        return None
    if state.hasher.digest() != expected[1]:
        partial.unlink(missing_ok=True)
        declared, got = format_digest(*expected), format_digest(expected[0], state.hasher.digest())
        raise DigestMismatchError(f"{partial}: the bytes do not match the declared digest {declared} (got {got})")
    return format_digest(*expected)


def _target(url: str, destination: str | Path | None, filename: str | None) -> Path:
    """The file to write: `destination`, or the upload's own name (its metadata, else the URL) inside it."""
    if isinstance(destination, str) and destination.endswith(("/", os.sep)):
        Path(destination).mkdir(parents=True, exist_ok=True)  # "out/": a directory, even a new one
    if destination is not None and not Path(destination).is_dir():
        return Path(destination)
    name = safe_name(filename or "") or safe_name(httpx.URL(url).path) or "download"
    return Path(destination or ".") / name

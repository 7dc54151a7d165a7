"""Uploading one file: a single stream, or parallel partial uploads joined by a final one (concatenation).

The order for each upload is the tus one: OPTIONS once per endpoint (what the server offers), POST (creation,
recorded in the resume store at once), then PATCHes from the server's offset. After any failure the client asks
HEAD where the server stands and continues from there (tus §PATCH: "the Client SHOULD use a HEAD request to
determine the offset"), so bytes the server kept are never sent twice and bytes it lost are sent again.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import anyio
import anyio.to_thread

from tusserver.client.errors import CapabilityError
from tusserver.client.files import Source, content_type, fingerprint, hash_range
from tusserver.client.options import ProgressCallback, TransferOptions
from tusserver.client.protocol import (
    TUS_HEADERS,
    Capabilities,
    Outcome,
    classify,
    encode_metadata,
    format_digest,
    plan_parts,
)
from tusserver.client.session import Attempts, NetworkError, Session
from tusserver.client.store import PartRecord, ResumeStore, UploadRecord
from tusserver.client.streams import Streams

__all__ = ["UploadResult", "Uploads"]


@dataclass(frozen=True, slots=True)
class UploadResult:
    """One uploaded file.

    Attributes:
        url: where the file is now: the single upload, or the final upload of its parts.
        resumed: the upload continued one the resume store knew (or found it finished already).
        digest: the whole-file digest declared in its metadata, `<algorithm> <base64>`.
    """

    path: Path
    name: str
    url: str
    length: int
    resumed: bool
    digest: str | None


@dataclass(slots=True)
class _Job:
    """One file's upload: what every step of it needs."""

    source: Source
    endpoint: str
    capabilities: Capabilities
    key: str
    record: UploadRecord


class Uploads:
    """Uploads files to tus creation endpoints, sharing one stream budget (`parallel`) between all of them."""

    def __init__(
        self, session: Session, options: TransferOptions, store: ResumeStore | None, progress: ProgressCallback | None
    ) -> None:
        self._session = session
        self._options = options
        self._store = store
        self._streams = Streams(session, options, progress)
        self._capabilities: dict[str, Capabilities] = {}
        self._discovery = anyio.Lock()

    async def capabilities(self, endpoint: str) -> Capabilities:
        """The server's OPTIONS answer (asked once per endpoint); empty if it gives none (then: try and see)."""
        async with self._discovery:
            if endpoint not in self._capabilities:
                attempts = Attempts(self._options.retry, f"OPTIONS {endpoint}")
                while True:
                    try:
                        response = await self._session.request("OPTIONS", endpoint, TUS_HEADERS)
                    except NetworkError as exc:
                        await attempts.wait(error=exc)
                        continue
                    if classify(response.status_code) is not Outcome.RETRY:
                        break
                    await attempts.wait(response=response)
                ok = response.is_success
                self._capabilities[endpoint] = Capabilities.from_headers(response.headers) if ok else Capabilities()
            return self._capabilities[endpoint]

    async def upload(self, source: Source, endpoint: str) -> UploadResult:
        """Upload one file to `endpoint`, resuming the upload the store knows for it, if any.

        Raises:
            CapabilityError: the server lacks creation, the checksum algorithm, or room (`Tus-Max-Size`).
            TransferError: the server refused a request, or failures outlasted the retries.
            FileChangedError: the file shrank while it was read.
        """
        capabilities = await self.capabilities(endpoint)
        self._check(capabilities, source)
        key = fingerprint(endpoint, source)
        record = self._store.get_upload(key) if self._store is not None else None
        if record is not None and record.length != source.length:
            record = None
        if record is not None and record.done and record.url is not None:
            if await self._streams.finished(record.url, source.length):
                self._streams.report(source.path, source.length, source.length)
                return UploadResult(source.path, source.name, record.url, source.length, True, record.digest)
            record = None  # the server lost or expired it: upload again
        resumed = record is not None
        if record is None:
            parallel = self._options.parallel if capabilities.concatenation else 1
            parts = plan_parts(source.length, parallel)
            record = UploadRecord(source.length, parts=[PartRecord("", start, length) for start, length in parts])
        url = await self._upload(_Job(source, endpoint, capabilities, key, record))
        record.done = True
        self._save(key, record)
        return UploadResult(source.path, source.name, url, source.length, resumed, record.digest)

    def _check(self, capabilities: Capabilities, source: Source) -> None:
        extensions = capabilities.extensions
        if extensions and "creation" not in extensions:
            raise CapabilityError("the server does not offer tus creation (Tus-Extension lacks `creation`)")
        wanted = self._options.checksum
        if wanted is not None and wanted not in capabilities.checksum_algorithms:
            offered = ", ".join(capabilities.checksum_algorithms) or "none"
            raise CapabilityError(f"the server does not offer the checksum algorithm {wanted} (it offers: {offered})")
        if capabilities.max_size is not None and source.length > capabilities.max_size:
            raise CapabilityError(f"{source.path} is larger than the server accepts ({capabilities.max_size} bytes)")

    async def _upload(self, job: _Job) -> str:
        record = job.record
        if len(record.parts) == 1:
            if record.digest is None and not record.parts[0].url:  # declared at creation, or never
                record.digest = await self._digest(job.source)
            headers = {"Upload-Metadata": self._metadata(job.source, record.digest)}
            async with self._streams.slot():
                await self._send_part(job, record.parts[0], headers)
            return record.parts[0].url
        async with anyio.create_task_group() as group:
            if record.digest is None:
                group.start_soon(self._digest_into, job)
            for part in record.parts:
                group.start_soon(self._partial, job, part)
        return await self._final(job)

    async def _partial(self, job: _Job, part: PartRecord) -> None:
        # tus §Concatenation: partial uploads carry no metadata of the file; the final's POST does.
        async with self._streams.slot():
            await self._send_part(job, part, {"Upload-Concat": "partial"})

    async def _send_part(self, job: _Job, part: PartRecord, headers: dict[str, str]) -> None:
        """Create the part's upload if it has none (or the server lost it), then send what the server lacks."""
        offset = await self._streams.offset(part.url) if part.url else None
        if offset is None:
            with_body = job.capabilities.creation_with_upload and "Upload-Concat" not in headers
            part.url, offset = await self._streams.create(job.endpoint, job.source, part, headers, with_body=with_body)
            self._save(job.key, job.record)
        await self._streams.send(job.source, part, offset)

    async def _final(self, job: _Job) -> str:
        """POST the final upload (tus §Concatenation), without `Upload-Length` (PROTOCOL.md item 82).

        tusserver derives a final's id from its parts and metadata, so a retry after a lost answer gets the same
        upload back; the join may take a while (it copies the parts), hence no read timeout for the answer.
        """
        record = job.record
        headers = {
            "Upload-Concat": "final;" + " ".join(part.url for part in record.parts),
            "Upload-Metadata": self._metadata(job.source, record.digest),
        }
        record.final, _ = await self._streams.create_final(job.endpoint, job.source, headers)
        self._save(job.key, record)
        return record.final

    def _metadata(self, source: Source, digest: str | None) -> str:
        """`filename` and `filetype` as tus-js-client and Uppy send them, `relativePath` for a file found in a
        directory (Uppy's key), the whole-file digest as `checksum`, then the user's own pairs."""
        pairs = {"filename": source.name.rsplit("/", 1)[-1], "filetype": content_type(source.name)}
        if "/" in source.name:
            pairs["relativePath"] = source.name
        if digest is not None:
            pairs["checksum"] = digest
        return encode_metadata(pairs | dict(self._options.metadata))

    async def _digest(self, source: Source) -> str | None:
        algorithm = self._options.digest
        if algorithm is None:
            return None
        digest = await anyio.to_thread.run_sync(hash_range, source.path, 0, source.length, algorithm)
        return format_digest(algorithm, digest)

    async def _digest_into(self, job: _Job) -> None:
        # Hashed on a worker thread while the parts upload: the digest is only needed by the final's POST.
        job.record.digest = await self._digest(job.source)

    def _save(self, key: str, record: UploadRecord) -> None:
        if self._store is not None:
            self._store.put_upload(key, record)

"""Whole-file digests (issue 21): hashed as an upload's bytes arrive, or read back from the storage.

When an upload declares its digest (metadata `checksum`, `tusserver.protocol.digests`), each append feeds its
bytes to the upload's running hash (`RunningDigests`), and the last one finds the file's digest ready. An
upload that moved on in another process or before a restart has no running hash here; its digest is read back
once, after the last byte, in the storage's bounded pieces, hashed on worker threads.
"""

from __future__ import annotations

import anyio

from tusserver.context import TusContext
from tusserver.pipeline.body import BodyReader, digesting
from tusserver.protocol.checksums import SLOW_ALGORITHMS, Checksum, new_hasher
from tusserver.protocol.digests import declared_digest
from tusserver.protocol.errors import InvalidMetadataError
from tusserver.protocol.model import UploadInfo

__all__ = ["WholeFileHash", "declared_or_none", "stored_digest"]


def declared_or_none(info: UploadInfo) -> Checksum | None:
    """The digest `info` declares, None if none or one that cannot be checked (finishing rejects that)."""
    try:
        return declared_digest(info.metadata)
    except InvalidMetadataError:
        return None


class WholeFileHash:
    """The running whole-file hash one append feeds, if the upload declares a digest and this process has
    hashed every byte before the append's offset; otherwise it does nothing."""

    def __init__(self, tus: TusContext, info: UploadInfo) -> None:
        self._tus = tus
        declared = declared_or_none(info)
        self.running = tus.running_digests.take(info, declared.algorithm) if declared is not None else None
        # Put back if the append's bytes are not recorded (a checksum mismatch discards them).
        self._before = self.running.copy() if self.running is not None else None

    def tap(self, body: BodyReader) -> None:
        """Have `body` feed the running hash every byte it hands on (the hashes that cost worker threads on one)."""
        if self.running is not None:
            body.tap(self.running, offload=self.running.algorithm in SLOW_ALGORITHMS)

    def digest_of(self, length: int) -> bytes | None:
        """The digest of the upload's first `length` bytes, if the running hash has fed on exactly those."""
        running = self.running
        return running.digest() if running is not None and running.offset == length else None

    def settle(self, recorded: UploadInfo) -> None:
        """After the append: keep the hash that matches the recorded offset for the next append. None does
        when the record moved on otherwise (some bytes fed to the hash were not recorded), or is complete."""
        if recorded.is_complete:
            return
        for candidate in (self.running, self._before):
            if candidate is not None and candidate.offset == recorded.offset:
                self._tus.running_digests.keep(candidate)
                return


async def stored_digest(tus: TusContext, info: UploadInfo, algorithm: str) -> bytes:
    """The digest of the stored upload: one read of it in the storage's bounded pieces (memory stays bounded),
    each hashed on a worker thread, off the event loop.

    Raises:
        StorageError: the storage failed (BlobNotFoundError: its bytes are gone).
    """
    hasher = new_hasher(algorithm)
    pieces = tus.storage.read(info.storage, 0, info.length)
    try:
        async for _ in digesting(pieces, hasher, offload=True):
            pass
    finally:
        close = getattr(pieces, "aclose", None)
        if close is not None:  # release the file or connection now, even when cancelled
            with anyio.CancelScope(shield=True):
                await close()
    return hasher.digest()

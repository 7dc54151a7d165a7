"""The client's errors: one base class, so a caller catches `TusClientError` and prints its message.

Each message is meant to be the last line a user reads: what failed, and the server's own reason when it gave
one (tusserver's `ERR_CODE: reason` body).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tusserver.client.uploads import UploadResult

__all__ = [
    "BatchError",
    "CapabilityError",
    "DigestMismatchError",
    "ExtraMissingError",
    "FileChangedError",
    "TransferError",
    "TusClientError",
    "UploadGoneError",
]

INSTALL_HINT = "pip install 'tusserver[client]'"


class TusClientError(Exception):
    """A transfer failed for good (after its retries).

    Attributes:
        status: the HTTP status of the last answer, if there was one.
    """

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class ExtraMissingError(TusClientError, ImportError):
    """The client's HTTP library is not installed (it is in the `client` extra, not a server dependency)."""

    def __init__(self) -> None:
        super().__init__(f"the tus client needs httpx: {INSTALL_HINT}")


class CapabilityError(TusClientError):
    """The server lacks what was asked for: creation, a checksum algorithm, a large enough Tus-Max-Size."""


class TransferError(TusClientError):
    """The server refused a request, or kept failing until the retries ran out."""


class UploadGoneError(TransferError):
    """The upload is not (or no longer) on the server: 404 or 410. A stored upload is then started afresh."""


class FileChangedError(TusClientError):
    """The local file changed size while it was uploaded: its bytes on the server would be a mix of two files."""


class DigestMismatchError(TusClientError):
    """A download's bytes do not match the digest declared at upload (the `checksum` metadata)."""


class BatchError(TusClientError):
    """Some files of a batch failed; the others were uploaded.

    Attributes:
        results: the files that were uploaded.
        failures: each file that failed, with its error.
    """

    def __init__(self, results: Sequence[UploadResult], failures: Sequence[tuple[Path, TusClientError]]) -> None:
        super().__init__(f"{len(failures)} of {len(results) + len(failures)} files failed")
        self.results = list(results)
        self.failures = list(failures)

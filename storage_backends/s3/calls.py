"""The S3 calls' error translation and deadlines: what botocore raises, as the storage errors the error
table maps to statuses, and how long a call may take before the store counts as stuck (issue 19)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    IncompleteReadError,
)

from storage_backends.errors import BlobNotFoundError, StorageError, StorageUnavailableError
from storage_backends.s3.layout import MiB

__all__ = ["COMPLETE_PER_PART", "DEFAULT_TIMEOUT", "MIN_COPY_RATE", "MIN_SEND_RATE", "call_deadline", "s3_errors"]

_NOT_FOUND = {"NoSuchUpload", "NoSuchKey", "NotFound", "404"}
_RETRY_LATER = {"SlowDown", "Throttling", "ThrottlingException", "RequestTimeout", "ServiceUnavailable",
                "InternalError", "RequestTimeTooSkewed", "503", "500"}  # fmt: skip
# No answer, or a broken one: refused or timed-out connections, a connection closed or reset before or
# during the response (HTTPClientError covers ReadTimeoutError, ConnectionClosedError and a body cut
# short, ResponseStreamingError), a body shorter than announced, and a call past its deadline.
_UNREACHABLE = (EndpointConnectionError, ConnectTimeoutError, HTTPClientError, IncompleteReadError, TimeoutError)
DEFAULT_TIMEOUT = 30.0
# A call's deadline (`call_deadline`) is the timeout plus the time its bytes take at these rates: a store
# slower than that is as good as stuck. S3 copies and completes inside the store, faster than a client
# sends, but may take minutes for the largest parts and uploads (its documentation says so).
MIN_SEND_RATE = 1 * MiB  # bytes per second of a request body
MIN_COPY_RATE = 8 * MiB  # bytes per second of UploadPartCopy
COMPLETE_PER_PART = 0.03  # seconds per part of CompleteMultipartUpload (10,000 parts: 5 minutes)


@contextmanager
def s3_errors(what: str) -> Iterator[None]:
    """Translate botocore's errors into the storage errors (the error table maps those to statuses)."""
    try:
        yield
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = str(error.get("Code", ""))
        status = str(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", ""))
        detail = f"{what}: {code or status} {error.get('Message', '')}".strip()
        if code in _NOT_FOUND or (not code and status == "404"):
            raise BlobNotFoundError(detail) from exc
        if code in _RETRY_LATER or status in {"500", "503"}:
            raise StorageUnavailableError(detail) from exc
        raise StorageError(detail) from exc
    except _UNREACHABLE as exc:
        raise StorageUnavailableError(f"{what}: {exc or type(exc).__name__}") from exc
    except BotoCoreError as exc:
        raise StorageError(f"{what}: {exc}") from exc


def call_deadline(timeout: float, operation: str, params: dict[str, Any]) -> float:
    """Seconds an S3 call may take in all: `timeout`, plus the time its bytes take at the minimum rates."""
    if operation == "upload_part_copy":
        first, last = params["CopySourceRange"].removeprefix("bytes=").split("-")
        return timeout + (int(last) - int(first) + 1) / MIN_COPY_RATE
    if operation == "complete_multipart_upload":
        return timeout + len(params["MultipartUpload"]["Parts"]) * COMPLETE_PER_PART
    return timeout + int(params.get("ContentLength") or 0) / MIN_SEND_RATE

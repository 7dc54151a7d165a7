"""The Azure calls' error translation and deadlines: what azure-core raises, as the storage errors the error
table maps to statuses, and how long a call may take before the store counts as stuck (as `s3.calls`)."""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from enum import Enum

from azure.core.exceptions import AzureError, HttpResponseError, ServiceRequestError, ServiceResponseError

from storage_backends.errors import BlobNotFoundError, StorageError, StorageUnavailableError
from storage_backends.pieces import MiB

__all__ = [
    "DEFAULT_TIMEOUT",
    "MIN_COPY_RATE",
    "MIN_SEND_RATE",
    "Body",
    "azure_errors",
    "deadline",
    "error_code",
]

DEFAULT_TIMEOUT = 30.0
# A call's deadline is the timeout plus the time its bytes take at these rates: a store slower than that is as
# good as stuck. Put Block From URL copies inside Azure, faster than a client sends.
MIN_SEND_RATE = 1 * MiB  # bytes per second of a request body
MIN_COPY_RATE = 8 * MiB  # bytes per second of Put Block From URL
COMMIT_PER_BLOCK = 0.005  # seconds per block of Put Block List (50,000 blocks: 4 minutes)

# Azure's "try again later" answers: ServerBusy (throttling, 503), OperationTimedOut (500), InternalError (500).
_RETRY_LATER = {"ServerBusy", "OperationTimedOut", "InternalError"}


@contextmanager
def azure_errors(what: str) -> Iterator[None]:
    """Translate azure-core's errors into the storage errors (the error table maps those to statuses)."""
    try:
        yield
    except StorageError:  # ours already (a BlobNotFoundError is an OSError too)
        raise
    except HttpResponseError as exc:
        status, code = exc.status_code or 0, error_code(exc)
        detail = f"{what}: {status} {code} {_first_line(exc)}".strip()
        if status == 404:
            raise BlobNotFoundError(detail) from exc
        if code in _RETRY_LATER or status in {408, 500, 502, 503, 504}:
            raise StorageUnavailableError(detail) from exc
        raise StorageError(detail) from exc
    except (ServiceRequestError, ServiceResponseError, TimeoutError, OSError) as exc:
        # No answer, or a broken one: refused, reset or timed-out connections, a call past its deadline.
        raise StorageUnavailableError(f"{what}: {_first_line(exc) or type(exc).__name__}") from exc
    except AzureError as exc:
        raise StorageError(f"{what}: {_first_line(exc)}") from exc


def error_code(exc: HttpResponseError) -> str:
    """Azure's error code (`x-ms-error-code`: "BlobNotFound", "ServerBusy", ...), "" if it sent none."""
    code = getattr(exc, "error_code", None) or ""
    return str(code.value if isinstance(code, Enum) else code)  # the SDK's StorageErrorCode, as Azure sent it


def _first_line(exc: BaseException) -> str:
    """The error's message without the SDK's request ids, timestamps and XML body (its later lines)."""
    reason = getattr(exc, "reason", None)
    text = str(reason) if isinstance(exc, HttpResponseError) and reason else str(exc)
    return text.strip().splitlines()[0] if text.strip() else ""


def deadline(timeout: float, *, sent: int = 0, copied: int = 0, blocks: int = 0) -> float:
    """Seconds one Azure call may take in all: `timeout`, plus the time its bytes take at the minimum rates."""
    return timeout + sent / MIN_SEND_RATE + copied / MIN_COPY_RATE + blocks * COMMIT_PER_BLOCK


class Body(io.BytesIO):
    """A block or a tail as the HTTP client sends it best.

    Given bytes, aiohttp hands the whole body to the transport, which copies what the socket did not take
    into a buffer of its own (up to a block's size again; aiohttp warns about bodies over 1 MiB); a BytesIO
    it sends in 64 KiB reads. A buffer is built in place (`write`), never copied. Sending closes a body, but
    the SDK rewinds it to retry (a 503 ServerBusy): `close` keeps it, `free` releases it.
    """

    @classmethod
    def of_size(cls, size: int) -> Body:
        """A buffer of `size` bytes to fill in place: bytes(size) is calloc'd, and a BytesIO of it owns it (no other
        reference), so getbuffer() writes into it where BytesIO.write would grow a buffer of its own."""
        return cls(bytes(size))

    @property
    def size(self) -> int:
        """The buffer's size (not the position)."""
        return len(self.getbuffer())

    def close(self) -> None:
        """Kept open for a retry; see `free`."""

    def free(self) -> None:
        """Release the buffer."""
        super().close()

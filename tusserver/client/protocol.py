"""The client's side of tus 1.0, as pure functions: no sockets, no files, no clock (h11's split, STYLE.md B.3).

Everything the transfer loops decide (which extensions a server offers, how a file splits into parts, what a
status means for a retry, how long to wait) is decided here, so it is tested without a server. Comments quote
the spec where the client does what a MUST requires (`../shared/PROTOCOL.md` item numbers in brackets).
"""

from __future__ import annotations

import base64
import enum
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from tusserver.protocol.checksums import ALGORITHMS
from tusserver.protocol.errors import TusError
from tusserver.protocol.headers import decode_metadata, parse_metadata, serialize_metadata

__all__ = [
    "MIN_PART",
    "OCTET_STREAM",
    "TUS_HEADERS",
    "Capabilities",
    "Outcome",
    "backoff",
    "classify",
    "encode_metadata",
    "format_digest",
    "parse_content_range",
    "parse_digest",
    "parse_offset",
    "plan_parts",
    "read_metadata",
    "retry_after",
    "safe_name",
]

# tus §Tus-Resumable: "The Client MUST include the Tus-Resumable header in every request" but OPTIONS.
TUS_HEADERS = {"Tus-Resumable": "1.0.0"}
# tus §PATCH: "The Request MUST include ... Content-Type: application/offset+octet-stream".
OCTET_STREAM = "application/offset+octet-stream"
# A part below this is not worth its own connection and its share of the final's join.
MIN_PART = 16 * 1024 * 1024
MAX_RETRY_AFTER = 300.0  # a server asking for longer is treated as asking for this


@dataclass(frozen=True, slots=True)
class Capabilities:
    """What the server's OPTIONS answer offers (tus §OPTIONS; PROTOCOL.md items 7-10)."""

    extensions: frozenset[str] = frozenset()
    checksum_algorithms: tuple[str, ...] = ()
    max_size: int | None = None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> Capabilities:
        """Read `Tus-Extension`, `Tus-Checksum-Algorithm` and `Tus-Max-Size` (lower-case or any case map)."""
        lower = {name.lower(): value for name, value in headers.items()}
        extensions = frozenset(_csv(lower.get("tus-extension", "")))
        algorithms = tuple(_csv(lower.get("tus-checksum-algorithm", ""))) if "checksum" in extensions else ()
        return cls(extensions, algorithms, parse_offset(lower.get("tus-max-size")))

    @property
    def concatenation(self) -> bool:
        return "concatenation" in self.extensions

    @property
    def creation_with_upload(self) -> bool:
        return "creation-with-upload" in self.extensions


def _csv(value: str) -> list[str]:
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_offset(value: str | None) -> int | None:
    """A non-negative integer header (`Upload-Offset`, `Upload-Length`), None when absent or malformed."""
    if value is None or not value.strip().isdigit():
        return None
    return int(value.strip())


def encode_metadata(pairs: Mapping[str, str]) -> str:
    """`Upload-Metadata`: keys as they are, values in padded base64 (tus §Upload-Metadata, item 39)."""
    return serialize_metadata({key: base64.b64encode(value.encode()).decode("ascii") for key, value in pairs.items()})


def read_metadata(value: str | None) -> dict[str, str]:
    """The decoded pairs of an `Upload-Metadata` answer; {} if the server sent something unreadable."""
    try:
        pairs = decode_metadata(parse_metadata(value))
    except (TusError, ValueError):  # a foreign server's malformed header is just "no metadata"
        return {}
    return {key: raw.decode("utf-8", "replace") for key, raw in pairs.items()}


def format_digest(algorithm: str, digest: bytes) -> str:
    """The whole-file digest as declared in the `checksum` metadata: `<algorithm> <base64>`."""
    return f"{algorithm} {base64.b64encode(digest).decode('ascii')}"


def parse_digest(value: str | None) -> tuple[str, bytes] | None:
    """`<algorithm> <base64>` from the `checksum` metadata; None when absent, unknown or malformed."""
    algorithm, _, encoded = (value or "").strip().partition(" ")
    if algorithm not in ALGORITHMS:
        return None
    try:
        return algorithm, base64.b64decode(encoded.strip(), validate=True)
    except ValueError:
        return None


def plan_parts(length: int, parallel: int, *, min_part: int = MIN_PART, max_parts: int = 100) -> list[tuple[int, int]]:
    """Split `length` bytes into at most `parallel` contiguous (start, length) parts of at least `min_part`.

    One part means one stream, without concatenation. Parts are whole MiB but the last, so every part but the
    last is a multiple of any storage's block size. `max_parts` is tusserver's default `--max-concat-parts`.
    """
    count = max(1, min(parallel, max_parts, length // max(min_part, 1)))
    if count == 1:
        return [(0, length)]
    mib = 1024 * 1024
    size = -(-length // count)
    size = -(-size // mib) * mib
    return [(start, min(size, length - start)) for start in range(0, length, size)]


class Outcome(enum.Enum):
    """What a transfer does after an answer or a network error."""

    DONE = "done"  # 2xx
    RESYNC = "resync"  # 409: ask HEAD for the server's offset and continue from it, at once
    RETRY = "retry"  # temporary: wait (Retry-After or backoff), HEAD, continue
    GONE = "gone"  # the upload does not exist (any more): a stored URL is forgotten and a new upload made
    FAIL = "fail"  # anything else: a clear final error


def classify(status: int, body: str = "") -> Outcome:
    """Map a status to what the client does next (PROTOCOL.md items 19, 28, 62, 90; §2 "Timeouts as 4xx").

    409 is resynced, not retried (tus §PATCH: offsets that "do not match" give 409). 423 and every 5xx are
    temporary (tus-js-client's rule, which servers follow: tusserver answers a read timeout with 500, a busy
    upload with 423, an overloaded store with 503 and a full disk with 507, each with `Retry-After`). 460 is
    a checksum mismatch: the chunk was discarded and is sent again. tusserver's `400 ERR_UPLOAD_INTERRUPTED`
    means another request (often this client's own resume HEAD) took the upload over: resync and go on.
    """
    if 200 <= status < 300:
        return Outcome.DONE
    if status == 409:
        return Outcome.RESYNC
    if status in {423, 460} or status >= 500:
        return Outcome.RETRY
    if status == 400 and body.startswith("ERR_UPLOAD_INTERRUPTED"):
        return Outcome.RESYNC
    if status in {404, 410}:
        return Outcome.GONE
    return Outcome.FAIL


def retry_after(value: str | None, now: datetime | None = None) -> float | None:
    """Seconds to wait from a `Retry-After` value (RFC 9110 §10.2.3: delay-seconds or an HTTP-date)."""
    if value is None or not value.strip():
        return None
    text = value.strip()
    if text.isdigit():
        return min(float(text), MAX_RETRY_AFTER)
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    seconds = (when - (now or datetime.now(UTC))).total_seconds()
    return min(max(seconds, 0.0), MAX_RETRY_AFTER)


def backoff(attempt: int, *, base: float, cap: float, jitter: float) -> float:
    """Exponential backoff: `base * 2**attempt` capped at `cap`, scaled by `jitter` in [0.5, 1.5).

    The jitter is passed in (pure: no random here) so that clients retrying together spread out.
    """
    return min(cap, base * 2.0 ** min(attempt, 30)) * (0.5 + jitter)


_CONTENT_RANGE = re.compile(r"bytes ([0-9]+)-([0-9]+)/([0-9]+|\*)")


def parse_content_range(value: str | None) -> tuple[int, int, int | None] | None:
    """(first, last, complete length or None) of a 206's `Content-Range` (RFC 9110 §14.4); None if malformed."""
    match = _CONTENT_RANGE.fullmatch((value or "").strip())
    if match is None:
        return None
    total = None if match.group(3) == "*" else int(match.group(3))
    return int(match.group(1)), int(match.group(2)), total


def safe_name(name: str) -> str | None:
    """A name to save a download under: the last path segment, no control characters; None if none is left.

    A server chooses it, so it must never reach outside the directory it is saved in (no `..`, no `/`).
    """
    base = name.replace("\\", "/").rsplit("/", 1)[-1]
    base = "".join(char for char in base if char.isprintable()).strip()
    return None if base in {"", ".", ".."} else base[:255]

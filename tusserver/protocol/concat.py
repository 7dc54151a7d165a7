"""The concatenation extension: Upload-Concat parsing and the decisions about final uploads (tus §Concatenation).

A partial upload is an ordinary upload marked "partial"; a final upload names its partials and
takes their bytes, joined by the storage once every partial is finished. URLs in a final's list are
only ever parsed into upload ids of this server: never fetched, never resolved outside its upload path.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urljoin, urlsplit

from tusserver.protocol.errors import (
    InvalidConcatError,
    MaxSizeExceededError,
    TooManyPartsError,
    UploadNotFoundError,
    UploadRejectedError,
)
from tusserver.protocol.headers import UPLOAD_ID, serialize_metadata
from tusserver.protocol.lifecycle import ENDED, current_state
from tusserver.protocol.model import OWS, UploadInfo, UploadState

__all__ = ["MAX_PARTS", "Concat", "FinalPlan", "check_part_count", "final_upload_id", "parse_concat", "plan_final"]

# The parser's own bound, the most `max_concat_parts` may be set to: far above tus-js-client's
# parallelUploads, far below a header that hurts.
MAX_PARTS = 1000
_SEPARATOR = re.compile(r"[ \t]+")


@dataclass(frozen=True, slots=True)
class Concat:
    """A parsed Upload-Concat: "partial", or "final" with its partials' ids and the header as received."""

    kind: Literal["partial", "final"]
    parts: tuple[str, ...] = ()
    header: str = "partial"


@dataclass(frozen=True, slots=True)
class FinalPlan:
    """What a final upload is now: its length once every partial's is known, and whether all are finished."""

    length: int | None
    complete: bool


def parse_concat(value: str | None, upload_path: str) -> Concat | None:
    """Parse `Upload-Concat: partial` or `final;<url> <url> ...`; None when the header is absent.

    Args:
        value: the header.
        upload_path: this server's path for uploads (mount prefix + base path, ending in "/"); URLs
            are resolved against it, so absolute and relative forms both work (PROTOCOL.md item 76).

    Raises:
        InvalidConcatError: anything else, an empty list, or a URL that is not an upload of this server.
    """
    if value is None:
        return None
    value = value.strip(OWS)
    if value == "partial":
        return Concat("partial")
    kind, _, urls = value.partition(";")
    # tus §Upload-Concat: the URLs are "separated by a space"; tabs are tolerated as OWS, nothing else is.
    parts = _SEPARATOR.split(urls.strip(OWS))
    if kind.strip(OWS) != "final" or parts == [""]:
        raise InvalidConcatError("Upload-Concat must be 'partial' or 'final;<upload URLs>'")
    check_part_count(len(parts), MAX_PARTS)  # before parsing each URL: the header may hold thousands
    return Concat("final", tuple(_upload_id(url, upload_path) for url in parts), value)


def check_part_count(count: int, max_parts: int) -> None:
    """Refuse a final upload of more than `max_parts` partials (the `max_concat_parts` setting).

    One small POST could otherwise make the server write the same partial a thousand times over.

    Raises:
        TooManyPartsError: `count` is over `max_parts` (400).
    """
    if count > max_parts:
        raise TooManyPartsError(f"a final upload joins at most {max_parts} partial uploads; this one lists {count}")


def _upload_id(url: str, upload_path: str) -> str:
    path = urlsplit(urljoin(upload_path, url)).path
    upload_id = path.removeprefix(upload_path)
    if path == upload_id or not UPLOAD_ID.fullmatch(upload_id):
        raise InvalidConcatError(f"{url[:200]!r} is not an upload URL of this server")
    return upload_id


def final_upload_id(parts: Sequence[str], metadata: Mapping[str, str], owner: str | None = None) -> str:
    """The final upload's id, derived from its partials, metadata and owner (authorization).

    A client that retries a final POST after a lost response gets the same upload back instead of a
    second copy (PROTOCOL.md item 85, tus/tusd#1365); partial ids are unguessable, so this one is too.
    The owner counts so that an admin joining a user's partials makes a final of its own, not the user's.
    """
    key = " ".join(parts) + "\n" + serialize_metadata(metadata) + (f"\n{owner}" if owner is not None else "")
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def plan_final(partials: Sequence[UploadInfo], *, max_size: int | None) -> FinalPlan:
    """Decide a final upload from its partials' current state.

    tus §Concatenation: the final's length is the sum of the partials' lengths. It counts against
    Tus-Max-Size like any upload's; while a partial's length is deferred, its bytes so far count.

    Raises:
        InvalidConcatError: a listed upload is not a partial upload (PROTOCOL.md item 81).
        UploadNotFoundError: a listed partial upload was terminated or expired (as if it did not exist).
        UploadRejectedError: a listed partial upload was rejected (issue 21): its bytes are not to be used.
        MaxSizeExceededError: the joined length, or what is known of it, is over Tus-Max-Size.
    """
    for partial in partials:
        if partial.concat != "partial":
            raise InvalidConcatError(f"upload {partial.id} is not a partial upload")
        state = current_state(partial)
        if state in ENDED or partial.removed_at is not None:
            raise UploadNotFoundError(f"partial upload {partial.id} is gone")
        if state is UploadState.REJECTED:
            raise UploadRejectedError(f"partial upload {partial.id} was rejected: {partial.reason}")
    lengths = [partial.length for partial in partials]
    length = None if None in lengths else sum(length for length in lengths if length is not None)
    at_least = sum(partial.offset if partial.length is None else partial.length for partial in partials)
    if max_size is not None and at_least > max_size:
        raise MaxSizeExceededError(
            f"the partial uploads add up to more than Tus-Max-Size ({max_size} bytes)", max_size=max_size
        )
    return FinalPlan(length=length, complete=all(partial.is_complete for partial in partials))

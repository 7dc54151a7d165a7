"""The expiration extension's pure parts: when an upload expires, 410 once it has, and Upload-Expires in the
responses (PROTOCOL.md items 57-59); which extensions are advertised (items 57, 60 and 67)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest

from storage_backends.base import StorageRef
from tusserver.protocol import errors, responses
from tusserver.protocol.model import Extension, UploadInfo
from tusserver.protocol.rules import check_not_expired, expiry, supported_extensions

NOW = datetime(2026, 3, 1, 12, 0, 0, tzinfo=UTC)  # a Sunday
# PROTOCOL.md item 58: RFC 9110 IMF-fixdate.
IMF_FIXDATE = re.compile(
    r"^(Mon|Tue|Wed|Thu|Fri|Sat|Sun), [0-9]{2} (Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) [0-9]{4} "
    r"[0-9]{2}:[0-9]{2}:[0-9]{2} GMT$"
)


def upload(*, offset: int = 0, length: int | None = 10, expires_at: datetime | None = None) -> UploadInfo:
    return UploadInfo(
        id="u1",
        length=length,
        offset=offset,
        storage=StorageRef(backend="memory", key="u1"),
        created_at=NOW,
        expires_at=expires_at,
    )


@pytest.mark.parametrize(
    ("complete", "expiration", "retention", "expected"),
    [
        pytest.param(False, 60.0, None, NOW + timedelta(seconds=60), id="unfinished-expires"),
        pytest.param(False, 60.0, 3600.0, NOW + timedelta(seconds=60), id="unfinished-ignores-retention"),
        pytest.param(False, None, 3600.0, None, id="unfinished-expiration-off"),
        pytest.param(False, 0.5, None, NOW + timedelta(milliseconds=500), id="fractional-seconds"),
        pytest.param(True, 60.0, None, None, id="complete-kept-without-retention"),
        pytest.param(True, 60.0, 3600.0, NOW + timedelta(hours=1), id="complete-retention"),
        pytest.param(True, None, None, None, id="complete-both-off"),
    ],
)
def test_expiry(complete: bool, expiration: float | None, retention: float | None, expected: datetime | None) -> None:
    """Unfinished uploads expire `expiration` after now; finished ones after `retention`, or never."""
    assert expiry(NOW, complete=complete, expiration=expiration, retention=retention) == expected


@pytest.mark.parametrize(
    ("expires_at", "now"),
    [
        pytest.param(None, NOW + timedelta(days=10_000), id="never-expires"),
        pytest.param(NOW + timedelta(seconds=60), NOW, id="before"),
        pytest.param(NOW + timedelta(seconds=60), NOW + timedelta(seconds=59.999999), id="just-before"),
    ],
)
def test_check_not_expired_accepts_live_upload(expires_at: datetime | None, now: datetime) -> None:
    check_not_expired(upload(expires_at=expires_at), now)


@pytest.mark.parametrize("late", [0.0, 1.0, 86400.0], ids=["at-expiry", "after", "a-day-after"])
def test_check_not_expired_raises_410_from_expiry_on(late: float) -> None:
    """PROTOCOL.md item 59: 410 Gone while the record is kept."""
    with pytest.raises(errors.UploadExpiredError) as raised:
        check_not_expired(upload(expires_at=NOW), NOW + timedelta(seconds=late))
    assert (raised.value.status, raised.value.code) == (410, "ERR_UPLOAD_EXPIRED")


def test_expiration_is_advertised_only_when_uploads_expire() -> None:
    """PROTOCOL.md item 57."""
    assert Extension.EXPIRATION in supported_extensions(can_delete=True, expires=True)
    assert Extension.EXPIRATION not in supported_extensions(can_delete=True, expires=False)


@pytest.mark.parametrize(("can_delete", "expires"), [(True, True), (False, False)], ids=["all", "none"])
def test_checksum_is_always_advertised_but_never_checksum_trailer(can_delete: bool, expires: bool) -> None:
    """PROTOCOL.md items 60 and 67: ASGI has no request trailers."""
    extensions = supported_extensions(can_delete=can_delete, expires=expires)
    assert Extension.CHECKSUM in extensions
    assert "checksum-trailer" not in extensions


def test_options_response_lists_algorithms_with_sha1_first() -> None:
    response = responses.options_response(supported_extensions(can_delete=True, expires=True), None)
    algorithms = response.headers["Tus-Checksum-Algorithm"].split(",")
    assert algorithms[0] == "sha1"
    assert set(algorithms) == {"sha1", "md5", "sha256", "sha512", "crc32", "xxh32", "xxh64", "xxh3", "xxh128"}


def test_options_response_without_checksum_has_no_algorithm_header() -> None:
    response = responses.options_response((Extension.CREATION,), None)
    assert "Tus-Checksum-Algorithm" not in response.headers


Render = Callable[[UploadInfo], responses.TusResponse]
RESPONSES = [
    pytest.param(lambda info: responses.created_response("http://x/files/u1", info), id="created"),
    pytest.param(responses.patch_response, id="patch"),
    pytest.param(responses.head_response, id="head"),
]


@pytest.mark.parametrize("render", RESPONSES)
def test_unfinished_upload_response_carries_upload_expires(render: Render) -> None:
    """PROTOCOL.md item 58: IMF-fixdate in GMT, on 201, 204 and (IMPL) HEAD."""
    value = render(upload(offset=3, expires_at=NOW + timedelta(seconds=60, microseconds=999_999))).headers[
        "Upload-Expires"
    ]
    assert IMF_FIXDATE.match(value)
    assert value == "Sun, 01 Mar 2026 12:01:00 GMT"


@pytest.mark.parametrize("render", RESPONSES)
def test_deferred_length_upload_response_carries_upload_expires(render: Render) -> None:
    assert "Upload-Expires" in render(upload(length=None, expires_at=NOW)).headers


@pytest.mark.parametrize("render", RESPONSES)
def test_response_without_expiry_has_no_upload_expires(render: Render) -> None:
    assert "Upload-Expires" not in render(upload(expires_at=None)).headers


@pytest.mark.parametrize("render", RESPONSES)
def test_finished_upload_response_has_no_upload_expires_even_with_retention(render: Render) -> None:
    """tus §Upload-Expires concerns unfinished uploads; a retention expiry is not announced."""
    assert "Upload-Expires" not in render(upload(offset=10, expires_at=NOW)).headers

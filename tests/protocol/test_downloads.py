"""GET downloads, the pure part (tusserver.protocol.downloads): ranges, validators, content headers, plans."""

from __future__ import annotations

import base64
import re
import unicodedata
from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_backends.base import StorageRef
from tusserver.protocol.downloads import (
    INLINE_TYPES,
    ByteRange,
    content_headers,
    etag,
    if_range_matches,
    none_match,
    parse_range,
    plan_download,
)
from tusserver.protocol.errors import RangeNotSatisfiableError, UploadExpiredError, UploadNotFinishedError
from tusserver.protocol.model import UploadInfo

NOW = datetime(2026, 1, 2, tzinfo=UTC)


def upload(
    length: int | None = 10,
    offset: int | None = None,
    metadata: dict[str, bytes] | None = None,
    *,
    upload_id: str = "abc",
    expires_at: datetime | None = None,
) -> UploadInfo:
    """A finished upload of `length` bytes unless `offset` says otherwise; metadata given decoded."""
    return UploadInfo(
        id=upload_id,
        length=length,
        offset=(length or 0) if offset is None else offset,
        metadata={key: base64.b64encode(value).decode() for key, value in (metadata or {}).items()},
        storage=StorageRef(backend="memory", key=upload_id),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
        expires_at=expires_at,
    )


# --- Range (RFC 9110 §14) -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("bytes=0-0", (0, 1)),
        ("bytes=0-9", (0, 10)),
        ("bytes=2-4", (2, 5)),
        ("bytes=5-", (5, 10)),
        ("bytes=9-", (9, 10)),
        ("bytes=-3", (7, 10)),
        ("bytes=-10", (0, 10)),
        ("bytes=-11", (0, 10)),  # §14.1.3: a suffix longer than the body selects all of it
        ("bytes=2-100", (2, 10)),  # §14.1.2: last-pos past the end means "to the end"
        ("bytes=0-99999999999999999999999", (0, 10)),
        ("bytes=0005-0006", (5, 7)),
        ("BYTES=1-2", (1, 3)),  # §14.1: range units are case-insensitive
        ("bytes= 1-2 ", (1, 3)),
    ],
)
def test_parse_range_satisfiable(value: str, expected: tuple[int, int]) -> None:
    assert parse_range(value, 10) == ByteRange(*expected)


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "garbage",
        "bytes",
        "bytes=",
        "bytes=-",
        "bytes=a-b",
        "bytes=5-2",  # §14.1.1: last-pos below first-pos is invalid, so Range is ignored
        "bytes=0-1,3-4",  # multiple ranges: §14.2 lets a server ignore Range
        "bytes=0-1, 20-30",
        "items=0-1",  # §14.2: an unknown range unit MUST be ignored
        "bytes=1-2-3",
        "bytes=+1-2",
        "bytes=\u0661-\u0662",  # Arabic-Indic digits are not DIGIT
        "bytes\xa0=0-1",  # RFC 9110 §5.6.3: only spaces and tabs are OWS
    ],
)
def test_parse_range_ignored_serves_whole_body(value: str | None) -> None:
    assert parse_range(value, 10) is None


@pytest.mark.parametrize(
    "value",
    ["bytes=10-", "bytes=10-20", "bytes=11-11", "bytes=-0", "bytes=99999999999999999999-", "bytes=" + "9" * 5000 + "-"],
)
def test_parse_range_unsatisfiable_raises_416_with_length(value: str) -> None:
    with pytest.raises(RangeNotSatisfiableError) as caught:
        parse_range(value, 10)
    assert caught.value.status == 416
    assert caught.value.headers() == {"Content-Range": "bytes */10"}


@pytest.mark.parametrize("value", ["bytes=0-0", "bytes=-5", "bytes=5-", "bytes=-0"])
def test_parse_range_on_empty_upload_serves_whole_body(value: str) -> None:
    assert parse_range(value, 0) is None


def test_byte_range_content_range_and_length() -> None:
    byte_range = ByteRange(2, 5)
    assert byte_range.length == 3
    assert byte_range.content_range(10) == "bytes 2-4/10"


# --- ETag, If-None-Match, If-Range (RFC 9110 §8.8.3, §13.1.2, §13.1.5) ------------------------------------------------


def test_etag_is_strong_quoted_and_stable() -> None:
    tag = etag(upload())
    assert re.fullmatch(r'"[\x21\x23-\x7e]+"', tag)
    assert tag == etag(upload())


@pytest.mark.parametrize(
    "other",
    [
        upload(length=11),
        upload(upload_id="abd"),
        upload().model_copy(update={"created_at": datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)}),
    ],
)
def test_etag_differs_between_uploads(other: UploadInfo) -> None:
    assert etag(other) != etag(upload())


TAG = '"abc-10-1"'


@pytest.mark.parametrize(
    ("value", "holds"),
    [
        (None, True),
        ("*", False),
        (TAG, False),
        (f"W/{TAG}", False),  # weak comparison: a weak tag matches too
        (f'"other", {TAG}', False),
        (f'"other",W/{TAG}', False),
        ('"other"', True),
        ('"abc-10-1', True),
        ("garbage", True),
        ("*\xa0", True),  # RFC 9110 §5.6.3: a no-break space is not OWS, so this is no "*"
    ],
)
def test_none_match(value: str | None, holds: bool) -> None:
    assert none_match(value, TAG) is holds


@pytest.mark.parametrize(
    ("value", "matches"),
    [
        (None, True),
        (TAG, True),
        (f" {TAG} ", True),
        (f"W/{TAG}", False),  # strong comparison: a weak tag never matches
        ('"other"', False),
        (f'{TAG}, "other"', False),
        ("Thu, 01 Jan 2026 00:00:00 GMT", False),  # no Last-Modified, so no date is a strong validator
        ("garbage", False),
        (f"{TAG}\xa0", False),  # RFC 9110 §5.6.3: a no-break space is not OWS
    ],
)
def test_if_range(value: str | None, matches: bool) -> None:
    assert if_range_matches(value, TAG) is matches


# --- Content-Type and Content-Disposition (tusd filterContentType, RFC 6266, RFC 8187) --------------------------------


@pytest.mark.parametrize(
    ("filetype", "content_type", "kind"),
    [
        (b"image/png", "image/png", "inline"),
        (b"IMAGE/PNG", "image/png", "inline"),
        (b"image/png; charset=x", "image/png", "inline"),
        (b"image/jpeg", "image/jpeg", "inline"),
        (b"audio/ogg", "audio/ogg", "inline"),
        (b"video/mp4", "video/mp4", "inline"),
        (b"text/plain", "text/plain; charset=utf-8", "inline"),
        (b"text/plain; charset=latin1", "text/plain; charset=utf-8", "inline"),
        (b"image/svg+xml", "application/octet-stream", "attachment"),  # SVG runs script
        (b"text/html", "application/octet-stream", "attachment"),
        (b"application/javascript", "application/octet-stream", "attachment"),
        (b"application/pdf", "application/octet-stream", "attachment"),
        (b"image/png\r\nX-Evil: 1", "application/octet-stream", "attachment"),
        (b"png", "application/octet-stream", "attachment"),
        (b"image/", "application/octet-stream", "attachment"),
        (b"image/png/x", "application/octet-stream", "attachment"),
        (b"", "application/octet-stream", "attachment"),
        (b"\xff\xfe", "application/octet-stream", "attachment"),
    ],
)
def test_content_type_inline_only_for_allowlist(filetype: bytes, content_type: str, kind: str) -> None:
    assert content_headers({"filetype": filetype}) == {
        "Content-Type": content_type,
        "Content-Disposition": kind,
        "X-Content-Type-Options": "nosniff",
    }


def test_content_type_falls_back_to_type_then_octet_stream() -> None:
    assert content_headers({"type": b"image/gif"})["Content-Type"] == "image/gif"
    assert content_headers({"filetype": b"text/html", "type": b"image/gif"})["Content-Type"] == OCTET
    assert content_headers({}) == {
        "Content-Type": OCTET,
        "Content-Disposition": "attachment",
        "X-Content-Type-Options": "nosniff",
    }


def test_inline_allowlist_has_no_script_types() -> None:
    assert not {"image/svg+xml", "text/html", "application/xhtml+xml", "text/xml"} & INLINE_TYPES


OCTET = "application/octet-stream"


def disposition(filename: bytes, key: str = "filename") -> str:
    return content_headers({key: filename})["Content-Disposition"]


@pytest.mark.parametrize(
    ("filename", "expected"),
    [
        (b"report.pdf", "attachment; filename=\"report.pdf\"; filename*=UTF-8''report.pdf"),
        (b'a"b.txt', "attachment; filename=\"a_b.txt\"; filename*=UTF-8''a%22b.txt"),
        (
            b'x"; filename="evil.html',
            "attachment; filename=\"x_; filename=_evil.html\"; filename*=UTF-8''x%22%3B%20filename%3D%22evil.html",
        ),
        (
            b"evil\r\nSet-Cookie: a=1",
            "attachment; filename=\"evil__Set-Cookie: a=1\"; filename*=UTF-8''evil__Set-Cookie%3A%20a%3D1",
        ),
        (b"C:\\Users\\me\\photo.png", "attachment; filename=\"photo.png\"; filename*=UTF-8''photo.png"),
        (b"../../etc/passwd", "attachment; filename=\"passwd\"; filename*=UTF-8''passwd"),
        (b"..\\..\\boot.ini", "attachment; filename=\"boot.ini\"; filename*=UTF-8''boot.ini"),
        ("naïve €.txt".encode(), "attachment; filename=\"na_ve _.txt\"; filename*=UTF-8''na%C3%AFve%20%E2%82%AC.txt"),
        ("日本.txt".encode(), "attachment; filename=\"__.txt\"; filename*=UTF-8''%E6%97%A5%E6%9C%AC.txt"),
        (b"%41.txt", "attachment; filename=\"_41.txt\"; filename*=UTF-8''%2541.txt"),
        (b"a;b,c.txt", "attachment; filename=\"a;b,c.txt\"; filename*=UTF-8''a%3Bb%2Cc.txt"),
        (b"\xff.txt", "attachment; filename=\"_.txt\"; filename*=UTF-8''%EF%BF%BD.txt"),
        ("cod\u202etxt.exe".encode(), "attachment; filename=\"cod_txt.exe\"; filename*=UTF-8''cod_txt.exe"),
        (b"tab\there", "attachment; filename=\"tab_here\"; filename*=UTF-8''tab_here"),
        (b"", "attachment"),
        (b"..", "attachment"),
        (b"dir/", "attachment"),
        (b"/", "attachment"),
    ],
)
def test_content_disposition_filename(filename: bytes, expected: str) -> None:
    assert disposition(filename) == expected


def test_content_disposition_name_fallback_and_precedence() -> None:
    assert disposition(b"x.txt", key="name") == "attachment; filename=\"x.txt\"; filename*=UTF-8''x.txt"
    both = content_headers({"filename": b"a.txt", "name": b"b.txt", "filetype": b"image/png"})
    assert both["Content-Disposition"] == "inline; filename=\"a.txt\"; filename*=UTF-8''a.txt"


def test_content_disposition_caps_long_names_and_keeps_extension() -> None:
    header = disposition(b"a" * 300 + b".txt")
    name = unquote(header.split("filename*=UTF-8''", 1)[1])
    assert len(name) == 255
    assert name.endswith("a.txt")


# RFC 6266 §4.1 with the quoted fallback restricted as RFC 6266 Appendix D advises, and RFC 8187 §3.2.1.
QUOTED_FALLBACK = r'"[\x20\x21\x23\x24\x26-\x5b\x5d-\x7e]+"'
EXT_VALUE = r"UTF-8''(?:[A-Za-z0-9!#$&+.^_`|~-]|%[0-9A-F]{2})+"
DISPOSITION = re.compile(rf"(inline|attachment)(; filename={QUOTED_FALLBACK}; filename\*={EXT_VALUE})?")
INVISIBLE = {"Cc", "Cf", "Cn", "Co", "Cs", "Zl", "Zp"}


@given(st.binary(max_size=64) | st.text(max_size=64).map(str.encode))
def test_content_disposition_is_always_safe(filename: bytes) -> None:
    """Whatever the bytes: one header line of the RFC 6266 grammar, naming a base name without controls."""
    header = disposition(filename)
    assert DISPOSITION.fullmatch(header), header
    if "filename*=" in header:
        name = unquote(header.split("filename*=UTF-8''", 1)[1])
        assert not any(unicodedata.category(char) in INVISIBLE for char in name), ascii(name)
        assert "/" not in name
        assert "\\" not in name
        assert name not in {".", ".."}


# --- plan_download ----------------------------------------------------------------------------------------------------


def test_plan_whole_body() -> None:
    plan = plan_download(upload(metadata={"filename": b"a.txt", "filetype": b"text/plain"}), {}, NOW)
    assert (plan.status, plan.start, plan.end) == (200, 0, 10)
    assert plan.headers == {
        "ETag": etag(upload()),
        "Cache-Control": "no-cache",
        "Accept-Ranges": "bytes",
        "Content-Type": "text/plain; charset=utf-8",
        "Content-Disposition": "inline; filename=\"a.txt\"; filename*=UTF-8''a.txt",
        "X-Content-Type-Options": "nosniff",
        "Content-Length": "10",
    }


def test_plan_range() -> None:
    plan = plan_download(upload(), {"range": "bytes=2-4"}, NOW)
    assert (plan.status, plan.start, plan.end) == (206, 2, 5)
    assert plan.headers["Content-Range"] == "bytes 2-4/10"
    assert plan.headers["Content-Length"] == "3"
    assert plan.headers["ETag"] == etag(upload())


def test_plan_unsatisfiable_range_raises() -> None:
    with pytest.raises(RangeNotSatisfiableError):
        plan_download(upload(), {"range": "bytes=10-"}, NOW)


def test_plan_if_none_match_gives_304_with_validators_only() -> None:
    plan = plan_download(upload(), {"if-none-match": etag(upload()), "range": "bytes=99-"}, NOW)
    assert (plan.status, plan.start, plan.end) == (304, 0, 0)
    assert plan.headers == {"ETag": etag(upload()), "Cache-Control": "no-cache"}


@pytest.mark.parametrize(
    ("if_range", "status"), [(etag(upload()), 206), ('"old"', 200), ("Thu, 01 Jan 2026 00:00:00 GMT", 200)]
)
def test_plan_if_range_decides_whether_range_applies(if_range: str, status: int) -> None:
    plan = plan_download(upload(), {"range": "bytes=0-0", "if-range": if_range}, NOW)
    assert plan.status == status
    assert plan.end == (1 if status == 206 else 10)


def test_plan_if_range_mismatch_ignores_unsatisfiable_range() -> None:
    assert plan_download(upload(), {"range": "bytes=99-", "if-range": '"old"'}, NOW).status == 200


def test_plan_empty_upload_with_range_is_whole_empty_body() -> None:
    plan = plan_download(upload(length=0), {"range": "bytes=0-0"}, NOW)
    assert (plan.status, plan.start, plan.end, plan.headers["Content-Length"]) == (200, 0, 0, "0")


@pytest.mark.parametrize("info", [upload(offset=5), upload(length=None, offset=0)], ids=["partial", "deferred"])
def test_plan_unfinished_upload_raises_409(info: UploadInfo) -> None:
    with pytest.raises(UploadNotFinishedError):
        plan_download(info, {}, NOW)


@pytest.mark.parametrize("offset", [10, 5], ids=["finished", "unfinished"])
def test_plan_expired_upload_raises_410(offset: int) -> None:
    with pytest.raises(UploadExpiredError):
        plan_download(upload(offset=offset, expires_at=NOW), {}, NOW)


def test_plan_not_yet_expired_upload_is_served() -> None:
    assert plan_download(upload(expires_at=NOW + timedelta(seconds=1)), {}, NOW).status == 200

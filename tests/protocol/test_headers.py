"""Parsing of tus request headers (tusserver.protocol.headers); item numbers refer to PROTOCOL.md."""

from __future__ import annotations

import pytest

from tusserver.protocol import errors
from tusserver.protocol.headers import (
    check_tus_resumable,
    check_upload_id,
    is_offset_octet_stream,
    parse_create,
    parse_non_negative_int,
    parse_patch,
)

OOS = "application/offset+octet-stream"
PATCH = {"content-type": OOS, "upload-offset": "0"}

# --- parse_non_negative_int (items 21, 34) ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [("0", 0), ("5", 5), ("00012", 12), ("9223372036854775807", 2**63 - 1)],
    ids=["zero", "plain", "leading-zeros", "max-int64"],
)
def test_parse_non_negative_int_accepts_decimal_digits(raw: str, expected: int) -> None:
    assert parse_non_negative_int(raw) == expected


@pytest.mark.parametrize(
    "raw",
    [None, "", "-1", "+5", "5.0", " 5", "5 ", "1e3", "0x10", "abc", "٣", "9223372036854775808", "1" * 20],
    ids=[
        "none",
        "empty",
        "negative",
        "plus-sign",
        "decimal-point",
        "leading-space",
        "trailing-space",
        "exponent",
        "hex",
        "letters",
        "non-ascii-digit",
        "above-int64",
        "twenty-digits",
    ],
)
def test_parse_non_negative_int_rejects_non_strict_values(raw: str | None) -> None:
    assert parse_non_negative_int(raw) is None


# --- check_tus_resumable (items 2, 3) ---------------------------------------------------------------------


@pytest.mark.parametrize("raw", ["1.0.0", " 1.0.0 ", "\t1.0.0\t"], ids=["exact", "surrounding-spaces", "tabs"])
def test_check_tus_resumable_accepts_1_0_0(raw: str) -> None:
    check_tus_resumable(raw)


@pytest.mark.parametrize(
    "raw",
    [None, "", "0.2.2", "1.0", "2.0.0", "1.0.0,0.2.2", "1.0.0\xa0", "\x0c1.0.0"],
    ids=["missing", "empty", "old", "short", "newer", "list", "nbsp", "form-feed"],  # RFC 9110 §5.6.3: OWS is SP/HTAB
)
def test_check_tus_resumable_unsupported_raises_412(raw: str | None) -> None:
    with pytest.raises(errors.UnsupportedVersionError) as info:
        check_tus_resumable(raw)
    assert info.value.status == 412
    assert info.value.headers()["Tus-Version"] == "1.0.0"


# --- check_upload_id ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "upload_id", ["abc", "A-b_9", "x" * 128, "scan_2026.12~v1"], ids=["letters", "mixed", "max-length", "hook-chosen"]
)
def test_check_upload_id_returns_valid_id(upload_id: str) -> None:
    assert check_upload_id(upload_id) == upload_id


@pytest.mark.parametrize(
    "upload_id",
    ["", "x" * 129, "../etc", "a/b", ".", "..", "a b", "é", "a\n"],
    ids=["empty", "too-long", "dot-dot-slash", "slash", "dot", "dot-dot", "space", "non-ascii", "trailing-newline"],
)
def test_check_upload_id_invalid_raises_not_found(upload_id: str) -> None:
    with pytest.raises(errors.UploadNotFoundError) as info:
        check_upload_id(upload_id)
    assert info.value.status == 404


# --- is_offset_octet_stream (item 20) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content_type", "expected"),
    [
        (OOS, True),
        ("Application/Offset+Octet-Stream", True),
        (f"{OOS}; charset=binary", True),
        (f" {OOS} ", True),
        (None, False),
        ("", False),
        ("application/octet-stream", False),
        ("text/plain", False),
        (f"{OOS}x", False),
        (f"{OOS}\xa0", False),
        (f"\x85{OOS}", False),
    ],
    ids=["exact", "case", "parameter", "spaces", "missing", "empty", "octet-stream", "text", "suffix", "nbsp", "nel"],
)
def test_is_offset_octet_stream(content_type: str | None, expected: bool) -> None:
    assert is_offset_octet_stream(content_type) is expected


# --- parse_create (items 31, 33, 34, 39, 44, 48-50) ----------------------------------------------------------


def test_parse_create_with_length_and_no_body() -> None:
    req = parse_create({"upload-length": "100", "content-length": "0"})
    assert (req.length, req.defer_length, req.metadata) == (100, False, {})
    assert req.content_length == 0
    assert req.has_body is False
    assert req.body_is_offset_stream is False


def test_parse_create_zero_length_is_a_length_not_a_deferral() -> None:
    """Item 55: length 0 and "length unknown" stay apart."""
    req = parse_create({"upload-length": "0"})
    assert (req.length, req.defer_length) == (0, False)


@pytest.mark.parametrize("raw", ["1", " 1 ", "1\t"], ids=["one", "spaces", "tab"])
def test_parse_create_defer_length_one_defers(raw: str) -> None:
    """Item 48."""
    req = parse_create({"upload-defer-length": raw})
    assert (req.length, req.defer_length) == (None, True)


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"upload-length": "5", "upload-defer-length": "1"},
        {"upload-length": "-1"},
        {"upload-length": "abc"},
        {"upload-length": "1.5"},
        {"upload-length": ""},
        {"upload-defer-length": "0"},
        {"upload-defer-length": "2"},
        {"upload-defer-length": "true"},
        {"upload-defer-length": "1\xa0"},
        {"upload-defer-length": "\u20071"},
        {"upload-length": "5", "content-length": "x"},
        {"upload-length": "5", "content-length": "-1"},
    ],
    ids=[
        "neither",  # item 33
        "both",  # item 50
        "negative",  # item 34
        "letters",
        "fraction",
        "empty",
        "defer-0",  # item 49
        "defer-2",
        "defer-true",
        "defer-nbsp",  # issue 19: trimmed of spaces and tabs only (RFC 9110 §5.6.3), not Unicode whitespace
        "defer-figure-space",
        "content-length-letters",
        "content-length-negative",
    ],
)
def test_parse_create_invalid_length_raises_invalid_length(headers: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidLengthError) as info:
        parse_create(headers)
    assert (info.value.status, info.value.code) == (400, "ERR_INVALID_UPLOAD_LENGTH")


def test_parse_create_parses_metadata() -> None:
    """Item 39."""
    req = parse_create({"upload-length": "1", "upload-metadata": "filename d29ybGQ=,is_confidential"})
    assert req.metadata == {"filename": "d29ybGQ=", "is_confidential": ""}


def test_parse_create_invalid_metadata_raises_invalid_metadata() -> None:
    """Item 40."""
    with pytest.raises(errors.InvalidMetadataError):
        parse_create({"upload-length": "1", "upload-metadata": "k !!!"})


@pytest.mark.parametrize(
    ("headers", "has_body", "content_length"),
    [
        ({"content-length": "5"}, True, 5),
        ({"content-length": "0"}, False, 0),
        ({}, False, None),
        ({"transfer-encoding": "chunked"}, True, None),
        ({"transfer-encoding": "gzip, Chunked"}, True, None),
    ],
    ids=["content-length", "empty", "no-body-headers", "chunked", "chunked-in-list"],
)
def test_parse_create_detects_body(headers: dict[str, str], has_body: bool, content_length: int | None) -> None:
    """Items 42-44: creation-with-upload is a POST with a non-empty body."""
    req = parse_create({"upload-length": "10", **headers})
    assert (req.has_body, req.content_length) == (has_body, content_length)


@pytest.mark.parametrize(
    ("content_type", "expected"), [(OOS, True), ("text/plain", False), (None, False)], ids=["oos", "text", "missing"]
)
def test_parse_create_records_whether_body_is_offset_stream(content_type: str | None, expected: bool) -> None:
    headers = {"upload-length": "10", "content-length": "5"}
    if content_type is not None:
        headers["content-type"] = content_type
    assert parse_create(headers).body_is_offset_stream is expected


# --- parse_patch (items 18, 20, 21, 52) ---------------------------------------------------------------------


def test_parse_patch_minimal() -> None:
    req = parse_patch({**PATCH, "upload-offset": "5"})
    assert (req.offset, req.length, req.content_length) == (5, None, None)


def test_parse_patch_reads_declared_length_and_content_length() -> None:
    """Item 52: a deferred length is declared with Upload-Length on a PATCH."""
    req = parse_patch({**PATCH, "upload-length": "12", "content-length": "12"})
    assert (req.offset, req.length, req.content_length) == (0, 12, 12)


@pytest.mark.parametrize(
    "content_type", [None, "", "text/plain", "application/octet-stream"], ids=["missing", "empty", "text", "octet"]
)
def test_parse_patch_wrong_content_type_raises_415(content_type: str | None) -> None:
    """Item 20."""
    headers = {"upload-offset": "0"}
    if content_type is not None:
        headers["content-type"] = content_type
    with pytest.raises(errors.InvalidContentTypeError) as info:
        parse_patch(headers)
    assert (info.value.status, info.value.code) == (415, "ERR_INVALID_CONTENT_TYPE")


def test_parse_patch_content_type_checked_before_offset() -> None:
    with pytest.raises(errors.InvalidContentTypeError):
        parse_patch({"upload-offset": "nope"})


@pytest.mark.parametrize(
    "offset",
    [None, "", "abc", "-1", "+5", "5.0", " 5", "5 ", "1 2"],
    ids=["missing", "empty", "letters", "negative", "plus-sign", "decimal", "leading-space", "trailing-space", "inner"],
)
def test_parse_patch_bad_offset_raises_invalid_offset(offset: str | None) -> None:
    """Item 21: missing, non-numeric, negative, "+5", "5.0" or spaces -> 400."""
    headers = {"content-type": OOS}
    if offset is not None:
        headers["upload-offset"] = offset
    with pytest.raises(errors.InvalidOffsetError) as info:
        parse_patch(headers)
    assert (info.value.status, info.value.code) == (400, "ERR_INVALID_OFFSET")


def test_parse_patch_negative_offset_raises_invalid_offset() -> None:
    with pytest.raises(errors.InvalidOffsetError):
        parse_patch({**PATCH, "upload-offset": "-5"})


@pytest.mark.parametrize(
    "headers",
    [{"upload-length": "-1"}, {"upload-length": "x"}, {"content-length": "1.0"}],
    ids=["length-negative", "length-letters", "content-length-fraction"],
)
def test_parse_patch_bad_length_raises_invalid_length(headers: dict[str, str]) -> None:
    with pytest.raises(errors.InvalidLengthError) as info:
        parse_patch({**PATCH, **headers})
    assert info.value.status == 400

"""Response builders (tusserver.protocol.responses) and error headers; item numbers refer to PROTOCOL.md."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage_backends.base import StorageRef
from tusserver.protocol import errors
from tusserver.protocol.model import Extension, UploadInfo
from tusserver.protocol.responses import (
    TusResponse,
    created_response,
    deleted_response,
    error_response,
    head_response,
    options_response,
    patch_response,
)

CREATION = (Extension.CREATION, Extension.CREATION_WITH_UPLOAD)


def upload(length: int | None = 100, offset: int = 0, metadata: dict[str, str] | None = None) -> UploadInfo:
    return UploadInfo(
        id="abc",
        length=length,
        offset=offset,
        metadata=metadata or {},
        storage=StorageRef(backend="memory", key="abc"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


# --- OPTIONS (items 7-9) ------------------------------------------------------------------------------------------


def test_options_response_lists_version_and_extensions() -> None:
    """Items 7 and 8: 200, Tus-Version, comma-separated Tus-Extension."""
    response = options_response(CREATION, None)
    assert response.status == 200
    assert response.headers == {"Tus-Version": "1.0.0", "Tus-Extension": "creation,creation-with-upload"}
    assert response.body == b""


@pytest.mark.parametrize(("max_size", "expected"), [(0, "0"), (1024, "1024")], ids=["zero", "limited"])
def test_options_response_with_max_size_sends_tus_max_size(max_size: int, expected: str) -> None:
    """Item 9."""
    assert options_response(CREATION, max_size).headers["Tus-Max-Size"] == expected


def test_options_response_without_max_size_omits_tus_max_size() -> None:
    assert "Tus-Max-Size" not in options_response(CREATION, None).headers


def test_options_response_without_extensions_omits_tus_extension() -> None:
    """Item 8: omit the header if there are none."""
    assert options_response((), None).headers == {"Tus-Version": "1.0.0"}


# --- POST, PATCH, DELETE -------------------------------------------------------------------------------------------


def test_created_response_has_location_and_offset() -> None:
    """Items 31 and 42."""
    response = created_response("http://example.com/files/abc", upload(11, 5))
    assert response == TusResponse(201, {"Location": "http://example.com/files/abc", "Upload-Offset": "5"})


def test_patch_response_is_204_with_new_offset() -> None:
    """Item 18."""
    assert patch_response(upload(11, 5)) == TusResponse(204, {"Upload-Offset": "5"})


def test_deleted_response_is_204_without_headers() -> None:
    """Item 68."""
    assert deleted_response() == TusResponse(204, {}, b"")


# --- HEAD (items 12, 13, 15, 16) -------------------------------------------------------------------------------------


def test_head_response_known_length() -> None:
    """Item 12: Upload-Offset even when 0, Upload-Length, no-store, empty body."""
    response = head_response(upload(100, 0))
    assert response.status == 200
    assert response.headers == {"Upload-Offset": "0", "Upload-Length": "100", "Cache-Control": "no-store"}
    assert response.body == b""


def test_head_response_completed_upload_has_equal_offset_and_length() -> None:
    """Item 13."""
    headers = head_response(upload(100, 100)).headers
    assert headers["Upload-Offset"] == headers["Upload-Length"] == "100"


def test_head_response_zero_length_sends_length_not_deferral() -> None:
    """Item 55: length 0 is not "unknown"."""
    headers = head_response(upload(0, 0)).headers
    assert headers["Upload-Length"] == "0"
    assert "Upload-Defer-Length" not in headers


def test_head_response_deferred_length_sends_defer_header_only() -> None:
    """Item 15: Upload-Defer-Length: 1 and no Upload-Length."""
    headers = head_response(upload(None, 3)).headers
    assert headers == {"Upload-Offset": "3", "Upload-Defer-Length": "1", "Cache-Control": "no-store"}


def test_head_response_echoes_metadata() -> None:
    """Item 16."""
    headers = head_response(upload(metadata={"filename": "YS50eHQ=", "flag": ""})).headers
    assert headers["Upload-Metadata"] == "filename YS50eHQ=,flag"


def test_head_response_without_metadata_omits_header() -> None:
    assert "Upload-Metadata" not in head_response(upload()).headers


# --- errors ----------------------------------------------------------------------------------------------------------


def test_error_response_body_is_code_and_message() -> None:
    response = error_response(errors.UploadNotFoundError("no such upload"))
    assert response.status == 404
    assert response.body == b"ERR_UPLOAD_NOT_FOUND: no such upload\n"
    assert response.headers == {"Content-Type": "text/plain; charset=utf-8"}


def test_error_response_body_uses_default_message() -> None:
    error = errors.InvalidOffsetError()
    assert error_response(error).body == f"ERR_INVALID_OFFSET: {error.default_message}\n".encode()


def test_error_response_without_body_keeps_status_and_headers() -> None:
    """HEAD responses carry no body (tus §HEAD)."""
    response = error_response(errors.OffsetMismatchError(5), with_body=False)
    assert (response.status, response.body) == (409, b"")
    assert response.headers["Upload-Offset"] == "5"


def test_error_response_412_has_tus_version() -> None:
    """Item 2: the 412 lists the supported versions."""
    response = error_response(errors.UnsupportedVersionError())
    assert response.status == 412
    assert response.headers["Tus-Version"] == "1.0.0"


def test_error_response_409_has_current_offset() -> None:
    """Item 19."""
    response = error_response(errors.OffsetMismatchError(42))
    assert (response.status, response.headers["Upload-Offset"]) == (409, "42")


def test_error_response_503_has_retry_after() -> None:
    response = error_response(errors.ServiceUnavailableError())
    assert response.status == 503
    assert response.headers["Retry-After"].isdigit()


def test_error_response_405_has_allow() -> None:
    response = error_response(errors.MethodNotAllowedError(allow="OPTIONS, POST"))
    assert (response.status, response.headers["Allow"]) == (405, "OPTIONS, POST")


def test_error_response_405_without_allow_omits_header() -> None:
    assert "Allow" not in error_response(errors.MethodNotAllowedError()).headers


def test_error_response_merges_extra_headers() -> None:
    error = errors.UnsupportedVersionError()
    error.extra_headers["X-Request-ID"] = "r1"
    headers = error_response(error).headers
    assert headers["X-Request-ID"] == "r1"
    assert headers["Tus-Version"] == "1.0.0"
    assert headers["Content-Type"] == "text/plain; charset=utf-8"


def test_error_response_extra_headers_override_own_headers() -> None:
    error = errors.ServiceUnavailableError()
    error.extra_headers["Retry-After"] = "30"
    assert error_response(error).headers["Retry-After"] == "30"

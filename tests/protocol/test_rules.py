"""Protocol decisions (tusserver.protocol.rules); item numbers refer to PROTOCOL.md."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage_backends.base import StorageRef
from tusserver.protocol import errors
from tusserver.protocol.headers import CreateRequest, PatchRequest
from tusserver.protocol.model import Extension, UploadInfo
from tusserver.protocol.rules import (
    BodyEnd,
    CreatePlan,
    PatchPlan,
    body_end_error,
    plan_create,
    plan_patch,
    supported_extensions,
)

ALL = supported_extensions(can_delete=True, expires=True)
NO_DEFER = (Extension.CREATION, Extension.CREATION_WITH_UPLOAD)
NO_BODY = (Extension.CREATION, Extension.CREATION_DEFER_LENGTH)


def create_request(
    length: int | None = 10,
    *,
    content_length: int | None = None,
    has_body: bool = False,
    oos: bool = True,
    metadata: dict[str, str] | None = None,
) -> CreateRequest:
    return CreateRequest(
        length=length,
        defer_length=length is None,
        metadata=metadata or {},
        content_length=content_length,
        has_body=has_body,
        body_is_offset_stream=oos,
    )


def upload(length: int | None = 10, offset: int = 0) -> UploadInfo:
    return UploadInfo(
        id="abc",
        length=length,
        offset=offset,
        storage=StorageRef(backend="memory", key="abc"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


def patch(offset: int = 0, *, length: int | None = None, content_length: int | None = None) -> PatchRequest:
    return PatchRequest(offset=offset, length=length, content_length=content_length)


# --- supported_extensions (item 8) ------------------------------------------------------------------------------


BASE = ("creation", "creation-with-upload", "creation-defer-length")


@pytest.mark.parametrize(
    ("can_delete", "expires", "expected"),
    [
        (True, True, (*BASE, "expiration", "checksum", "termination")),
        (False, True, (*BASE, "expiration", "checksum")),
        (True, False, (*BASE, "checksum", "termination")),
        (False, False, (*BASE, "checksum")),
    ],
    ids=["all", "without-delete", "without-expiration", "neither"],
)
def test_supported_extensions_follow_storage_and_settings(
    can_delete: bool, expires: bool, expected: tuple[str, ...]
) -> None:
    """Item 8 (exactly the supported extensions) and 57 (expiration only when uploads expire)."""
    assert supported_extensions(can_delete=can_delete, expires=expires) == expected


@pytest.mark.parametrize("can_delete", [True, False], ids=["with-delete", "without-delete"])
def test_supported_extensions_never_advertise_checksum_trailer_or_upload_without_creation(can_delete: bool) -> None:
    """Items 8 and 67: no creation-with-upload without creation; ASGI has no request trailers."""
    extensions = supported_extensions(can_delete=can_delete, expires=True)
    assert Extension.CREATION in extensions
    assert "checksum-trailer" not in extensions


# --- plan_create ------------------------------------------------------------------------------------------------


def test_plan_create_known_length_without_body() -> None:
    """Item 31."""
    plan = plan_create(create_request(10, metadata={"a": "YQ=="}), max_size=None, extensions=ALL)
    assert plan == CreatePlan(length=10, metadata={"a": "YQ=="}, read_body=False, body_limit=10)


@pytest.mark.parametrize(("max_size", "limit"), [(None, None), (100, 100)], ids=["unlimited", "capped-at-max-size"])
def test_plan_create_deferred_body_limit_is_max_size(max_size: int | None, limit: int | None) -> None:
    """Items 48 and 56: while the length is deferred, the body is capped at Tus-Max-Size."""
    plan = plan_create(create_request(None), max_size=max_size, extensions=ALL)
    assert (plan.length, plan.body_limit) == (None, limit)


def test_plan_create_deferred_without_extension_raises_extension_unsupported() -> None:
    """Item 51: 400 when creation-defer-length is not supported."""
    with pytest.raises(errors.ExtensionUnsupportedError) as info:
        plan_create(create_request(None), max_size=None, extensions=NO_DEFER)
    assert (info.value.status, info.value.code) == (400, "ERR_EXTENSION_UNSUPPORTED")


@pytest.mark.parametrize(("length", "max_size"), [(100, 100), (0, 0)], ids=["equal", "zero"])
def test_plan_create_length_at_max_size_is_accepted(length: int, max_size: int) -> None:
    assert plan_create(create_request(length), max_size=max_size, extensions=ALL).length == length


def test_plan_create_length_over_max_size_raises_413() -> None:
    """Item 35: tus §POST MUST 413."""
    with pytest.raises(errors.MaxSizeExceededError) as info:
        plan_create(create_request(101), max_size=100, extensions=ALL)
    assert (info.value.status, info.value.code) == (413, "ERR_MAX_SIZE_EXCEEDED")


def test_plan_create_body_without_creation_with_upload_raises_extension_unsupported() -> None:
    with pytest.raises(errors.ExtensionUnsupportedError):
        plan_create(create_request(10, content_length=5, has_body=True), max_size=None, extensions=NO_BODY)


def test_plan_create_body_with_wrong_content_type_raises_415() -> None:
    """Item 44: a non-empty body that is not application/offset+octet-stream."""
    with pytest.raises(errors.InvalidContentTypeError) as info:
        plan_create(create_request(10, content_length=5, has_body=True, oos=False), max_size=None, extensions=ALL)
    assert info.value.status == 415


def test_plan_create_empty_body_ignores_content_type() -> None:
    """Item 44: with an empty body the Content-Type does not matter."""
    plan = plan_create(create_request(10, content_length=0, oos=False), max_size=None, extensions=ALL)
    assert plan.read_body is False


@pytest.mark.parametrize(("length", "content_length"), [(11, 5), (5, 5)], ids=["partial", "whole-upload"])
def test_plan_create_with_upload_reads_body(length: int, content_length: int) -> None:
    """Items 42 and 43."""
    req = create_request(length, content_length=content_length, has_body=True)
    assert plan_create(req, max_size=None, extensions=ALL) == CreatePlan(length, {}, True, length)


def test_plan_create_chunked_body_has_length_as_limit() -> None:
    """Item 45: without Content-Length the body is still capped at Upload-Length."""
    plan = plan_create(create_request(10, has_body=True), max_size=None, extensions=ALL)
    assert (plan.read_body, plan.body_limit) == (True, 10)


@pytest.mark.parametrize(
    ("length", "max_size"), [(5, None), (0, None), (None, 4)], ids=["over-length", "zero-length", "deferred-over-max"]
)
def test_plan_create_content_length_beyond_limit_raises_413(length: int | None, max_size: int | None) -> None:
    """Items 45 and 56: checked before the upload is created."""
    req = create_request(length, content_length=6, has_body=True)
    with pytest.raises(errors.SizeExceededError) as info:
        plan_create(req, max_size=max_size, extensions=ALL)
    assert (info.value.status, info.value.code) == (413, "ERR_UPLOAD_SIZE_EXCEEDED")


# --- plan_patch -------------------------------------------------------------------------------------------------


def test_plan_patch_matching_offset_limits_body_to_rest() -> None:
    """Item 18."""
    assert plan_patch(upload(10, 4), patch(4, content_length=6), max_size=None) == PatchPlan(10, 6)


def test_plan_patch_mismatch_raises_409_with_current_offset() -> None:
    """Item 19: 409, and the response carries the current Upload-Offset."""
    with pytest.raises(errors.OffsetMismatchError) as info:
        plan_patch(upload(10, 5), patch(0), max_size=None)
    assert (info.value.status, info.value.code) == (409, "ERR_MISMATCHED_OFFSET")
    assert info.value.current_offset == 5
    assert info.value.headers() == {"Upload-Offset": "5"}


def test_plan_patch_offset_ahead_raises_409() -> None:
    with pytest.raises(errors.OffsetMismatchError):
        plan_patch(upload(10, 0), patch(3), max_size=None)


def test_plan_patch_content_length_beyond_length_raises_413() -> None:
    """Item 23: Content-Length larger than Upload-Length - offset -> 413 before reading."""
    with pytest.raises(errors.SizeExceededError) as info:
        plan_patch(upload(10, 4), patch(4, content_length=7), max_size=None)
    assert info.value.status == 413


def test_plan_patch_completed_upload_empty_body_is_accepted() -> None:
    """Item 25: an empty PATCH at the end of a completed upload is not an error."""
    assert plan_patch(upload(5, 5), patch(5, content_length=0), max_size=None) == PatchPlan(5, 0)


def test_plan_patch_completed_upload_with_body_raises_413() -> None:
    """Item 25: a non-empty body on a completed upload -> 413."""
    with pytest.raises(errors.SizeExceededError):
        plan_patch(upload(5, 5), patch(5, content_length=1), max_size=None)


def test_plan_patch_declares_deferred_length() -> None:
    """Item 52: Upload-Length on a PATCH sets the deferred length."""
    assert plan_patch(upload(None, 0), patch(0, length=12, content_length=12), max_size=None) == PatchPlan(12, 12)


def test_plan_patch_declared_length_equal_to_offset_completes() -> None:
    """Item 55: an empty PATCH declaring length == offset completes the upload."""
    assert plan_patch(upload(None, 7), patch(7, length=7, content_length=0), max_size=None) == PatchPlan(7, 0)


def test_plan_patch_same_length_again_is_accepted() -> None:
    """Item 53 (IMPL): an identical Upload-Length is harmless."""
    assert plan_patch(upload(10, 2), patch(2, length=10), max_size=None) == PatchPlan(10, 8)


def test_plan_patch_changed_length_raises_400() -> None:
    """Item 53: once set, the length MUST NOT change."""
    with pytest.raises(errors.InvalidLengthError) as info:
        plan_patch(upload(10, 2), patch(2, length=200), max_size=None)
    assert (info.value.status, info.value.code) == (400, "ERR_INVALID_UPLOAD_LENGTH")


def test_plan_patch_declared_length_below_offset_raises_400() -> None:
    """Item 54."""
    with pytest.raises(errors.InvalidLengthError):
        plan_patch(upload(None, 8), patch(8, length=7), max_size=None)


@pytest.mark.parametrize(("declared", "max_size"), [(101, 100), (1, 0)], ids=["over", "zero-max"])
def test_plan_patch_declared_length_over_max_size_raises_413(declared: int, max_size: int) -> None:
    """Item 54: a declared length over Tus-Max-Size -> 413."""
    with pytest.raises(errors.MaxSizeExceededError) as info:
        plan_patch(upload(None, 0), patch(0, length=declared), max_size=max_size)
    assert info.value.status == 413


def test_plan_patch_declared_length_at_max_size_is_accepted() -> None:
    assert plan_patch(upload(None, 3), patch(3, length=100), max_size=100) == PatchPlan(100, 97)


def test_plan_patch_content_length_beyond_declared_length_raises_413() -> None:
    with pytest.raises(errors.SizeExceededError):
        plan_patch(upload(None, 2), patch(2, length=5, content_length=4), max_size=None)


@pytest.mark.parametrize(("max_size", "limit"), [(None, None), (100, 70)], ids=["unlimited", "max-minus-offset"])
def test_plan_patch_deferred_body_limit(max_size: int | None, limit: int | None) -> None:
    """Item 56: while deferred, the body is capped at Tus-Max-Size - offset."""
    assert plan_patch(upload(None, 30), patch(30), max_size=max_size) == PatchPlan(None, limit)


def test_plan_patch_deferred_content_length_over_max_size_raises_413() -> None:
    """Item 56."""
    with pytest.raises(errors.SizeExceededError):
        plan_patch(upload(None, 30), patch(30, content_length=71), max_size=100)


def test_plan_patch_known_length_ignores_max_size_for_limit() -> None:
    assert plan_patch(upload(10, 0), patch(0), max_size=1000) == PatchPlan(10, 10)


# --- body_end_error (items 23, 26, 27, 28) -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (BodyEnd.COMPLETE, None),
        (BodyEnd.DISCONNECTED, None),
        (BodyEnd.LIMIT_EXCEEDED, errors.SizeExceededError),
        (BodyEnd.INTERRUPTED, errors.UploadInterruptedError),
        (BodyEnd.TIMEOUT, errors.ReadTimeoutError),
    ],
    ids=["complete", "disconnected", "limit-413", "interrupted-400", "timeout-500"],
)
def test_body_end_error(end: BodyEnd, expected: type[errors.TusError] | None) -> None:
    error = body_end_error(end)
    if expected is None:
        assert error is None
    else:
        assert type(error) is expected


@pytest.mark.parametrize(
    ("end", "status"),
    [(BodyEnd.LIMIT_EXCEEDED, 413), (BodyEnd.INTERRUPTED, 400), (BodyEnd.TIMEOUT, 500)],
    ids=["limit", "interrupted", "timeout"],
)
def test_body_end_error_status(end: BodyEnd, status: int) -> None:
    """Item 27: a read timeout is a 5xx on purpose, so clients retry."""
    error = body_end_error(end)
    assert error is not None
    assert error.status == status

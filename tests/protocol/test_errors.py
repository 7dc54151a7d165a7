"""The error table (tusserver.protocol.errors): status, code and own headers of every error."""

from __future__ import annotations

import pytest

from tusserver.protocol import errors

TABLE: list[tuple[type[errors.TusError], int, str]] = [
    (errors.UnsupportedVersionError, 412, "ERR_UNSUPPORTED_VERSION"),  # item 2
    (errors.InvalidContentTypeError, 415, "ERR_INVALID_CONTENT_TYPE"),  # item 20
    (errors.InvalidOffsetError, 400, "ERR_INVALID_OFFSET"),  # item 21
    (errors.InvalidLengthError, 400, "ERR_INVALID_UPLOAD_LENGTH"),  # items 33, 34, 53
    (errors.InvalidMetadataError, 400, "ERR_INVALID_METADATA"),  # item 40
    (errors.ExtensionUnsupportedError, 400, "ERR_EXTENSION_UNSUPPORTED"),  # item 51
    (errors.UploadNotFoundError, 404, "ERR_UPLOAD_NOT_FOUND"),  # items 14, 22
    (errors.MethodNotAllowedError, 405, "ERR_METHOD_NOT_ALLOWED"),
    (errors.MaxSizeExceededError, 413, "ERR_MAX_SIZE_EXCEEDED"),  # item 35
    (errors.SizeExceededError, 413, "ERR_UPLOAD_SIZE_EXCEEDED"),  # item 23
    (errors.UploadLockedError, 423, "ERR_UPLOAD_LOCKED"),  # item 28
    (errors.InvalidConcatError, 400, "ERR_INVALID_CONCAT"),  # items 81-83
    (errors.TooManyPartsError, 400, "ERR_CONCAT_TOO_MANY_PARTS"),  # issue 19: max_concat_parts
    (errors.CorsRejectedError, 400, "ERR_CORS_REJECTED"),  # a refused CORS preflight (items 88-89)
    (errors.ModifyFinalError, 403, "ERR_MODIFY_FINAL"),  # items 47, 77
    (errors.UploadExpiredError, 410, "ERR_UPLOAD_EXPIRED"),  # item 59
    (errors.UploadNotFinishedError, 409, "ERR_UPLOAD_NOT_FINISHED"),
    (errors.ChecksumAlgorithmError, 400, "ERR_CHECKSUM_ALGORITHM_UNSUPPORTED"),  # item 63
    (errors.InvalidChecksumError, 400, "ERR_INVALID_CHECKSUM"),  # item 63
    (errors.ChecksumMismatchError, 460, "ERR_CHECKSUM_MISMATCH"),  # item 62
    (errors.UploadExistsError, 409, "ERR_UPLOAD_EXISTS"),
    (errors.UploadInterruptedError, 400, "ERR_UPLOAD_INTERRUPTED"),  # item 28
    (errors.ReadTimeoutError, 500, "ERR_READ_TIMEOUT"),  # item 27
    (errors.StorageFailureError, 500, "ERR_STORAGE"),
    (errors.ServiceUnavailableError, 503, "ERR_SERVICE_UNAVAILABLE"),
    (errors.StorageFullError, 507, "ERR_STORAGE_FULL"),
    (errors.MalformedRequestError, 400, "ERR_MALFORMED_REQUEST"),
    (errors.HookAnswerError, 400, "ERR_UPLOAD_REJECTED"),
    # Issue 21: a rejected upload. The code of tusd's pre-create rejection, which is a rejection too.
    (errors.UploadRejectedError, 403, "ERR_UPLOAD_REJECTED"),
    (errors.TerminationRejectedError, 400, "ERR_TERMINATION_REJECTED"),
    (errors.UnauthorizedError, 401, "ERR_UNAUTHORIZED"),  # issue 21: no usable bearer token (RFC 6750)
    (errors.AccessDeniedError, 403, "ERR_ACCESS_DENIED"),  # issue 21: a pre-access hook's denial
    (errors.UploadStoppedError, 400, "ERR_UPLOAD_STOPPED"),
    (errors.InternalServerError, 500, "ERR_INTERNAL_SERVER_ERROR"),
    (errors.HeadTooLargeError, 431, "ERR_HEADERS_TOO_LARGE"),  # RFC 6585 §5
    (errors.HeadTimeoutError, 408, "ERR_HEADERS_TIMEOUT"),  # RFC 9110 §15.5.9
    # Issue 21: the status API's own.
    (errors.InvalidParameterError, 400, "ERR_INVALID_PARAMETER"),
    (errors.AdminRequiredError, 403, "ERR_ADMIN_REQUIRED"),
    (errors.UploadStateConflictError, 409, "ERR_UPLOAD_STATE_CONFLICT"),
    (errors.ListingUnsupportedError, 501, "ERR_LISTING_UNSUPPORTED"),
]


@pytest.mark.parametrize(("cls", "status", "code"), TABLE, ids=[cls.__name__ for cls, _, _ in TABLE])
def test_error_status_and_code(cls: type[errors.TusError], status: int, code: str) -> None:
    error = cls()
    assert (error.status, error.code) == (status, code)
    assert error.message


def test_offset_mismatch_status_and_code() -> None:
    """Item 19 (its constructor needs the current offset)."""
    error = errors.OffsetMismatchError(3)
    assert (error.status, error.code, error.current_offset) == (409, "ERR_MISMATCHED_OFFSET", 3)


def test_error_codes_are_unique() -> None:
    """Unique but for UploadRejectedError, which shares the code of the rejection it specialises."""
    codes = [code for cls, _, code in TABLE if cls is not errors.UploadRejectedError]
    codes += [errors.OffsetMismatchError.code, errors.RangeNotSatisfiableError.code]
    assert len(codes) == len(set(codes))


def test_table_covers_every_exported_error() -> None:
    exported = {getattr(errors, name) for name in errors.__all__} - {errors.TusError, errors.error_class}
    assert exported == {cls for cls, _, _ in TABLE} | {errors.OffsetMismatchError, errors.RangeNotSatisfiableError}


@pytest.mark.parametrize(
    ("error", "challenge"),
    [
        (errors.UnauthorizedError(), "Bearer"),
        (
            errors.UnauthorizedError('the "token" has expired\n', invalid_token=True),
            'Bearer error="invalid_token", error_description="the token has expired"',
        ),
    ],
)
def test_unauthorized_carries_a_bearer_challenge(error: errors.UnauthorizedError, challenge: str) -> None:
    """RFC 6750 §3: bare without a token; with one, its error, and a description that stays a quoted-string."""
    assert error.headers() == {"WWW-Authenticate": challenge}


def test_error_custom_message_replaces_default() -> None:
    error = errors.InvalidLengthError("custom")
    assert error.message == "custom"
    assert str(error) == "custom"


@pytest.mark.parametrize(("cls", "status", "code"), TABLE, ids=[cls.__name__ for cls, _, _ in TABLE])
def test_temporary_failures_are_retryable_statuses(cls: type[errors.TusError], status: int, code: str) -> None:
    """tus-js-client retries only 5xx, 409 and 423: every 4xx here must be a permanent client error."""
    retryable = status >= 500 or status in {409, 423}
    temporary = cls in {
        errors.UploadLockedError,
        errors.ReadTimeoutError,
        errors.ServiceUnavailableError,
        errors.StorageFullError,
    }
    assert retryable or not temporary


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (errors.UnsupportedVersionError(), {"Tus-Version": "1.0.0"}),
        (errors.OffsetMismatchError(7), {"Upload-Offset": "7"}),
        (errors.ServiceUnavailableError(), {"Retry-After": "1"}),
        (errors.StorageFullError(), {"Retry-After": "60"}),
        (errors.UploadLockedError(), {"Retry-After": "1"}),
        (errors.MethodNotAllowedError(allow="GET"), {"Allow": "GET"}),
        (errors.MethodNotAllowedError(), {}),
        (errors.InvalidOffsetError(), {}),
    ],
    ids=[
        "412-tus-version",
        "409-offset",
        "503-retry-after",
        "507-retry-after",
        "423-retry-after",
        "405-allow",
        "405-no-allow",
        "plain",
    ],
)
def test_error_own_headers(error: errors.TusError, expected: dict[str, str]) -> None:
    assert error.headers() == expected


@pytest.mark.parametrize(("cls", "status", "code"), TABLE, ids=[cls.__name__ for cls, _, _ in TABLE])
def test_error_class_finds_each_code(cls: type[errors.TusError], status: int, code: str) -> None:
    """The middleware rebuilds an error body from its recorded code (a POST overridden to HEAD); a code two
    classes share gives the more general one, whose default reason fits both."""
    found = errors.error_class(code)
    assert found is cls or (cls is errors.UploadRejectedError and found is errors.HookAnswerError)


def test_error_class_of_unknown_code_is_none() -> None:
    assert errors.error_class("ERR_NO_SUCH_CODE") is None

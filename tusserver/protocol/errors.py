"""The one table of tus errors: each class carries its HTTP status and error code.

Every error the server answers with is one of these classes; `render_error` in
`tusserver.protocol.responses` turns it into `"{code}: {message}\\n"`. Temporary
failures are never answered with a 4xx other than 409 or 423, because tus-js-client
retries only 5xx, 409 and 423 (STYLE.md B.5).
"""

from __future__ import annotations

from typing import ClassVar

from tusserver.protocol.model import TUS_VERSION

__all__ = [
    "AccessDeniedError",
    "AdminRequiredError",
    "ChecksumAlgorithmError",
    "ChecksumMismatchError",
    "CorsRejectedError",
    "ExtensionUnsupportedError",
    "HeadTimeoutError",
    "HeadTooLargeError",
    "HookAnswerError",
    "InternalServerError",
    "InvalidChecksumError",
    "InvalidConcatError",
    "InvalidContentTypeError",
    "InvalidLengthError",
    "InvalidMetadataError",
    "InvalidOffsetError",
    "InvalidParameterError",
    "ListingUnsupportedError",
    "MalformedRequestError",
    "MaxSizeExceededError",
    "MethodNotAllowedError",
    "ModifyFinalError",
    "OffsetMismatchError",
    "RangeNotSatisfiableError",
    "ReadTimeoutError",
    "ServiceUnavailableError",
    "SizeExceededError",
    "StorageFailureError",
    "StorageFullError",
    "TerminationRejectedError",
    "TooManyPartsError",
    "TusError",
    "UnauthorizedError",
    "UnsupportedVersionError",
    "UploadExistsError",
    "UploadExpiredError",
    "UploadInterruptedError",
    "UploadLockedError",
    "UploadNotFinishedError",
    "UploadNotFoundError",
    "UploadRejectedError",
    "UploadStateConflictError",
    "UploadStoppedError",
    "error_class",
]


class TusError(Exception):
    """Base of every error answered to a client.

    Attributes:
        status: the HTTP status code.
        code: a stable, machine-readable error code (tusd's names where they exist).
        message: a one-line reason for humans.
    """

    status: ClassVar[int] = 500
    code: ClassVar[str] = "ERR_INTERNAL_SERVER_ERROR"
    default_message: ClassVar[str] = "internal server error"

    def __init__(self, message: str | None = None) -> None:
        self.message = message or self.default_message
        self.extra_headers: dict[str, str] = {}
        super().__init__(self.message)

    def headers(self) -> dict[str, str]:
        """The response headers this error carries: its own (e.g. Tus-Version on 412) and any added."""
        return {**self._headers(), **self.extra_headers}

    @property
    def http_status(self) -> int:
        """The status answered: the class's, unless a hook chose another (`HookAnswerError`)."""
        return self.status

    def text(self) -> str:
        """The body answered: `"{code}: {message}"`, one line."""
        return f"{self.code}: {self.message}\n"

    def _headers(self) -> dict[str, str]:
        return {}


class UnsupportedVersionError(TusError):
    status = 412
    code = "ERR_UNSUPPORTED_VERSION"
    default_message = "Tus-Resumable header missing or not a supported version"

    def _headers(self) -> dict[str, str]:
        # tus §Tus-Resumable: the 412 "MUST" list the supported versions in Tus-Version.
        return {"Tus-Version": TUS_VERSION}


class InvalidContentTypeError(TusError):
    status = 415
    code = "ERR_INVALID_CONTENT_TYPE"
    default_message = "Content-Type must be application/offset+octet-stream"


class InvalidOffsetError(TusError):
    status = 400
    code = "ERR_INVALID_OFFSET"
    default_message = "Upload-Offset missing or not a non-negative integer"


class InvalidLengthError(TusError):
    status = 400
    code = "ERR_INVALID_UPLOAD_LENGTH"
    default_message = "Upload-Length invalid"


class InvalidMetadataError(TusError):
    status = 400
    code = "ERR_INVALID_METADATA"
    default_message = "Upload-Metadata invalid"


class ExtensionUnsupportedError(TusError):
    status = 400
    code = "ERR_EXTENSION_UNSUPPORTED"
    default_message = "this server does not support the extension the request needs"


class InvalidConcatError(TusError):
    status = 400
    code = "ERR_INVALID_CONCAT"
    default_message = "Upload-Concat is malformed or names an upload that cannot be joined"


class TooManyPartsError(InvalidConcatError):
    # Not a spec rule: `max_concat_parts` bounds what one small POST can make the server write.
    status = 400
    code = "ERR_CONCAT_TOO_MANY_PARTS"
    default_message = "the final upload lists more partial uploads than this server joins"


class CorsRejectedError(TusError):
    # Not in tus: a CORS preflight (Fetch standard) asked for an origin, method or header not allowed.
    # Starlette's CORSMiddleware answers it 400; this gives that 400 the table's form.
    status = 400
    code = "ERR_CORS_REJECTED"
    default_message = "the CORS preflight asks for an origin, method or header this server does not allow"


class ModifyFinalError(TusError):
    # tus §Concatenation: "The Server MUST respond with the 403 Forbidden status to PATCH requests
    # against a final upload URL".
    status = 403
    code = "ERR_MODIFY_FINAL"
    default_message = "a final upload cannot be modified"


class UploadNotFoundError(TusError):
    status = 404
    code = "ERR_UPLOAD_NOT_FOUND"
    default_message = "upload not found"


class UnauthorizedError(TusError):
    """No usable bearer token (authorization). RFC 6750 §3: a request without one gets a bare `Bearer`
    challenge, one whose token is malformed, expired or badly signed also `error="invalid_token"`."""

    status = 401
    code = "ERR_UNAUTHORIZED"
    default_message = "this server needs a bearer token (Authorization: Bearer <token>)"

    def __init__(self, message: str | None = None, *, invalid_token: bool = False) -> None:
        super().__init__(message)
        self.invalid_token = invalid_token

    def _headers(self) -> dict[str, str]:
        if not self.invalid_token:
            return {"WWW-Authenticate": "Bearer"}
        # RFC 6750 §3: error_description is printable ASCII without '"' and '\'.
        description = "".join(char for char in self.message if " " <= char <= "~" and char not in '"\\')
        return {"WWW-Authenticate": f'Bearer error="invalid_token", error_description="{description}"'}


class MethodNotAllowedError(TusError):
    status = 405
    code = "ERR_METHOD_NOT_ALLOWED"
    default_message = "method not allowed on this URL"

    def __init__(self, message: str | None = None, *, allow: str = "") -> None:
        super().__init__(message)
        self.allow = allow

    def _headers(self) -> dict[str, str]:
        return {"Allow": self.allow} if self.allow else {}


class OffsetMismatchError(TusError):
    status = 409
    code = "ERR_MISMATCHED_OFFSET"
    default_message = "Upload-Offset does not match the upload's offset"

    def __init__(self, current_offset: int) -> None:
        super().__init__(f"Upload-Offset does not match the upload's offset {current_offset}")
        self.current_offset = current_offset

    def _headers(self) -> dict[str, str]:
        # PROTOCOL.md item 19: the 409 carries the current offset (RUFH requires it).
        return {"Upload-Offset": str(self.current_offset)}


class UploadExpiredError(TusError):
    # tus §Upload-Expires: after expiry the server SHOULD answer 410 Gone while it still knows the upload.
    status = 410
    code = "ERR_UPLOAD_EXPIRED"
    default_message = "the upload has expired"


class UploadNotFinishedError(TusError):
    status = 409
    code = "ERR_UPLOAD_NOT_FINISHED"
    default_message = "the upload is not finished; it can be downloaded once every byte has arrived"


class ChecksumAlgorithmError(TusError):
    # tus §Checksum: an unsupported algorithm MUST be answered with 400 Bad Request.
    status = 400
    code = "ERR_CHECKSUM_ALGORITHM_UNSUPPORTED"
    default_message = "Upload-Checksum names an unsupported algorithm"


class InvalidChecksumError(TusError):
    status = 400
    code = "ERR_INVALID_CHECKSUM"
    default_message = "Upload-Checksum is malformed"


class ChecksumMismatchError(TusError):
    # tus §Checksum: "460 Checksum Mismatch" when the digests differ; the chunk is discarded.
    status = 460
    code = "ERR_CHECKSUM_MISMATCH"
    default_message = "the request body does not match Upload-Checksum; it was discarded"


class MaxSizeExceededError(TusError):
    status = 413
    code = "ERR_MAX_SIZE_EXCEEDED"
    default_message = "upload length exceeds the server's maximum size"

    def __init__(self, message: str | None = None, *, max_size: int | None = None) -> None:
        super().__init__(message)
        if max_size is not None:  # the limit, as OPTIONS announces it: the client need not ask
            self.extra_headers["Tus-Max-Size"] = str(max_size)


class SizeExceededError(TusError):
    status = 413
    code = "ERR_UPLOAD_SIZE_EXCEEDED"
    default_message = "request body runs past the upload's length"


class HeadTooLargeError(TusError):
    # RFC 6585 §5. Answered by the HTTP layer (tusserver.serving._uvicorn), before any handler runs.
    status = 431
    code = "ERR_HEADERS_TOO_LARGE"
    default_message = "the request line and headers are too large"


class HeadTimeoutError(TusError):
    # RFC 9110 §15.5.9. Answered by the HTTP layer (tusserver.serving._uvicorn), before any handler runs.
    status = 408
    code = "ERR_HEADERS_TIMEOUT"
    default_message = "the request line and headers did not arrive in time"


class MalformedRequestError(TusError):
    # RFC 9110 §15.5.1: 400 for "malformed request syntax". Answered by the HTTP layer (tusserver.serving._uvicorn)
    # in place of uvicorn's own plain "Invalid HTTP request received.".
    status = 400
    code = "ERR_MALFORMED_REQUEST"
    default_message = "the request is not valid HTTP/1.1"


class UploadLockedError(TusError):
    status = 423
    code = "ERR_UPLOAD_LOCKED"
    default_message = "another request is using this upload; retry later"

    def _headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}  # the holder was asked to let go; a lapsed lock frees itself within --lock-ttl


class UploadExistsError(TusError):
    status = 409
    code = "ERR_UPLOAD_EXISTS"
    default_message = "an upload with this id exists already"


class UploadInterruptedError(TusError):
    status = 400
    code = "ERR_UPLOAD_INTERRUPTED"
    default_message = "another request for this upload interrupted this one"


class ReadTimeoutError(TusError):
    # 5xx on purpose: clients retry 5xx but not 4xx (tusd ErrReadTimeout).
    status = 500
    code = "ERR_READ_TIMEOUT"
    default_message = "timed out reading the request body"


class StorageFailureError(TusError):
    status = 500
    code = "ERR_STORAGE"
    default_message = "the storage backend failed"


class ServiceUnavailableError(TusError):
    status = 503
    code = "ERR_SERVICE_UNAVAILABLE"
    default_message = "service temporarily unavailable; retry later"

    def _headers(self) -> dict[str, str]:
        return {"Retry-After": "1"}


class StorageFullError(TusError):
    """No space left where uploads or their records go. 507 (RFC 4918 §11.5) is a 5xx, which tus-js-client
    retries: space may be freed (DELETE works on a full disk) and the client resumes from the recorded offset."""

    status = 507
    code = "ERR_STORAGE_FULL"
    default_message = "no space left to store the upload; retry later"

    def _headers(self) -> dict[str, str]:
        return {"Retry-After": "60"}


class HookAnswerError(TusError):
    """The answer a hook chose for the client: a rejected creation or termination, a stopped upload. A hook's
    own status, body and headers go out as it wrote them (tusd's HTTPResponse); without them, the table's."""

    status = 400
    code = "ERR_UPLOAD_REJECTED"
    default_message = "rejected by a hook"

    def __init__(
        self, message: str | None = None, *, status: int = 0, body: str = "", headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self._status, self._body = status, body
        self.extra_headers.update(headers or {})

    @property
    def http_status(self) -> int:
        return self._status or self.status

    def text(self) -> str:
        return self._body or super().text()


class TerminationRejectedError(HookAnswerError):
    code = "ERR_TERMINATION_REJECTED"
    default_message = "a hook refused to terminate the upload"


class AccessDeniedError(HookAnswerError):
    # A pre-access hook refused the request; its own status, body and headers go out when it gave them.
    status = 403
    code = "ERR_ACCESS_DENIED"
    default_message = "a hook refused access"


class UploadStoppedError(HookAnswerError):
    code = "ERR_UPLOAD_STOPPED"
    default_message = "a hook stopped the upload; the bytes received are kept"


class InternalServerError(TusError):
    """Anything unexpected: logged with its traceback, answered without one."""


class RangeNotSatisfiableError(TusError):
    status = 416
    code = "ERR_RANGE_NOT_SATISFIABLE"
    default_message = "the Range selects no byte of the upload"

    def __init__(self, length: int) -> None:
        super().__init__(f"the Range selects none of the upload's {length} bytes")
        self.length = length

    def _headers(self) -> dict[str, str]:
        # RFC 9110 §15.5.17: a 416 to a byte-range request "SHOULD" send Content-Range: bytes */<length>.
        return {"Content-Range": f"bytes */{self.length}"}


# --- the status API's own (issue 21), answered in the same form as every other ---------------------------------


class InvalidParameterError(TusError):
    status = 400
    code = "ERR_INVALID_PARAMETER"
    default_message = "a query parameter or the request body is not valid"


class AdminRequiredError(TusError):
    # 403, not 404: the caller may see what it asked about (its own upload, or a listing), only not do this.
    status = 403
    code = "ERR_ADMIN_REQUIRED"
    default_message = "only an admin may do this"


class UploadStateConflictError(TusError):
    status = 409
    code = "ERR_UPLOAD_STATE_CONFLICT"
    default_message = "the upload's state does not allow this"


class ListingUnsupportedError(TusError):
    status = 501
    code = "ERR_LISTING_UNSUPPORTED"
    default_message = "the configured state store cannot list uploads"


def error_class(code: str) -> type[TusError] | None:
    """The table's class for an error code, None for an unknown code."""
    pending = TusError.__subclasses__()
    while pending:
        cls = pending.pop()
        if cls.code == code:
            return cls
        pending.extend(cls.__subclasses__())
    return None


class UploadRejectedError(HookAnswerError):
    """An upload whose verdict is `rejected` (issue 21: a pre-finish hook's, an admin's, or a declared
    whole-file digest that does not match): the request that finished it, and every later HEAD, PATCH and GET,
    get 403 and the reason. A pre-finish hook's own HTTPResponse replaces the answer to the finishing request.
    tus §HEAD lists 403 among the answers for an upload that cannot be used; clients then stop resuming it."""

    status = 403
    code = "ERR_UPLOAD_REJECTED"
    default_message = "the upload was rejected"

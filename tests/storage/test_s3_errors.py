"""The S3 error translation (issue 7 item 8): throttling and timeouts are 503, missing objects 404, the rest
500, each with one line naming the operation. botocore's exceptions are built here, as the client raises them."""

from __future__ import annotations

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, ReadTimeoutError

from storage_backends.errors import BlobNotFoundError, StorageError, StorageUnavailableError
from storage_backends.s3.calls import s3_errors


def client_error(code: str, status: int) -> ClientError:
    response = {"Error": {"Code": code, "Message": "from the store"}, "ResponseMetadata": {"HTTPStatusCode": status}}
    return ClientError(response, "UploadPart")  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (client_error("SlowDown", 503), StorageUnavailableError),
        (client_error("RequestTimeout", 400), StorageUnavailableError),
        (client_error("InternalError", 500), StorageUnavailableError),
        (client_error("", 503), StorageUnavailableError),
        (ReadTimeoutError(endpoint_url="http://s3"), StorageUnavailableError),
        (EndpointConnectionError(endpoint_url="http://s3"), StorageUnavailableError),
        (client_error("NoSuchUpload", 404), BlobNotFoundError),
        (client_error("NoSuchKey", 404), BlobNotFoundError),
        (client_error("", 404), BlobNotFoundError),
        (client_error("AccessDenied", 403), StorageError),
        (client_error("NoSuchBucket", 404), StorageError),
    ],
    ids=lambda value: type(value).__name__,
)
def test_botocore_errors_become_storage_errors(raised: Exception, expected: type[StorageError]) -> None:
    with pytest.raises(StorageError) as caught, s3_errors("part 1 of up"):
        raise raised
    assert type(caught.value) is expected
    assert str(caught.value).startswith("part 1 of up: ")
    assert "\n" not in str(caught.value)

"""The pure arithmetic of the Azure backend (block sizes, block IDs, tail headers, join plans) and its error
translation: throttling and timeouts are 503, missing blobs 404, the rest 500, each one line."""

from __future__ import annotations

import os

import pytest
from azure.core.exceptions import HttpResponseError, ResourceNotFoundError, ServiceRequestError, ServiceResponseError
from hypothesis import given
from hypothesis import strategies as st

from storage_backends.azure.auth import account_name_of
from storage_backends.azure.calls import azure_errors, deadline
from storage_backends.azure.layout import (
    JOIN_BLOCK_SIZE,
    MAX_BLOB_SIZE,
    MAX_BLOCK_SIZE,
    MAX_BLOCKS,
    Blob,
    TailHeader,
    _Remembered,
    block_id,
    block_size_for,
    plan_join,
)
from storage_backends.errors import BlobNotFoundError, StorageError, StorageUnavailableError
from storage_backends.pieces import MiB

PREFERRED, DEFERRED = 8 * MiB, 16 * MiB


def test_small_upload_gets_the_preferred_block_size() -> None:
    assert block_size_for(1, preferred=PREFERRED, deferred=DEFERRED) == PREFERRED
    assert block_size_for(PREFERRED * MAX_BLOCKS, preferred=PREFERRED, deferred=DEFERRED) == PREFERRED


def test_large_upload_grows_its_block_size_in_whole_mib_to_fit_50000_blocks() -> None:
    length = PREFERRED * MAX_BLOCKS + 1
    size = block_size_for(length, preferred=PREFERRED, deferred=DEFERRED)
    assert size == PREFERRED + MiB
    assert -(-length // size) <= MAX_BLOCKS


def test_deferred_length_gets_the_deferred_block_size() -> None:
    assert block_size_for(None, preferred=PREFERRED, deferred=DEFERRED) == DEFERRED


def test_blob_over_the_azure_limit_is_refused() -> None:
    with pytest.raises(ValueError, match=str(MAX_BLOB_SIZE)):
        block_size_for(MAX_BLOB_SIZE + 1, preferred=PREFERRED, deferred=DEFERRED)


@given(st.integers(min_value=0, max_value=MAX_BLOB_SIZE), st.integers(min_value=1, max_value=64 * MiB))
def test_any_length_fits_the_azure_limits(length: int, preferred: int) -> None:
    size = block_size_for(length, preferred=preferred, deferred=DEFERRED)
    assert 1 <= size <= MAX_BLOCK_SIZE
    assert -(-length // size) <= MAX_BLOCKS


@given(st.lists(st.integers(min_value=0, max_value=MAX_BLOCKS - 1), min_size=2, max_size=20))
def test_block_ids_have_one_width_and_sort_by_index(indexes: list[int]) -> None:
    ids = [block_id(index, "0123456789ab") for index in indexes]
    assert len({len(block) for block in ids}) == 1
    assert sorted(ids) == [block_id(index, "0123456789ab") for index in sorted(indexes)]


def test_tail_header_lists_each_writers_blocks_in_order_and_round_trips() -> None:
    header = TailHeader().extended("aaaa", 2).extended("bbbb", 0).extended("bbbb", 1).extended("bbbb", 2)
    assert header.runs == (("aaaa", 2), ("bbbb", 3))  # one run per writer, not one per block
    assert header.count == 5
    assert header.block_ids() == [block_id(0, "aaaa"), block_id(1, "aaaa"), *(block_id(i, "bbbb") for i in (2, 3, 4))]
    data = header.encode() + b"\ntail bytes"
    assert TailHeader.decode(data) == (header, data.index(b"\ntail bytes"))


def test_an_inline_header_is_decoded_at_most_once_per_server() -> None:
    """A chunked upload's PATCH finds the inline header the PATCH before it wrote, most often here: the header
    encoded then, not a new decoding (its runs grow by one per PATCH)."""
    written = TailHeader().extended(os.urandom(6).hex(), 3)
    assert TailHeader.of_inline(written.encode()) is written
    other_server = b'tus-azure-tail/1 {"runs":[["%s",2]]}\n' % os.urandom(6).hex().encode()  # written elsewhere
    first = TailHeader.of_inline(other_server)
    assert first.count == 2
    assert TailHeader.of_inline(other_server) is first
    with pytest.raises(ValueError, match="not an inline tail"):
        TailHeader.of_inline(written.encode() + b"tail bytes")


def test_the_remembered_headers_stay_within_their_budget() -> None:
    remembered = _Remembered(budget=1000)
    headers = [TailHeader().extended(os.urandom(6).hex(), count) for count in range(1, 40)]
    for header in headers:
        remembered.remember(header.encode(), header)
    kept = [header for header in headers if remembered.known(header.encode()) is header]
    assert kept == headers[-len(kept) :]  # the latest ones
    largest = max(len(header.encode()) for header in headers)
    assert 1000 - largest < sum(len(header.encode()) for header in kept) <= 1000  # none dropped needlessly


@pytest.mark.parametrize("data", [b"", b"plain bytes\n", b"tus-azure-tail/1 {no newline", b"tus-s3-tail/2 {}\n"])
def test_tail_header_refuses_other_blobs(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a tail"):
        TailHeader.decode(data)


def test_blob_reference_round_trips_and_names_its_tails_apart_per_creation() -> None:
    blob = Blob("p/up", 4 * MiB, 10, None, "text/plain", "inline", upload="c0ffee")
    tail = blob.tail_key(3, "0123456789ab", 12 * MiB + 5)
    with_tail = blob.with_tail(tail)
    assert Blob.of(with_tail.ref()) == with_tail
    assert with_tail.tail_name == tail
    assert tail.startswith(blob.tails)
    assert with_tail.tail_token == "0123456789ab"
    other = Blob("p/up", 4 * MiB, 10, None, upload="d00d")
    assert not tail.startswith(other.tails)


def test_join_copies_every_range_and_splits_only_past_the_join_block_size() -> None:
    plan = plan_join([1, 0, JOIN_BLOCK_SIZE * 2 + 1, 5])
    assert all(target.copied for target in plan)
    assert plan[0].size == 1
    assert sum(target.size for target in plan) == JOIN_BLOCK_SIZE * 2 + 7
    assert max(target.size for target in plan) <= JOIN_BLOCK_SIZE


@pytest.mark.parametrize(
    ("url", "account"),
    [("https://myacct.blob.core.windows.net", "myacct"),
     ("http://127.0.0.1:10000/devstoreaccount1", "devstoreaccount1"),
     ("http://localhost:10000/devstoreaccount1/", "devstoreaccount1")],
)  # fmt: skip
def test_account_name_from_the_url(url: str, account: str) -> None:
    assert account_name_of(url) == account


def response_error(status: int, code: str) -> HttpResponseError:
    error = ResourceNotFoundError(message="gone") if status == 404 else HttpResponseError(message=f"{code}\nRequestId")
    error.status_code = status
    error.__dict__["error_code"] = code
    return error


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (response_error(503, "ServerBusy"), StorageUnavailableError),
        (response_error(500, "OperationTimedOut"), StorageUnavailableError),
        (response_error(500, "InternalError"), StorageUnavailableError),
        (ServiceResponseError("read timed out"), StorageUnavailableError),
        (ServiceRequestError("connection refused"), StorageUnavailableError),
        (TimeoutError("no answer within 30 s"), StorageUnavailableError),
        (response_error(404, "BlobNotFound"), BlobNotFoundError),
        (response_error(404, "ContainerNotFound"), BlobNotFoundError),
        (response_error(403, "AuthorizationFailure"), StorageError),
        (response_error(400, "InvalidBlockList"), StorageError),
    ],
    ids=lambda value: type(value).__name__,
)
def test_sdk_errors_become_storage_errors(raised: Exception, expected: type[StorageError]) -> None:
    with pytest.raises(StorageError) as caught, azure_errors("block 7 of up"):
        raise raised
    assert type(caught.value) is expected
    assert str(caught.value).startswith("block 7 of up: ")
    assert "\n" not in str(caught.value)


def test_deadline_adds_the_time_bytes_take() -> None:
    assert deadline(30, sent=MiB) == 31
    assert deadline(30, copied=8 * MiB) == 31
    assert deadline(30) == 30

"""The upload record (tusserver.protocol.model)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from storage_backends.base import StorageRef
from tusserver.protocol.model import Extension, UploadInfo


def upload(length: int | None, offset: int) -> UploadInfo:
    return UploadInfo(
        id="abc",
        length=length,
        offset=offset,
        storage=StorageRef(backend="memory", key="abc"),
        created_at=datetime(2026, 1, 1, tzinfo=UTC),
    )


@pytest.mark.parametrize(
    ("length", "offset", "expected"),
    [(10, 10, True), (10, 3, False), (0, 0, True), (None, 0, False), (None, 5, False)],
    ids=["full", "partial", "zero-length", "deferred-empty", "deferred-with-bytes"],
)
def test_is_complete(length: int | None, offset: int, expected: bool) -> None:
    """Items 36 and 55: length 0 is complete at once; a deferred length is never complete."""
    assert upload(length, offset).is_complete is expected


def test_extension_names_are_the_tus_names() -> None:
    """Item 8: Tus-Extension values come from this list; checksum-trailer is never offered (item 67)."""
    assert {str(e) for e in Extension} == {
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "expiration",
        "checksum",
        "termination",
        "concatenation",
        "concatenation-unfinished",
    }

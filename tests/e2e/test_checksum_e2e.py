"""The checksum extension against the real server (PROTOCOL.md items 60-62): tuspy sends `Upload-Checksum: sha1`
with every chunk; a chunk corrupted in flight is refused with 460 and accepted when sent again. Bodies of a
megabyte and more, which tusserver's uvicorn moves into the file by splice(2), are hashed all the same.

tuspy gets one open `file_stream` (see test_tuspy.py for why).
"""

from __future__ import annotations

import base64
import hashlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

import pytest
import requests
from tusclient.client import TusClient
from tusclient.exceptions import TusUploadFailed
from tusclient.uploader.uploader import Uploader

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    TUS,
    KiB,
    MiB,
    ServerProcess,
    create_upload,
    head_offset,
    random_file,
    sha256_file,
)

pytestmark = pytest.mark.e2e

CHUNK = 256 * KiB
SIZE = 2 * MiB + 100  # nine chunks, the last one short


class CorruptingSha1:
    """tuspy's checksum function, but the digest of chunk number `corrupt` (0-based) is for other bytes.

    Counts calls: tuspy computes one digest per PATCH it sends, so `calls` is the number of PATCH requests.
    """

    def __init__(self, corrupt: int) -> None:
        self.corrupt = corrupt
        self.calls = 0

    def __call__(self, chunk: bytes) -> Any:
        self.calls += 1
        return hashlib.sha1(chunk + b"!" if self.calls == self.corrupt + 1 else chunk)


def corrupting_uploader(server: ServerProcess, stream: BinaryIO, sha1: CorruptingSha1, *, retries: int) -> Uploader:
    """A tuspy uploader with checksums on whose sha1 is `sha1`; retries a failed PATCH at once."""
    uploader_class = type("CorruptingUploader", (Uploader,), {"CHECKSUM_ALGORITHM_PAIR": ("sha1", sha1)})
    uploader: Uploader = uploader_class(
        file_stream=stream,
        client=TusClient(server.url),
        chunk_size=CHUNK,
        upload_checksum=True,
        retries=retries,
        retry_delay=0,
    )
    return uploader


def url_of(uploader: Uploader) -> str:
    url: object = uploader.url  # typed as None by tuspy
    assert isinstance(url, str)
    return url


def sha1_header(data: bytes) -> str:
    return "sha1 " + base64.b64encode(hashlib.sha1(data).digest()).decode()


@pytest.fixture
def server(shared_server: ServerProcess) -> ServerProcess:
    return shared_server  # these tests touch only their own uploads


@pytest.fixture
def source(tmp_path: Path) -> Path:
    return random_file(tmp_path / "source.bin", SIZE)


@pytest.fixture
def stream(source: Path) -> Iterator[BinaryIO]:
    with source.open("rb") as file:
        yield file


def test_tuspy_upload_with_checksums_stores_exact_bytes(server: ServerProcess, source: Path, stream: BinaryIO) -> None:
    uploader = TusClient(server.url).uploader(file_stream=stream, chunk_size=CHUNK, upload_checksum=True)
    uploader.upload()
    assert sha256_file(server.stored_path(url_of(uploader))) == sha256_file(source)


def test_tuspy_chunk_with_corrupted_checksum_fails_with_460(server: ServerProcess, stream: BinaryIO) -> None:
    """PROTOCOL.md item 62: without retries, tuspy reports the server's 460; the good chunks before it stay."""
    uploader = corrupting_uploader(server, stream, CorruptingSha1(corrupt=2), retries=0)
    with pytest.raises(TusUploadFailed) as failed:
        uploader.upload()
    assert failed.value.status_code == 460
    assert head_offset(url_of(uploader)) == 2 * CHUNK


def test_tuspy_resends_chunk_refused_with_460_and_completes(
    server: ServerProcess, source: Path, stream: BinaryIO
) -> None:
    """The issue's acceptance scenario: one chunk corrupted in flight -> 460 -> resent -> 204, file exact."""
    sha1 = CorruptingSha1(corrupt=3)
    uploader = corrupting_uploader(server, stream, sha1, retries=1)
    uploader.upload()
    assert sha1.calls == -(-SIZE // CHUNK) + 1  # one PATCH per chunk, plus the resent one
    assert sha256_file(server.stored_path(url_of(uploader))) == sha256_file(source)


def test_patch_with_wrong_sha1_returns_460_then_right_sha1_returns_204(server: ServerProcess) -> None:
    """PROTOCOL.md items 61 and 62 by hand: the refused chunk leaves the offset, the same chunk then succeeds."""
    location = create_upload(server, 11)
    headers = PATCH_HEADERS | {"Upload-Offset": "0"}
    bad = requests.patch(location, headers=headers | {"Upload-Checksum": sha1_header(b"hello w0rld")},
                         data=b"hello world", timeout=IO_TIMEOUT)  # fmt: skip
    assert bad.status_code == 460
    assert head_offset(location) == 0
    good = requests.patch(location, headers=headers | {"Upload-Checksum": "sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0="},
                          data=b"hello world", timeout=IO_TIMEOUT)  # fmt: skip
    assert (good.status_code, good.headers["Upload-Offset"]) == (204, "11")
    assert server.stored_path(location).read_bytes() == b"hello world"


BIG_CHUNK = 3 * MiB + 7  # past the size from which tusserver's uvicorn splices a body into the file


def declared_sha256(data: bytes) -> dict[str, str]:
    """Upload-Metadata declaring the whole file's sha256 (issue 21's `checksum` key)."""
    value = f"sha256 {base64.b64encode(hashlib.sha256(data).digest()).decode()}"
    return {"Upload-Metadata": "checksum " + base64.b64encode(value.encode()).decode()}


def test_spliced_patches_are_checked_against_their_checksums_and_the_declared_digest(server: ServerProcess) -> None:
    """Bodies that must be hashed keep the kernel's path (`BodyReader.tap`: what a splice moved is hashed from the
    page cache): a wrong Upload-Checksum on a 3 MiB PATCH still gets 460 and leaves the offset (item 62), the right
    ones 204, and the declared digest verifies the file (issue 21's Repr-Digest)."""
    data = os.urandom(2 * BIG_CHUNK)
    location = create_upload(server, len(data), declared_sha256(data))
    first = PATCH_HEADERS | {"Upload-Offset": "0"}
    bad = requests.patch(location, headers=first | {"Upload-Checksum": sha1_header(data[1:BIG_CHUNK + 1])},
                         data=data[:BIG_CHUNK], timeout=IO_TIMEOUT)  # fmt: skip
    assert bad.status_code == 460
    assert head_offset(location) == 0
    for offset in (0, BIG_CHUNK):
        chunk = data[offset : offset + BIG_CHUNK]
        headers = PATCH_HEADERS | {"Upload-Offset": str(offset), "Upload-Checksum": sha1_header(chunk)}
        assert requests.patch(location, headers=headers, data=chunk, timeout=IO_TIMEOUT).status_code == 204
    expected = base64.b64encode(hashlib.sha256(data).digest()).decode()
    assert requests.head(location, headers=TUS, timeout=IO_TIMEOUT).headers["Repr-Digest"] == f"sha-256=:{expected}:"
    assert server.stored_path(location).read_bytes() == data


def test_a_spliced_upload_whose_declared_digest_is_wrong_is_rejected(server: ServerProcess) -> None:
    data = os.urandom(BIG_CHUNK)
    location = create_upload(server, len(data), declared_sha256(b"other bytes"))
    finished = requests.patch(location, headers=PATCH_HEADERS | {"Upload-Offset": "0"}, data=data, timeout=IO_TIMEOUT)
    assert finished.status_code == 403
    assert "ERR_UPLOAD_REJECTED" in finished.text

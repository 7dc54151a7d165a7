"""tuspy (tus-py-client) against the real server: chunked uploads and a resume by a fresh client.

tuspy opens (and never closes) a new file object per request when given `file_path`, which
`filterwarnings = error` turns into failures, so the tests hand it one open `file_stream`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import pytest
import requests
from tusclient.client import TusClient
from tusclient.uploader.uploader import Uploader

from tests.e2e.helpers import IO_TIMEOUT, TUS, KiB, MiB, ServerProcess, random_file, sha256_file

pytestmark = pytest.mark.e2e

CHUNK = 256 * KiB
SIZE = 3 * MiB


def url_of(uploader: Uploader) -> str:
    url: object = uploader.url  # typed as None by tuspy
    assert isinstance(url, str)
    return url


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


def test_tuspy_chunked_upload_stores_exact_bytes(server: ServerProcess, source: Path, stream: BinaryIO) -> None:
    uploader = TusClient(server.url).uploader(file_stream=stream, chunk_size=CHUNK, metadata={"filename": "a.bin"})
    uploader.upload()
    assert sha256_file(server.stored_path(url_of(uploader))) == sha256_file(source)


def test_tuspy_metadata_is_echoed_by_head(server: ServerProcess, stream: BinaryIO) -> None:
    uploader = TusClient(server.url).uploader(file_stream=stream, chunk_size=CHUNK, metadata={"filename": "a.bin"})
    uploader.upload()
    response = requests.head(url_of(uploader), headers=TUS, timeout=IO_TIMEOUT)
    assert "filename YS5iaW4=" in response.headers["Upload-Metadata"].split(",")


def test_tuspy_resume_from_stored_url(server: ServerProcess, source: Path, stream: BinaryIO) -> None:
    first = TusClient(server.url).uploader(file_stream=stream, chunk_size=CHUNK)
    first.upload(stop_at=3 * CHUNK)  # three chunks, then this client goes away
    assert first.offset == 3 * CHUNK
    # A new client that knows only the URL learns the offset with HEAD and sends the rest.
    second = TusClient(server.url).uploader(file_stream=stream, chunk_size=CHUNK, url=url_of(first))
    assert second.offset == 3 * CHUNK
    second.upload()
    assert sha256_file(server.stored_path(url_of(first))) == sha256_file(source)


def test_tuspy_finished_upload_head_shows_offset_equal_to_length(server: ServerProcess, stream: BinaryIO) -> None:
    uploader = TusClient(server.url).uploader(file_stream=stream, chunk_size=CHUNK)
    uploader.upload()
    response = requests.head(url_of(uploader), headers=TUS, timeout=IO_TIMEOUT)
    assert response.status_code == 200
    assert response.headers["Upload-Offset"] == response.headers["Upload-Length"] == str(SIZE)
    assert response.headers["Cache-Control"] == "no-store"

"""Issue 19, defect 2: a crash in the middle of one long PATCH keeps what it had recorded on the way.

tus-js-client and Uppy send a file as one PATCH by default. A real `tusserver` with `--checkpoint-size 1M`
receives such a PATCH, is killed with SIGKILL once it has written several MiB, and starts again: the
recorded offset is at most a checkpoint behind what was written (on S3, which records a part boundary once the
parts before it are stored, at most two parts here), and the client resumes from there byte-exact.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    TUS,
    MiB,
    ServerProcess,
    connect,
    create_upload,
    finish_from_head,
    head_offset,
    launch,
    raw_request,
    send_all,
    stored_size,
    target_of,
    wait_until,
)
from tests.e2e.test_s3_e2e import Bucket, kill_server
from tests.s3_server import aws_environment

pytestmark = pytest.mark.e2e


@dataclass
class Case:
    """A storage, and how much of a PATCH it has durably written (as far as the test can see)."""

    flags: tuple[str, ...]
    env: dict[str, str]
    written: Callable[[ServerProcess, str], int]
    lost_at_most: int  # what a crash may lose of what `written` showed


@pytest.fixture(params=["local", "s3"])
def case(request: pytest.FixtureRequest) -> Iterator[Case]:
    if request.param == "local":
        yield Case((), {}, stored_size, MiB)
        return
    bucket: Bucket = request.getfixturevalue("s3_bucket")

    def written(_: ServerProcess, location: str) -> int:
        return len(bucket.uploaded_parts(location, bucket.multipart_upload_id(location))) * 5 * MiB

    yield Case(bucket.flags("--s3-part-size", "5M"), aws_environment(), written, 10 * MiB)


def start(case: Case, workdir: Path, data_dir: Path) -> ServerProcess:
    flags = ("--server", "uvicorn", "--checkpoint-size", "1M", "--data-dir", str(data_dir), *case.flags)
    server = replace(launch(workdir, *flags, env=case.env), data_dir=data_dir)
    server.wait_ready()
    return server


def recorded(server: ServerProcess, location: str) -> int:
    """The offset the upload's record holds, from the status API (which reads the record without the lock)."""
    api = server.origin + "/api/uploads/" + location.rsplit("/", 1)[1]
    response = requests.get(api, timeout=IO_TIMEOUT)
    assert response.status_code == 200, response.text
    return int(response.json()["offset"])


def test_crash_mid_patch_keeps_the_recorded_progress(case: Case, tmp_path: Path) -> None:
    data = os.urandom(24 * MiB)
    server = start(case, tmp_path / "first", tmp_path / "data")
    try:
        location = create_upload(server, len(data))
        with connect(server) as sock:
            head = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": str(len(data))}
            send_all(sock, raw_request("PATCH", target_of(location), head) + data[: 18 * MiB])
            wait_until(lambda: case.written(server, location) >= 15 * MiB, what="15 MiB written", timeout=20)
            written = case.written(server, location)
            # S3 records a part boundary in the background, once the parts before it are stored: with the body
            # read fast, the parts can all be stored before that record lands. The kill waits for it.
            wait_until(lambda: recorded(server, location) >= written - case.lost_at_most, what="the record")
            before = recorded(server, location)
            kill_server(server)
    finally:
        server.stop()
    again = start(case, tmp_path / "again", tmp_path / "data")
    try:
        on_again = again.url + location.rsplit("/", 1)[1]
        assert head_offset(on_again) >= before >= written - case.lost_at_most
        finish_from_head(on_again, data)
        assert requests.get(on_again, headers=TUS, timeout=IO_TIMEOUT).content == data
    finally:
        again.stop()

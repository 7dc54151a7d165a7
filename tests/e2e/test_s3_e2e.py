"""`tusserver --storage s3` against a real S3 server (SeaweedFS): real clients, a SIGKILL mid-PATCH,
a missing bucket at start-up, and bounded memory for a 1 GiB PATCH.

Every test gets a fresh key prefix in the session's bucket, and reads what the server stored straight from
the bucket with boto3 (`<prefix><upload id>`), not only through the server.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import boto3
import psutil
import pytest
import requests
import xxhash
from tusclient.client import TusClient

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    STOP_TIMEOUT,
    GiB,
    KiB,
    MiB,
    RssSampler,
    ServerProcess,
    StartServer,
    clean_environ,
    connect,
    create_upload,
    head_offset,
    patch,
    peak_rss_hwm,
    random_file,
    raw_request,
    read_response,
    server_command,
    target_of,
    tool,
    upload_id,
    wait_until,
)
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, SeaweedS3, aws_environment, client_config

if TYPE_CHECKING:
    from types_boto3_s3 import S3Client

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
PART = 5 * MiB  # S3's smallest part size: a few MiB cross several part boundaries
SIZE = 12 * MiB + 12_345  # not a multiple of the part size or of any chunk size used here
TRANSFER_TIMEOUT = 60.0
# The memory test: the budget, and what the server may use beyond it (the limit of test_memory.py).
BUFFER_BUDGET = 64 * MiB
RSS_OVERHEAD = 150 * MiB


# --- the bucket ----------------------------------------------------------------------------------------------------


class Bucket:
    """The session's SeaweedFS bucket seen through a fresh key prefix, and the flags that point a server at it."""

    def __init__(self, seaweedfs: SeaweedS3, name: str) -> None:
        self.endpoint, self.name, self.prefix = seaweedfs.endpoint, name, f"e2e-{uuid.uuid4().hex}/"
        self.client: S3Client = boto3.client(
            "s3", endpoint_url=self.endpoint, region_name=REGION, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, config=client_config(),
        )  # fmt: skip

    def flags(self, *extra: str) -> tuple[str, ...]:
        return ("--storage", "s3", "--s3-bucket", self.name, "--s3-endpoint", self.endpoint,
                "--s3-prefix", self.prefix, "--s3-region", REGION, *extra)  # fmt: skip

    def key(self, location: str) -> str:
        """The object key of the upload at `location`."""
        return self.prefix + upload_id(location)

    def keys(self) -> list[str]:
        listing = self.client.list_objects_v2(Bucket=self.name, Prefix=self.prefix)
        return sorted(item["Key"] for item in listing.get("Contents", []))

    def read(self, location: str) -> bytes:
        body = self.client.get_object(Bucket=self.name, Key=self.key(location))["Body"]
        try:
            return body.read()
        finally:
            body.close()

    def xxh128(self, location: str) -> tuple[int, str]:
        """The size and xxh128 of the object, streamed (it may be large)."""
        body = self.client.get_object(Bucket=self.name, Key=self.key(location))["Body"]
        digest, size = xxhash.xxh128(), 0
        try:
            for piece in body.iter_chunks(MiB):
                digest.update(piece)
                size += len(piece)
        finally:
            body.close()
        return size, digest.hexdigest()

    def empty(self) -> None:
        """Delete every object and multipart upload under the prefix (the session's SeaweedFS stays small)."""
        uploads = self.client.list_multipart_uploads(Bucket=self.name, Prefix=self.prefix).get("Uploads", [])
        for upload in uploads:
            self.client.abort_multipart_upload(Bucket=self.name, Key=upload["Key"], UploadId=upload["UploadId"])
        if keys := self.keys():
            self.client.delete_objects(Bucket=self.name, Delete={"Objects": [{"Key": key} for key in keys]})

    def multipart_upload_id(self, location: str) -> str:
        """The id of the S3 multipart upload the server started for the tus upload at `location`."""
        key = self.key(location)
        listing = self.client.list_multipart_uploads(Bucket=self.name, Prefix=key)
        ids = [upload["UploadId"] for upload in listing.get("Uploads", []) if upload["Key"] == key]
        assert len(ids) == 1, listing
        return ids[0]

    def uploaded_parts(self, location: str, multipart_id: str) -> list[int]:
        listing = self.client.list_parts(Bucket=self.name, Key=self.key(location), UploadId=multipart_id)
        return [part["PartNumber"] for part in listing.get("Parts", [])]


@pytest.fixture
def bucket(seaweedfs: SeaweedS3, seaweedfs_bucket: str) -> Iterator[Bucket]:
    bucket = Bucket(seaweedfs, seaweedfs_bucket)
    yield bucket
    try:
        bucket.empty()
    finally:
        bucket.client.close()


@pytest.fixture
def start_s3_server(start_server: StartServer, bucket: Bucket) -> StartServer:
    """`start_server` with the S3 flags for `bucket` and the AWS credentials of the test servers."""

    def start(*args: str, **kwargs: Any) -> ServerProcess:
        return start_server(*bucket.flags(*args), env=aws_environment(), **kwargs)

    return start


# --- helpers -------------------------------------------------------------------------------------------------------


def get_through_server(location: str) -> bytes:
    response = requests.get(location, timeout=IO_TIMEOUT)
    assert response.status_code == 200, response.text
    return response.content


def kill_server(server: ServerProcess) -> None:
    """SIGKILL the server and its workers (granian serves from a child process): a crash, nothing runs after."""
    root = psutil.Process(server.pid)
    workers = root.children(recursive=True)
    root.kill()  # first, so it cannot start a new worker
    for worker in workers:
        worker.kill()
    server.process.wait(STOP_TIMEOUT)
    psutil.wait_procs(workers, timeout=STOP_TIMEOUT)


def run_node(endpoint: str, source: Path, chunk: int, mode: str, *upload_url: str) -> dict[str, Any]:
    """Run js/upload.mjs (tus-js-client); returns its JSON report (see the script's header)."""
    assert (JS_DIR / "node_modules" / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    command = [tool("node"), "upload.mjs", endpoint, str(source), str(chunk), mode, *upload_url]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"node exited with {done.returncode}:\n{done.stdout}\n{done.stderr}"
    report: dict[str, Any] = json.loads(done.stdout)
    return report


# --- 1. tuspy ------------------------------------------------------------------------------------------------------


def test_tuspy_upload_is_one_byte_exact_object_in_the_bucket(
    start_s3_server: StartServer, bucket: Bucket, tmp_path: Path
) -> None:
    server = start_s3_server("--s3-part-size", "5M")
    source = random_file(tmp_path / "source.bin", SIZE)
    with source.open("rb") as stream:
        # Chunks of 5 MiB + 3: every PATCH after the first starts inside a part and ends inside another.
        uploader = TusClient(server.url).uploader(file_stream=stream, chunk_size=PART + 3)
        uploader.upload()
    location: object = uploader.url  # typed as None by tuspy
    assert isinstance(location, str)
    data = source.read_bytes()
    assert bucket.read(location) == data
    assert bucket.keys() == [bucket.key(location)]  # the tail objects are gone, only the object is left
    assert get_through_server(location) == data


# --- 2. tus-js-client ----------------------------------------------------------------------------------------------


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_tus_js_client_resumes_an_aborted_upload_into_one_object(
    start_s3_server: StartServer, bucket: Bucket, tmp_path: Path
) -> None:
    server = start_s3_server("--s3-part-size", "5M")
    source = random_file(tmp_path / "source.bin", SIZE)
    chunk = 3 * MiB + 1
    aborted = run_node(server.url, source, chunk, "interrupt")
    assert aborted["aborted"]
    assert aborted["acknowledged"] >= chunk
    resumed = run_node(server.url, source, chunk, "resume", aborted["url"])
    assert resumed["done"]
    head, first_patch = resumed["requests"][:2]
    assert (head["method"], head["status"]) == ("HEAD", 200)
    assert first_patch["method"] == "PATCH"
    assert first_patch["offset"] == head["responseOffset"]
    assert int(first_patch["offset"]) >= aborted["acknowledged"]
    data = source.read_bytes()
    assert bucket.read(aborted["url"]) == data
    assert get_through_server(aborted["url"]) == data


# --- 3. SIGKILL between part upload and state save -----------------------------------------------------------------


def test_sigkill_after_a_part_upload_loses_nothing_acknowledged(
    start_s3_server: StartServer, bucket: Bucket, tmp_path: Path
) -> None:
    """A PATCH has uploaded parts to S3 but not finished (its body is still coming) when the server is killed.

    The restarted server (same SQLite state, same bucket and prefix) reports the last acknowledged offset,
    and the rest sent from there completes a byte-exact object, although parts 1 and 2 were uploaded twice.
    """
    first = start_s3_server("--s3-part-size", "5M")
    data = os.urandom(40 * MiB)
    location = create_upload(first, len(data))
    acknowledged = MiB + 7  # inside part 1: its bytes are in the tail object of part 1
    response = patch(location, 0, data[:acknowledged])
    assert (response.status_code, response.headers["Upload-Offset"]) == (204, str(acknowledged))
    multipart_id = bucket.multipart_upload_id(location)

    headers = PATCH_HEADERS | {"Upload-Offset": str(acknowledged), "Content-Length": str(len(data) - acknowledged)}
    sent_until = acknowledged + 2 * PART + 100 * KiB  # fills parts 1 and 2, then the body stalls
    with connect(first) as sock:
        sock.sendall(raw_request("PATCH", target_of(location), headers))
        for start in range(acknowledged, sent_until, 256 * KiB):
            sock.sendall(data[start : min(start + 256 * KiB, sent_until)])
        wait_until(
            lambda: {1, 2} <= set(bucket.uploaded_parts(location, multipart_id)),
            what="parts 1 and 2 of the stalled PATCH in S3",
            timeout=IO_TIMEOUT,
            interval=0.02,
        )
        # The body is not complete, so the PATCH cannot have finished: kill before the state is saved.
        kill_server(first)

    second = start_s3_server("--s3-part-size", "5M", "--data-dir", str(first.data_dir))
    resumed = second.url + upload_id(location)
    offset = head_offset(resumed)
    assert offset == acknowledged, f"HEAD after the crash: {offset}, last acknowledged {acknowledged}"
    headers = PATCH_HEADERS | {"Upload-Offset": str(offset)}
    response = requests.patch(resumed, headers=headers, data=data[offset:], timeout=TRANSFER_TIMEOUT)
    assert (response.status_code, response.headers.get("Upload-Offset")) == (204, str(len(data))), response.text
    assert bucket.read(location) == data
    assert get_through_server(resumed) == data


# --- 4. a missing bucket -------------------------------------------------------------------------------------------


def test_missing_bucket_fails_start_up_with_one_line_naming_it(seaweedfs: SeaweedS3, tmp_path: Path) -> None:
    missing = f"does-not-exist-{uuid.uuid4().hex[:12]}"
    command = [*server_command(), "--storage", "s3", "--s3-bucket", missing, "--s3-endpoint", seaweedfs.endpoint,
               "--s3-region", REGION, "--data-dir", str(tmp_path / "data"), "--port", "0"]  # fmt: skip
    started = time.monotonic()
    done = subprocess.run(
        command, capture_output=True, text=True, timeout=30, env=clean_environ(aws_environment()), check=False
    )
    elapsed = time.monotonic() - started
    assert done.returncode != 0
    assert elapsed < 10, f"took {elapsed:.1f} s to give up"
    assert "Traceback" not in done.stderr
    naming = [line for line in done.stderr.splitlines() if missing in line]
    assert naming == [f"tusserver: the S3 bucket {missing!r} does not exist"], done.stderr
    assert done.stderr.rstrip("\n").splitlines()[-1] == naming[0]  # the last thing it says


# --- 5. memory -----------------------------------------------------------------------------------------------------


def patterned_chunks(size: int) -> Iterator[bytes]:
    """`size` bytes in 1 MiB chunks, each different (its index in front of one random MiB), generated on the fly."""
    base = os.urandom(MiB)
    for index, start in enumerate(range(0, size, MiB)):
        yield (index.to_bytes(8, "big") + base[8:])[: size - start]


def stream_patch(server: ServerProcess, location: str, size: int) -> str:
    """One PATCH of `size` generated bytes over a raw socket, answered 204; returns the bytes' xxh128."""
    digest = xxhash.xxh128()
    headers = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": str(size)}
    with connect(server) as sock:
        sock.settimeout(TRANSFER_TIMEOUT)
        sock.sendall(raw_request("PATCH", target_of(location), headers))
        for chunk in patterned_chunks(size):
            digest.update(chunk)
            sock.sendall(chunk)
        response = read_response(sock)
    assert response is not None, "the server closed the connection without an answer"
    assert response.status == 204, response
    return digest.hexdigest()


def check_peak_rss(sampler: RssSampler, pid: int, limit: int) -> None:
    peaks = {"sampled": sampler.peak, "kernel (VmHWM)": peak_rss_hwm(pid)}  # VmHWM: between samples too
    shown = ", ".join(f"{name} {peak / MiB:.0f} MiB" for name, peak in peaks.items())
    assert all(peak < limit for peak in peaks.values()), f"peak RSS over {limit / MiB:.0f} MiB: {shown}"


def one_patch_within_budget(start_s3_server: StartServer, bucket: Bucket, size: int, part_size: str) -> None:
    """PATCH `size` bytes at once to a server with a 64 MiB buffer budget: stored exactly, peak RSS under the
    budget plus the 150 MiB test_memory.py allows the local storage (the RSS is checked last)."""
    server = start_s3_server("--buffer-budget", "64M", "--s3-part-size", part_size)
    location = create_upload(server, size)
    with RssSampler(server.pid) as sampler:
        sent = stream_patch(server, location, size)
    assert sampler.samples > 10
    assert head_offset(location) == size
    assert bucket.xxh128(location) == (size, sent)
    check_peak_rss(sampler, server.pid, BUFFER_BUDGET + RSS_OVERHEAD)


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_one_gib_patch_keeps_server_rss_bounded(start_s3_server: StartServer, bucket: Bucket) -> None:
    """The default 8 MiB parts: 4 uploading and 1 filling hold 40 MiB, so the 64 MiB budget never binds here."""
    one_patch_within_budget(start_s3_server, bucket, GiB, "8M")


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_buffer_budget_bounds_server_rss_when_it_binds(start_s3_server: StartServer, bucket: Bucket) -> None:
    """32 MiB parts: 4 uploading and 1 filling would hold 160 MiB, so the 64 MiB budget (2 parts) must bind."""
    one_patch_within_budget(start_s3_server, bucket, 512 * MiB, "32M")

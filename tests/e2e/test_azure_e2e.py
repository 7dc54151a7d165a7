"""`tusserver --storage azure` against Azurite, as a new user runs it (README "Azure Blob storage"): tuspy and
tus-js-client (with `parallelUploads`) upload and resume, a SIGKILL between staging a block and saving the
state, a GET with a Range, a missing container at start-up, and bounded memory for a 1 GiB PATCH.

Every test gets a fresh blob name prefix in the session's container, and reads what the server stored straight
from Azurite with the SDK (`<prefix><upload id>`), not only through the server.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
import xxhash
from azure.core.exceptions import ResourceNotFoundError
from azure.storage.blob import BlobServiceClient, ContainerClient
from tusclient.client import TusClient

from tests.azure_server import Azurite
from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
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
    random_file,
    raw_request,
    server_command,
    target_of,
    tool,
    upload_id,
    wait_until,
)
from tests.e2e.test_s3_e2e import check_peak_rss, kill_server, run_node, stream_patch
from tests.server_process import free_ports

pytestmark = pytest.mark.e2e

JS_DIR = Path(__file__).with_name("js")
BLOCK = MiB  # the smallest block size the CLI takes: a few MiB cross several block boundaries
SIZE = 6 * MiB + 12_345
TRANSFER_TIMEOUT = 60.0
BUFFER_BUDGET = 64 * MiB
RSS_OVERHEAD = 150 * MiB  # what test_memory.py allows the local storage beyond the budget


class Container:
    """The session's Azurite container seen through a fresh blob name prefix, and the flags that point a server
    at it: the README's command."""

    def __init__(self, azurite: Azurite, name: str) -> None:
        self.azurite, self.name, self.prefix = azurite, name, f"e2e-{uuid.uuid4().hex}/"
        self.service = BlobServiceClient.from_connection_string(azurite.connection_string)
        self.client: ContainerClient = self.service.get_container_client(name)

    def flags(self, *extra: str) -> tuple[str, ...]:
        return ("--storage", "azure", "--azure-connection-string", self.azurite.connection_string,
                "--azure-container", self.name, "--azure-prefix", self.prefix, *extra)  # fmt: skip

    def name_of(self, location: str) -> str:
        return self.prefix + upload_id(location)

    def names(self, *, uncommitted: bool = False) -> list[str]:
        """The blobs under the prefix; with `uncommitted`, also those that have only uncommitted blocks."""
        include = ["uncommittedblobs"] if uncommitted else None
        return sorted(blob.name for blob in self.client.list_blobs(name_starts_with=self.prefix, include=include))

    def read(self, location: str) -> bytes:
        return self.client.download_blob(self.name_of(location)).readall()

    def content_settings(self, location: str) -> tuple[str | None, str | None]:
        settings = self.client.get_blob_client(self.name_of(location)).get_blob_properties().content_settings
        return settings.content_type, settings.content_disposition

    def xxh128(self, location: str) -> tuple[int, str]:
        digest, size = xxhash.xxh128(), 0
        for piece in self.client.download_blob(self.name_of(location)).chunks():
            digest.update(piece)
            size += len(piece)
        return size, digest.hexdigest()

    def uncommitted(self, location: str) -> int:
        try:
            _, uncommitted = self.client.get_blob_client(self.name_of(location)).get_block_list("uncommitted")
        except ResourceNotFoundError:  # no blob and no block yet
            return 0
        return len(uncommitted)

    def empty(self) -> None:
        for name in self.names(uncommitted=True):
            self.client.get_blob_client(name).commit_block_list([])  # drops uncommitted blocks
            self.client.delete_blob(name)


@pytest.fixture
def container(azurite: Azurite, azurite_container: str) -> Iterator[Container]:
    container = Container(azurite, azurite_container)
    yield container
    try:
        container.empty()
    finally:
        container.service.close()


@pytest.fixture
def start_azure_server(start_server: StartServer, container: Container) -> StartServer:
    def start(*args: str, **kwargs: Any) -> ServerProcess:
        return start_server(*container.flags(*args), **kwargs)

    return start


def get_through_server(location: str, headers: dict[str, str] | None = None) -> requests.Response:
    response = requests.get(location, headers=headers, timeout=IO_TIMEOUT)
    assert response.status_code in {200, 206}, response.text
    return response


# --- 1. tuspy, and a GET with a Range ------------------------------------------------------------------------------


def test_tuspy_upload_is_one_byte_exact_blob_with_its_content_type(
    start_azure_server: StartServer, container: Container, tmp_path: Path
) -> None:
    server = start_azure_server("--azure-block-size", "1M")
    source = random_file(tmp_path / "source.bin", SIZE)
    with source.open("rb") as stream:
        # Chunks of a block + 3: every PATCH after the first starts inside a block and ends inside another.
        metadata = {"filename": "scan.tif", "filetype": "image/tiff"}
        uploader = TusClient(server.url).uploader(file_stream=stream, chunk_size=BLOCK + 3, metadata=metadata)
        uploader.upload()
    location: object = uploader.url  # typed as None by tuspy
    assert isinstance(location, str)
    data = source.read_bytes()
    assert container.read(location) == data
    assert container.content_settings(location) == ("image/tiff", 'attachment; filename="scan.tif"; '
                                                                   "filename*=UTF-8''scan.tif")  # fmt: skip
    assert container.names() == [container.name_of(location)]  # the tails are gone, only the blob is left
    ranged = get_through_server(location, {"Range": "bytes=1048570-2097160"})
    assert (ranged.status_code, ranged.content) == (206, data[1048570:2097161])


def test_mixed_patch_sizes_read_straight_into_blocks_are_byte_exact(
    start_azure_server: StartServer, container: Container
) -> None:
    """Bodies of 1 MiB and more are read from the socket straight into the block buffers (`read_into`), smaller
    ones come in pieces: sizes around a block, mixed in one upload, each PATCH starting where the last ended."""
    server = start_azure_server("--azure-block-size", "1M")
    sizes = [1, BLOCK - 1, BLOCK, BLOCK + 1, 7, 3 * BLOCK + 5, BLOCK]
    data = os.urandom(sum(sizes))
    location, offset = create_upload(server, len(data)), 0
    for size in sizes:
        response = patch(location, offset, data[offset : offset + size])
        assert response.status_code == 204, response.text
        offset += size
        assert response.headers["Upload-Offset"] == str(offset)
    assert container.read(location) == data


# --- 1b. the README's "try it on your machine", as written ----------------------------------------------------


README = Path(__file__).parents[2] / "README.md"
PINNED = json.loads((Path(__file__).parents[1] / "azurite" / "package.json").read_text())["dependencies"]["azurite"]


def readme_try_it() -> list[str]:
    """The lines of README "Azure Blob storage"'s snippet that runs tusserver on Azurite."""
    section = README.read_text().split("\n## Azure Blob storage\n", 1)[1].split("\n## ", 1)[0]
    blocks: list[str] = re.findall(r"```sh\n(.*?)```", section, re.DOTALL)
    (snippet,) = [block for block in blocks if "AZURITE=" in block]
    return snippet.strip().splitlines()


def test_readme_azurite_snippet_runs_as_written(azurite: Azurite, tmp_path: Path) -> None:
    """The README's commands, run by bash (Azurite is the session's, on its own port instead of 10000, which
    the README's `npx` line would start with the same pinned version and flags): create the container, start
    the server; then tuspy uploads a file, and the blob holds it."""
    start_azurite, *commands = readme_try_it()
    assert f"azurite@{PINNED}" in start_azurite
    assert {"--inMemoryPersistence", "--skipApiVersionCheck"} <= set(start_azurite.split())
    assert commands[-1].startswith("tusserver ")
    port = free_ports(1)[0]
    script = "\n".join(["set -e", *commands[:-1], f"exec {commands[-1]} --port {port} --data-dir {tmp_path}/data"])
    script = script.replace("127.0.0.1:10000", f"127.0.0.1:{azurite.port}")
    environ = clean_environ({"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    with (tmp_path / "server.log").open("wb") as log:
        process = subprocess.Popen(["bash", "-c", script], stdout=log, stderr=subprocess.STDOUT, env=environ)
    server = ServerProcess(process, port, "/files/", tmp_path / "data", tmp_path / "server.log")
    try:
        server.wait_ready()
        source = random_file(tmp_path / "source.bin", SIZE)
        with source.open("rb") as stream:
            uploader = TusClient(server.url).uploader(file_stream=stream, chunk_size=4 * MiB)
            uploader.upload()
        location: object = uploader.url
        assert isinstance(location, str)
        with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
            assert service.get_blob_client("tus", upload_id(location)).download_blob().readall() == source.read_bytes()
    finally:
        assert server.stop() == 0


# --- 2. tus-js-client: resume, and parallelUploads -----------------------------------------------------------------


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_tus_js_client_resumes_an_aborted_upload_into_one_blob(
    start_azure_server: StartServer, container: Container, tmp_path: Path
) -> None:
    server = start_azure_server("--azure-block-size", "1M")
    source = random_file(tmp_path / "source.bin", SIZE)
    chunk = 2 * MiB + 1
    aborted = run_node(server.url, source, chunk, "interrupt")
    assert aborted["aborted"]
    resumed = run_node(server.url, source, chunk, "resume", aborted["url"])
    assert resumed["done"]
    head, first_patch = resumed["requests"][:2]
    assert (head["method"], head["status"], first_patch["offset"]) == ("HEAD", 200, head["responseOffset"])
    assert container.read(aborted["url"]) == source.read_bytes()
    assert container.content_settings(aborted["url"])[0] == "application/octet-stream"


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_tus_js_client_parallel_uploads_are_joined_inside_azure(
    start_azure_server: StartServer, container: Container, tmp_path: Path
) -> None:
    """Four partials at once, then the final: joined with Put Block From URL; the final blob is byte-exact and
    named after the file (non-ASCII names go in `filename*`)."""
    server = start_azure_server("--azure-block-size", "1M")
    source = random_file(tmp_path / "données.bin", 9 * MiB + 7)
    command = [tool("node"), "parallel.mjs", server.url, str(source), "4"]
    done = subprocess.run(command, cwd=JS_DIR, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout)
    data = source.read_bytes()
    assert hashlib.sha256(container.read(report["url"])).digest() == hashlib.sha256(data).digest()
    disposition = container.content_settings(report["url"])[1]
    assert disposition == "attachment; filename=\"donn_es.bin\"; filename*=UTF-8''donn%C3%A9es.bin"
    assert get_through_server(report["url"]).content == data


# --- 3. SIGKILL between staging a block and saving the state ------------------------------------------------------


def test_sigkill_after_a_block_is_staged_loses_nothing_acknowledged(
    start_azure_server: StartServer, container: Container
) -> None:
    """A PATCH has staged blocks in Azure but not finished (its body is still coming) when the server is killed.
    The restarted server (same state, same container and prefix) reports the last acknowledged offset, and the
    rest sent from there completes a byte-exact blob, although blocks 0 and 1 were staged twice."""
    first = start_azure_server("--azure-block-size", "1M")
    data = random_file_bytes(12 * MiB)
    location = create_upload(first, len(data))
    acknowledged = 300 * KiB + 7  # inside block 0: its bytes are in the tail
    response = patch(location, 0, data[:acknowledged])
    assert (response.status_code, response.headers["Upload-Offset"]) == (204, str(acknowledged))

    headers = PATCH_HEADERS | {"Upload-Offset": str(acknowledged), "Content-Length": str(len(data) - acknowledged)}
    sent_until = acknowledged + 2 * BLOCK + 100 * KiB  # fills blocks 0 and 1, then the body stalls
    with connect(first) as sock:
        sock.sendall(raw_request("PATCH", target_of(location), headers))
        for start in range(acknowledged, sent_until, 256 * KiB):
            sock.sendall(data[start : min(start + 256 * KiB, sent_until)])
        wait_until(lambda: container.uncommitted(location) >= 2, what="blocks 0 and 1 staged", timeout=IO_TIMEOUT)
        kill_server(first)  # the body is not complete, so the PATCH cannot have saved its end

    second = start_azure_server("--azure-block-size", "1M", "--data-dir", str(first.data_dir))
    resumed = second.url + upload_id(location)
    offset = head_offset(resumed)
    assert offset == acknowledged, f"HEAD after the crash: {offset}, last acknowledged {acknowledged}"
    response = requests.patch(
        resumed, headers=PATCH_HEADERS | {"Upload-Offset": str(offset)}, data=data[offset:], timeout=TRANSFER_TIMEOUT
    )
    assert (response.status_code, response.headers.get("Upload-Offset")) == (204, str(len(data))), response.text
    assert container.read(location) == data


def random_file_bytes(size: int) -> bytes:
    return hashlib.shake_256(str(size).encode()).digest(size)


# --- 4. start-up checks --------------------------------------------------------------------------------------------


def start_up_failure(*flags: str) -> str:
    """Run `tusserver` with `flags`, which must stop it within 10 s; its last line (no traceback)."""
    started = time.monotonic()
    command = [*server_command(), *flags, "--port", "0"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=clean_environ(), check=False)
    assert done.returncode != 0
    assert time.monotonic() - started < 10
    assert "Traceback" not in done.stderr
    return done.stderr.rstrip("\n").splitlines()[-1]


def test_missing_container_fails_start_up_with_one_line_naming_it(azurite: Azurite, tmp_path: Path) -> None:
    missing = f"missing-{uuid.uuid4().hex[:12]}"
    line = start_up_failure("--storage", "azure", "--azure-connection-string", azurite.connection_string,
                            "--azure-container", missing, "--data-dir", str(tmp_path / "data"))  # fmt: skip
    assert line == f"tusserver: the Azure container {missing!r} does not exist"


def test_bad_account_key_fails_start_up_naming_the_credentials(
    azurite: Azurite, azurite_container: str, tmp_path: Path
) -> None:
    wrong_key = base64.b64encode(b"not the account key").decode()
    line = start_up_failure("--storage", "azure", "--azure-account-url", azurite.account_url,
                            "--azure-account-key", wrong_key, "--azure-container", azurite_container,
                            "--data-dir", str(tmp_path / "data"))  # fmt: skip
    assert line.startswith(f"tusserver: cannot use the Azure container {azurite_container!r} (check the credentials)")


def test_expiration_past_a_week_is_refused_at_start_up(azurite: Azurite, tmp_path: Path) -> None:
    line = start_up_failure("--storage", "azure", "--azure-connection-string", azurite.connection_string,
                            "--azure-container", "tus", "--expiration", "8d")  # fmt: skip
    assert "--expiration of at most 7d" in line


# --- 5. memory -----------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_one_gib_patch_keeps_server_rss_bounded(start_azure_server: StartServer, container: Container) -> None:
    """8 MiB blocks, 4 staging and 1 filling: 40 MiB of buffers under a 64 MiB budget; peak RSS under the budget
    plus 150 MiB. (bench/azure_blob.py measures a 5 GiB PATCH the same way: BENCHMARKS.md.)"""
    server = start_azure_server("--buffer-budget", "64M", "--azure-block-size", "8M")
    location = create_upload(server, GiB)
    with RssSampler(server.pid) as sampler:
        sent = stream_patch(server, location, GiB)
    assert sampler.samples > 10
    assert head_offset(location) == GiB
    assert container.xxh128(location) == (GiB, sent)
    check_peak_rss(sampler, server.pid, BUFFER_BUDGET + RSS_OVERHEAD)

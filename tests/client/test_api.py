"""The Python API, sync and async, against a real tusserver process: results, progress, resume, failures."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.client.conftest import MakeProxy
from tests.client.proxy import Injection
from tests.e2e.helpers import ServerProcess, launch, random_file
from tusserver.client import (
    AsyncTusClient,
    BatchError,
    CapabilityError,
    ResumeStore,
    TransferError,
    TransferOptions,
    TusClient,
    collect,
)

MiB = 1024 * 1024


def test_sync_client_uploads_and_downloads_with_progress(tus_server: ServerProcess, tmp_path: Path) -> None:
    source = random_file(tmp_path / "sample.bin", 5 * MiB)
    seen: list[tuple[Path, int, int]] = []
    options = TransferOptions(chunk_size=2 * MiB, checksum="xxh3", digest="sha256")
    with TusClient(
        options, store=ResumeStore(tmp_path / "store.sqlite3"), progress=lambda *args: seen.append(args)
    ) as client:
        result = client.upload(source, tus_server.url)
        assert result.digest is not None
        assert result.digest.startswith("sha256 ")
        assert (result.name, result.length, result.resumed) == ("sample.bin", 5 * MiB, False)
        again = client.upload(source, tus_server.url)  # the store knows it: done already
        assert (again.url, again.resumed) == (result.url, True)
        downloaded = client.download(result.url, tmp_path / "back.bin")
    assert downloaded.digest == result.digest  # the declared digest was checked
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()
    uploads = [entry for entry in seen if entry[0] == source]
    assert uploads[-1] == (source, 5 * MiB, 5 * MiB)
    assert [count for _, count, _ in uploads] == sorted(count for _, count, _ in uploads)


@pytest.mark.anyio
async def test_async_client_uploads_a_tree_and_reports_each_failure(
    tus_server: ServerProcess, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    tree = tmp_path / "tree"
    (tree / "a").mkdir(parents=True)
    for index in range(5):
        random_file(tree / "a" / f"{index}.dat", 1000 + index)
    proxy = make_proxy(tus_server.origin)
    proxy.inject(Injection("POST", 403))  # one creation is refused for good
    async with AsyncTusClient(TransferOptions(parallel=3)) as client:
        with pytest.raises(BatchError) as caught:
            await client.upload_all(collect([tree]), proxy.origin + "/files/")
    failed = caught.value.failures
    assert len(failed) == 1
    assert isinstance(failed[0][1], TransferError)
    assert failed[0][1].status == 403
    assert sorted(result.name for result in caught.value.results) == sorted(
        f"tree/a/{index}.dat" for index in range(5) if tree / "a" / f"{index}.dat" != failed[0][0]
    )


@pytest.fixture
def start_tusserver(tmp_path: Path) -> Iterator[ServerProcess]:
    server = launch(tmp_path / "small", "--server", "uvicorn", "--max-size", "1K")
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


@pytest.mark.anyio
async def test_a_file_over_the_servers_max_size_is_refused_before_sending(
    start_tusserver: ServerProcess, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "huge.bin", 2048)
    async with AsyncTusClient() as client:
        with pytest.raises(CapabilityError, match=r"larger than the server accepts \(1024 bytes\)"):
            await client.upload(source, start_tusserver.url)


def test_options_are_checked() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'md4'"):
        TransferOptions(checksum="md4")
    with pytest.raises(ValueError, match="parallel"):
        TransferOptions(parallel=0)

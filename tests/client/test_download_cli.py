"""`tusserver download` against a real tusserver process: Range resume, the ETag check, the digest check."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import requests

from tests.client.conftest import MakeProxy, RunCli, StartCli
from tests.e2e.helpers import TUS, ServerProcess, random_file, wait_until
from tusserver.client import ResumeStore, TransferOptions, TusClient
from tusserver.client.downloads import download_key
from tusserver.client.protocol import encode_metadata
from tusserver.client.store import DownloadRecord

MiB = 1024 * 1024


def uploaded(server: ServerProcess, path: Path, **options: object) -> str:
    with TusClient(TransferOptions(**options)) as client:  # type: ignore[arg-type]
        return client.upload(path, server.url).url


def test_an_interrupted_download_resumes_with_range_and_if_range(
    tus_server: ServerProcess, start_cli: StartCli, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "genome.bin", 12 * MiB)
    upload_id = uploaded(tus_server, source).rsplit("/", 1)[-1]
    proxy = make_proxy(tus_server.origin)
    proxy.throttle(8 * MiB)
    url = f"{proxy.origin}/files/{upload_id}"
    partial = tmp_path / "copy.bin.part"
    process = start_cli("download", url, tmp_path / "copy.bin")
    wait_until(lambda: partial.exists() and partial.stat().st_size >= 3 * MiB, what="3 MiB downloaded", timeout=20)
    process.kill()
    process.communicate(timeout=10)
    proxy.throttle(None)
    kept = partial.stat().st_size
    count = len(proxy.seen)
    done = run_cli("download", url, tmp_path / "copy.bin")
    assert done.returncode == 0, done.stderr
    assert done.stdout == f"{tmp_path / 'copy.bin'}\n"
    assert done.stderr == ""  # a digest was declared and matched: nothing to warn about
    (get,) = [seen for seen in proxy.seen[count:] if seen.method == "GET"]
    etag = (
        requests.head(url, timeout=10).headers.get("etag") or requests.get(url, stream=True, timeout=10).headers["etag"]
    )
    assert get.headers["range"] == f"bytes={kept}-"
    assert get.headers["if-range"] == etag
    assert get.status == 206
    assert (tmp_path / "copy.bin").read_bytes() == source.read_bytes()
    assert not partial.exists()


def test_a_changed_etag_starts_the_download_over(
    tus_server: ServerProcess, start_cli: StartCli, run_cli: RunCli, make_proxy: MakeProxy, store: Path, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "data.bin", 8 * MiB)
    upload_id = uploaded(tus_server, source).rsplit("/", 1)[-1]
    proxy = make_proxy(tus_server.origin)
    proxy.throttle(8 * MiB)
    url = f"{proxy.origin}/files/{upload_id}"
    partial = tmp_path / "data.bin.part"
    process = start_cli("download", url, tmp_path / "data.bin")
    wait_until(lambda: partial.exists() and partial.stat().st_size >= MiB, what="1 MiB downloaded", timeout=20)
    process.kill()
    process.communicate(timeout=10)
    proxy.throttle(None)
    with sqlite3.connect(store) as database:  # as if the upload had been replaced since: another ETag
        database.execute("""UPDATE entries SET value = json_set(value, '$.etag', '"other"')""")
    count = len(proxy.seen)
    done = run_cli("download", url, tmp_path / "data.bin")
    assert done.returncode == 0, done.stderr
    (get,) = [seen for seen in proxy.seen[count:] if seen.method == "GET"]
    assert get.headers["if-range"] == '"other"'
    assert get.status == 200  # RFC 9110 §13.1.5: the whole file, since the validator did not match
    assert (tmp_path / "data.bin").read_bytes() == source.read_bytes()


def test_a_download_is_named_after_the_upload_and_unfinished_ones_are_refused(
    tus_server: ServerProcess, run_cli: RunCli, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "named.fastq", MiB)
    url = uploaded(tus_server, source)
    (tmp_path / "into").mkdir()
    done = run_cli("download", url, "into")
    assert (done.returncode, done.stdout) == (0, "into/named.fastq\n"), done.stderr
    assert (tmp_path / "into" / "named.fastq").read_bytes() == source.read_bytes()
    metadata = {"Upload-Metadata": encode_metadata({"filename": "half.bin"})}
    created = requests.post(tus_server.url, headers=TUS | {"Upload-Length": "10"} | metadata, timeout=10)
    unfinished = run_cli("download", created.headers["location"])
    assert unfinished.returncode == 1
    assert unfinished.stderr.strip().endswith("the upload is not finished (0 of 10 bytes)")


def test_a_part_file_that_is_complete_is_only_checked_and_renamed(
    tus_server: ServerProcess, run_cli: RunCli, make_proxy: MakeProxy, store: Path, tmp_path: Path
) -> None:
    # As after a kill between the last byte and the rename: the Range asks for nothing more (416, RFC 9110 §15.5.17).
    source = random_file(tmp_path / "whole.bin", 3 * MiB)
    upload_id = uploaded(tus_server, source).rsplit("/", 1)[-1]
    proxy = make_proxy(tus_server.origin)
    url = f"{proxy.origin}/files/{upload_id}"
    with requests.get(url, stream=True, timeout=10) as response:
        etag = response.headers["etag"]
    target = tmp_path / "whole-copy.bin"
    (tmp_path / "whole-copy.bin.part").write_bytes(source.read_bytes())
    resume = ResumeStore(store)
    resume.put_download(download_key(url, target), DownloadRecord(etag, 3 * MiB))
    resume.close()
    count = len(proxy.seen)
    done = run_cli("download", url, target)
    assert done.returncode == 0, done.stderr
    (get,) = [seen for seen in proxy.seen[count:] if seen.method == "GET"]
    assert (get.headers["range"], get.status) == (f"bytes={3 * MiB}-", 416)
    assert target.read_bytes() == source.read_bytes()

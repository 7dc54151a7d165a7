"""The client against @tus/server 2.x (Node, bench/node/server.mjs): it works with any tus server.

@tus/server offers neither concatenation (so `--parallel` gives one stream per file) nor checksums, and its GET
knows no Range (so a download that resumes starts over) and checks no digest (so a wrong one reaches the client).
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.client.conftest import MakeProxy, RunCli, StartCli, TusNodeServer
from tests.e2e.helpers import random_file, wait_until
from tusserver.client import TransferOptions, TusClient

MiB = 1024 * 1024


def stored(server: TusNodeServer, url: str) -> Path:
    return server.directory / "files" / url.rsplit("/", 1)[-1]


def test_parallel_asked_of_a_server_without_concatenation_is_one_stream_and_resumes(
    node_server: TusNodeServer, start_cli: StartCli, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "video.mp4", 40 * MiB)
    proxy = make_proxy(node_server.endpoint)
    proxy.throttle(16 * MiB)
    process = start_cli("upload", source, proxy.origin + "/files/", "--parallel", "4", "--chunk-size", "4M")
    wait_until(lambda: proxy.body_bytes("PATCH") >= 9 * MiB, what="9 MiB relayed", timeout=20)
    process.kill()
    process.communicate(timeout=10)
    proxy.throttle(None)
    count = len(proxy.seen)
    done = run_cli("upload", source, proxy.origin + "/files/", "--parallel", "4", "--chunk-size", "4M")
    assert done.returncode == 0, done.stderr
    posts = proxy.requests("POST")
    assert len(posts) == 1
    assert "upload-concat" not in posts[0].headers
    patches = [seen for seen in proxy.seen[count:] if seen.method == "PATCH"]
    assert int(patches[0].headers["upload-offset"]) >= 8 * MiB
    url = done.stdout.split("\t")[0]
    assert stored(node_server, url).read_bytes() == source.read_bytes()
    info = json.loads(stored(node_server, url).with_suffix(".json").read_text())
    assert info["metadata"]["filename"] == "video.mp4"
    assert info["metadata"]["filetype"] == "video/mp4"


def test_a_checksum_the_server_does_not_offer_is_a_clear_error(
    node_server: TusNodeServer, run_cli: RunCli, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "a.bin", 1000)
    done = run_cli("upload", source, node_server.url, "--checksum", "sha1")
    assert done.returncode == 1
    assert done.stderr == "tusserver: the server does not offer the checksum algorithm sha1 (it offers: none)\n"


def test_a_download_without_range_support_starts_over_and_is_verified(
    node_server: TusNodeServer, start_cli: StartCli, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "scan.tif", 12 * MiB)
    with TusClient() as client:
        upload_id = client.upload(source, node_server.url).url.rsplit("/", 1)[-1]
    proxy = make_proxy(node_server.endpoint)
    proxy.throttle(8 * MiB)
    url = f"{proxy.origin}/files/{upload_id}"
    partial = tmp_path / "scan.tif.part"
    (tmp_path / "out").mkdir()
    process = start_cli("download", url, "out/")
    wait_until((tmp_path / "out" / "scan.tif.part").exists, what="a .part file", timeout=20)
    wait_until(lambda: (tmp_path / "out" / "scan.tif.part").stat().st_size >= 2 * MiB, what="2 MiB", timeout=20)
    process.kill()
    process.communicate(timeout=10)
    proxy.throttle(None)
    count = len(proxy.seen)
    done = run_cli("download", url, "out/")
    assert done.returncode == 0, done.stderr
    assert [seen.status for seen in proxy.seen[count:] if seen.method == "GET"] == [200]
    assert (tmp_path / "out" / "scan.tif").read_bytes() == source.read_bytes()
    assert not partial.exists()


def test_bytes_that_do_not_match_the_declared_digest_are_refused(
    node_server: TusNodeServer, run_cli: RunCli, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "bad.bin", 2 * MiB)
    declared = "xxh128 " + "A" * 22 + "=="  # @tus/server keeps whatever is declared; tusserver would refuse it
    with TusClient(TransferOptions(metadata={"checksum": declared})) as client:
        url = client.upload(source, node_server.url).url
    done = run_cli("download", url, tmp_path / "out.bin")
    assert done.returncode == 1
    assert f"do not match the declared digest {declared}" in done.stderr
    assert not (tmp_path / "out.bin").exists()
    assert not (tmp_path / "out.bin.part").exists()

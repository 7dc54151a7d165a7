"""`tusserver upload` against a real tusserver process, as a user runs it; a recording proxy shows the requests.

Item numbers are those of ../shared/PROTOCOL.md. Interruptions are real: SIGINT (Ctrl-C) or SIGKILL of the
command while the proxy has relayed part of its PATCH bodies (a bounded poll on that count, never a sleep).
"""

from __future__ import annotations

import base64
import os
import pty
import re
import select
import signal
import subprocess
import sys
from pathlib import Path

import requests
import xxhash

from tests.client.conftest import MakeProxy, RunCli, StartCli
from tests.client.proxy import Injection, Seen
from tests.e2e.helpers import TUS, ServerProcess, clean_environ, random_file, server_command, wait_until
from tusserver.client.protocol import read_metadata

MiB = 1024 * 1024


def results(stdout: str) -> dict[str, str]:
    """name -> upload URL, from the command's `<url><TAB><name>` lines."""
    return {name: url for url, name in (line.split("\t") for line in stdout.splitlines())}


def metadata(url: str) -> dict[str, str]:
    response = requests.head(url, headers=TUS, timeout=10)
    assert response.status_code == 200
    return read_metadata(response.headers.get("upload-metadata"))


def test_upload_prints_its_url_and_declares_name_type_and_digest(
    tus_server: ServerProcess, run_cli: RunCli, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "table.csv", 3 * MiB + 5)
    done = run_cli("upload", source, tus_server.url)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""  # not a terminal: no progress line
    url = results(done.stdout)["table.csv"]
    assert tus_server.stored_path(url).read_bytes() == source.read_bytes()
    digest = base64.b64encode(xxhash.xxh3_128(source.read_bytes()).digest()).decode()
    assert metadata(url) == {"filename": "table.csv", "filetype": "text/csv", "checksum": f"xxh128 {digest}"}


def test_a_finished_upload_is_not_sent_again(
    tus_server: ServerProcess, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    proxy = make_proxy(tus_server.origin)
    source = random_file(tmp_path / "once.bin", 2 * MiB)
    first = run_cli("upload", source, proxy.origin + "/files/")
    assert first.returncode == 0, first.stderr
    count = len(proxy.seen)
    again = run_cli("upload", source, proxy.origin + "/files/")
    assert (again.returncode, again.stdout) == (0, first.stdout)
    assert [seen.method for seen in proxy.seen[count:]] == ["OPTIONS", "HEAD"]  # item 13: offset == length


def overlapping(requests_seen: list[Seen]) -> int:
    """The most of these requests that were in flight at one moment."""
    events = sorted([(seen.started, 1) for seen in requests_seen] + [(seen.ended or 0.0, -1) for seen in requests_seen])
    most = current = 0
    for _, change in events:
        current += change
        most = max(most, current)
    return most


def test_a_directory_uploads_recursively_and_a_large_file_in_parallel_parts(
    tus_server: ServerProcess, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    dataset = tmp_path / "dataset"
    (dataset / "sub" / "deeper").mkdir(parents=True)
    files = {
        "dataset/big.bin": random_file(dataset / "big.bin", 64 * MiB + 3),
        "dataset/sub/notes.txt": random_file(dataset / "sub" / "notes.txt", 700),
        "dataset/sub/deeper/empty.dat": random_file(dataset / "sub" / "deeper" / "empty.dat", 0),
    }
    proxy = make_proxy(tus_server.origin)
    proxy.throttle(64 * MiB)  # 16 MiB parts take ~0.25 s each: streams that run at once overlap for sure
    done = run_cli("upload", "dataset/", proxy.origin + "/files/", "--parallel", "4")
    assert done.returncode == 0, done.stderr
    urls = results(done.stdout)
    assert urls.keys() == files.keys()
    for name, path in files.items():
        assert tus_server.stored_path(urls[name]).read_bytes() == path.read_bytes(), name
    # Items 74-76: four partial uploads, joined by a final that lists them; metadata only on the final (item 84).
    partials = [seen for seen in proxy.requests("POST") if seen.headers.get("upload-concat") == "partial"]
    assert len(partials) == 4
    assert all("upload-metadata" not in seen.headers for seen in partials)
    final = requests.head(urls["dataset/big.bin"], headers=TUS, timeout=10).headers
    assert final["upload-concat"].startswith("final;")
    assert len(final["upload-concat"].split(" ")) == 4
    assert overlapping([seen for seen in proxy.requests("PATCH") if seen.body_bytes > MiB]) >= 2
    assert metadata(urls["dataset/sub/notes.txt"])["relativePath"] == "dataset/sub/notes.txt"


def test_ctrl_c_then_the_same_command_continues_where_it_stopped(
    tus_server: ServerProcess, start_cli: StartCli, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "long.bin", 24 * MiB)
    proxy = make_proxy(tus_server.origin)
    proxy.throttle(8 * MiB)  # ~2 s for the rest: the Ctrl-C lands mid-file even on a loaded machine
    process = start_cli("upload", source, proxy.origin + "/files/", "--chunk-size", "4M")
    wait_until(lambda: proxy.body_bytes("PATCH") >= 9 * MiB, what="9 MiB relayed", timeout=20)
    process.send_signal(signal.SIGINT)
    _, stderr = process.communicate(timeout=20)
    assert process.returncode == 130, stderr
    assert "run the same command again" in stderr
    proxy.throttle(None)
    count = len(proxy.seen)
    done = run_cli("upload", source, proxy.origin + "/files/", "--chunk-size", "4M")
    assert done.returncode == 0, done.stderr
    second = proxy.seen[count:]
    assert "POST" not in [seen.method for seen in second]  # the stored upload, not a new one
    patches = [seen for seen in second if seen.method == "PATCH"]
    resumed_at = int(patches[0].headers["upload-offset"])
    assert resumed_at >= 8 * MiB  # two chunks were acknowledged before Ctrl-C
    assert sum(seen.body_bytes for seen in patches) == source.stat().st_size - resumed_at
    assert tus_server.stored_path(results(done.stdout)["long.bin"]).read_bytes() == source.read_bytes()


def test_a_killed_parallel_upload_resumes_its_parts(
    tus_server: ServerProcess, start_cli: StartCli, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "parts.bin", 40 * MiB)
    proxy = make_proxy(tus_server.origin)
    proxy.throttle(16 * MiB)
    process = start_cli("upload", source, proxy.origin + "/files/", "--parallel", "2", "--chunk-size", "4M")
    wait_until(lambda: proxy.body_bytes("PATCH") >= 12 * MiB, what="12 MiB relayed", timeout=20)
    process.kill()  # SIGKILL: no chance to clean up or save anything more
    process.communicate(timeout=10)
    proxy.throttle(None)
    count = len(proxy.seen)
    done = run_cli("upload", source, proxy.origin + "/files/", "--parallel", "2")
    assert done.returncode == 0, done.stderr
    second = proxy.seen[count:]
    assert [seen.headers.get("upload-concat", "")[:5] for seen in second if seen.method == "POST"] == ["final"]
    assert sum(seen.body_bytes for seen in second if seen.method == "PATCH") <= 40 * MiB - 8 * MiB
    assert tus_server.stored_path(results(done.stdout)["parts.bin"]).read_bytes() == source.read_bytes()


def test_checksums_go_with_every_patch_and_a_damaged_chunk_is_sent_again(
    tus_server: ServerProcess, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "checked.bin", 3 * MiB)
    proxy = make_proxy(tus_server.origin)
    proxy.corrupt_next_patch()
    done = run_cli("upload", source, proxy.origin + "/files/", "--checksum", "sha1", "--chunk-size", "1M")
    assert done.returncode == 0, done.stderr
    patches = proxy.requests("PATCH")
    assert all(seen.headers["upload-checksum"].startswith("sha1 ") for seen in patches)  # item 61
    assert [seen.status for seen in patches][:2] == [460, 204]  # item 62: discarded, then sent again
    assert tus_server.stored_path(results(done.stdout)["checked.bin"]).read_bytes() == source.read_bytes()


def test_retries_honour_retry_after_423_and_409(
    tus_server: ServerProcess, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "flaky.bin", 3 * MiB)
    proxy = make_proxy(tus_server.origin)
    proxy.inject(
        Injection("POST", 503, {"Retry-After": "1"}),
        Injection("PATCH", 423, {"Retry-After": "1"}),  # item 28: busy; tus-js-client retries it too
        Injection("PATCH", 409),  # item 19: offsets differ; HEAD says where to go on
    )
    done = run_cli("upload", source, proxy.origin + "/files/", "--chunk-size", "1M")
    assert done.returncode == 0, done.stderr
    seen = proxy.seen
    statuses = [(entry.method, entry.status) for entry in seen]
    assert statuses[:3] == [("OPTIONS", 200), ("POST", 503), ("POST", 201)]
    assert seen[2].started - seen[1].started >= 0.95  # Retry-After: 1
    locked = statuses.index(("PATCH", 423))
    assert statuses[locked + 1] == ("HEAD", 200)
    assert seen[locked + 1].started - seen[locked].started >= 0.95
    conflict = statuses.index(("PATCH", 409))
    assert statuses[conflict + 1] == ("HEAD", 200)
    assert tus_server.stored_path(results(done.stdout)["flaky.bin"]).read_bytes() == source.read_bytes()


def test_failures_end_with_one_clear_line(
    tus_server: ServerProcess, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "doomed.bin", MiB)
    proxy = make_proxy(tus_server.origin)
    proxy.inject(*[Injection("POST", 503, {"Retry-After": "0"})] * 3)
    done = run_cli("upload", source, proxy.origin + "/files/", "--retries", "2")
    assert done.returncode == 1
    assert done.stderr.strip().endswith(
        "gave up after 3 attempts: 503 Injected: ERR_INJECTED: answered by the test proxy with 503"
    )
    proxy.inject(Injection("POST", 403))
    refused = run_cli("upload", source, proxy.origin + "/files/")
    assert refused.returncode == 1
    assert refused.stderr.startswith(f"tusserver: {source}: POST {proxy.origin}/files/: 403 Injected")
    missing = run_cli("upload", tmp_path / "nothing.bin", tus_server.url)
    assert (missing.returncode, missing.stderr.strip()) == (
        1,
        f"tusserver: no such file or directory: {tmp_path / 'nothing.bin'}",
    )


def test_bearer_and_headers_go_with_every_request(
    tus_server: ServerProcess, run_cli: RunCli, make_proxy: MakeProxy, tmp_path: Path
) -> None:
    source = random_file(tmp_path / "secret.bin", 2 * MiB)
    proxy = make_proxy(tus_server.origin)
    done = run_cli("upload", source, proxy.origin + "/files/", "--bearer", "t0k3n", "--header", "X-Api-Key: k1")
    assert done.returncode == 0, done.stderr
    assert {(seen.headers["authorization"], seen.headers["x-api-key"]) for seen in proxy.seen} == {
        ("Bearer t0k3n", "k1")
    }
    url = results(done.stdout)["secret.bin"]
    fetched = run_cli("download", url, tmp_path / "copy.bin", env={"TUSSERVER_CLIENT_BEARER": "from-env"})
    assert fetched.returncode == 0, fetched.stderr
    assert {seen.headers["authorization"] for seen in proxy.seen if seen.method == "GET"} == {"Bearer from-env"}


def test_the_progress_line_shows_on_a_terminal(tus_server: ServerProcess, store: Path, tmp_path: Path) -> None:
    source = random_file(tmp_path / "shown.bin", 4 * MiB)
    leader, follower = pty.openpty()
    environ = clean_environ({"TUSSERVER_CLIENT_STORE": str(store)})
    command = [*server_command(), "upload", str(source), tus_server.url]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=follower, env=environ, cwd=tmp_path)
    os.close(follower)
    shown = b""
    while select.select([leader], [], [], 30)[0]:
        try:
            data = os.read(leader, 4096)
        except OSError:  # the terminal's other side closed: the command ended
            break
        if not data:
            break
        shown += data
    process.communicate(timeout=30)
    os.close(leader)
    assert process.returncode == 0
    last = shown.decode().rstrip().rsplit("\r", 1)[-1]
    assert last.startswith("100.0%  4 MiB of 4 MiB")
    assert "/s  ETA 0:00:00" in last


def test_without_the_client_extra_the_command_says_what_to_install(tmp_path: Path) -> None:
    hide_httpx = "import sys; sys.modules['httpx'] = None; from tusserver.commands import main; main(sys.argv[1:])"
    done = subprocess.run(
        [sys.executable, "-c", hide_httpx, "upload", "x.bin", "http://127.0.0.1:1/files/"],
        capture_output=True, text=True, timeout=30, env=clean_environ(), cwd=tmp_path, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    # One line naming the extra; from a checkout, tusserver.extras spells the command for it (`... '.[client]'`).
    assert re.fullmatch(r"tusserver: the tus client needs httpx: [^\n]*pip install '[^'\n]*\[client\]'\n", done.stderr)

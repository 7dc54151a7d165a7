"""The README's snippets that no other test runs, run as written against a real `tusserver` (issue 23 item 9):
the Quickstart's first upload and resume with curl and `tusserver upload`; the tus-js-client snippet of "Clients"
under Node, interrupted and run again so that it resumes from its file URL storage; the tuspy snippets of
"Clients" and "Checksums"; the `tusserver cleanup` line of "Expiration and cleanup"; the 413 of "Troubleshooting";
the webhook receiver lines of "Hooks", the "Scale out" block (Redis, three instances, nginx) and "Examples".
The README's `http://127.0.0.1:8080` is replaced by the test server's address; other fixed ports by free ones,
where a test says so."""

from __future__ import annotations

import contextlib
import gc
import os
import re
import shlex
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    PATCH_HEADERS,
    STOP_TIMEOUT,
    TUS,
    MiB,
    ServerProcess,
    StartServer,
    clean_environ,
    launch,
    random_file,
    tool,
    wait_until,
)
from tests.server_process import free_ports

pytestmark = pytest.mark.e2e

README = Path(__file__).parents[2] / "README.md"
JS_MODULES = Path(__file__).with_name("js") / "node_modules"
ORIGIN = "http://127.0.0.1:8080"


def section(title: str, level: str = "##") -> str:
    """The README's section `title` (a `level` heading), up to the next heading of that level or above."""
    text = README.read_text().split(f"\n{level} {title}\n", 1)[1]
    return re.split(r"\n#{2,%d} ".replace("%d", str(len(level))), text, maxsplit=1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, flags=re.DOTALL | re.MULTILINE)


def bash(script: str, server: ServerProcess, cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run `script` with bash -e in `cwd`, aimed at `server`, with this environment's `tusserver` on PATH."""
    environ = clean_environ({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"})
    environ["TUSSERVER_CLIENT_STORE"] = str(cwd / "client.sqlite3")
    return subprocess.run(
        ["bash", "-ec", script.replace(ORIGIN, server.origin)],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_quickstart_first_upload_and_resume(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    first, resume, client = blocks(section("First upload, and a resume", "###"), "sh")
    done = bash(first + resume, server, tmp_path)
    assert done.returncode == 0, done.stderr
    url, offset, identical = done.stdout.split()
    assert url.startswith(server.url)
    assert (offset, identical) == ("2000000", "identical")
    assert requests.get(url, timeout=IO_TIMEOUT).content == (tmp_path / "file.bin").read_bytes()

    (line,) = client.strip().splitlines()  # the project's client: a new upload, then the same command again
    printed = []
    for _ in range(2):
        done = bash(line, server, tmp_path)
        assert done.returncode == 0, done.stderr
        uploaded, name = done.stdout.strip().split("\t")
        assert name == "file.bin"
        assert requests.get(uploaded, timeout=IO_TIMEOUT).content == (tmp_path / "file.bin").read_bytes()
        printed.append(done.stdout)
    assert printed[0] == printed[1]  # run again: the same upload, found by its store


STOP_ONCE = """
from tusserver import HookRequest, HookResponse

patches = 0


async def pre_access(request: HookRequest) -> HookResponse | None:
    global patches
    if request.Event.HTTPRequest.Method == "PATCH":
        patches += 1
        if patches == 2:  # the second PATCH is refused once: tus-js-client gives up, as if the run were cut
            return HookResponse(RejectAccess=True)
    return None
"""


# The snippet is the client's side; one server is enough (granian may close on the refusal mid-body, which
# tus-js-client retries as a network error instead of giving up).
@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_tus_js_client_snippet_resumes_from_its_file_url_storage(start_server: StartServer, tmp_path: Path) -> None:
    assert (JS_MODULES / "tus-js-client").is_dir(), "run `npm ci` in tests/e2e/js"
    (tmp_path / "hooks").mkdir()
    (tmp_path / "hooks" / "stop_once.py").write_text(STOP_ONCE)
    server = start_server("--hooks-module", "stop_once", env={"PYTHONPATH": str(tmp_path / "hooks")})
    clients = section("Clients")
    script = next(block for block in blocks(clients, "js") if "FileUrlStorage" in block)
    (tmp_path / "node_modules").symlink_to(JS_MODULES)
    (tmp_path / "upload.mjs").write_text(script.replace(ORIGIN, server.origin))
    source = random_file(tmp_path / "file.bin", 20 * MiB)

    def node() -> subprocess.CompletedProcess[str]:
        command = [tool("node"), "upload.mjs"]
        return subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)

    stopped = node()
    assert stopped.returncode == 1, stopped.stdout + stopped.stderr
    assert "failed:" in stopped.stderr
    assert "0 20971520" in stopped.stdout.splitlines()
    assert (tmp_path / ".tus-uploads.json").read_text().count(
        f'"uploadUrl":"{server.url}'
    ) == 1  # kept for the next run
    resumed = node()
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    url = resumed.stdout.splitlines()[-1].removeprefix("done: ")
    assert url in (tmp_path / ".tus-uploads.json").read_text()  # the same upload, resumed
    progress = [int(line.split()[0]) for line in resumed.stdout.splitlines() if line.split()[0].isdigit()]
    assert progress[0] > 0  # it started where the first run stopped, not at 0
    assert requests.get(url, timeout=IO_TIMEOUT).content == source.read_bytes()


def run_python(program: str, server: ServerProcess, cwd: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    monkeypatch.chdir(cwd)
    namespace: dict[str, object] = {"__name__": "readme"}
    exec(compile(program.replace(ORIGIN + "/files/", server.url), "README.md", "exec"), namespace)
    return namespace


@pytest.mark.filterwarnings("ignore::ResourceWarning")  # tuspy leaves a file it opened by path to the GC
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_tuspy_snippets(server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (clients,) = blocks(section("Clients"), "python")
    genome = random_file(tmp_path / "genome.fastq.gz", 3 * MiB)
    uploader = run_python(clients, server, tmp_path, monkeypatch)["uploader"]
    assert requests.get(uploader.url, timeout=IO_TIMEOUT).content == genome.read_bytes()  # type: ignore[attr-defined]

    (checksums,) = blocks(section("Checksums"), "python")
    data = random_file(tmp_path / "data.bin", 9 * MiB)  # two PATCHes, each with its sha256
    namespace = run_python(checksums, server, tmp_path, monkeypatch)
    assert namespace["Sha256Uploader"].CHECKSUM_ALGORITHM_PAIR[0] == "sha256"  # type: ignore[attr-defined]
    del namespace, uploader
    gc.collect()  # tuspy's open file, closed here rather than in a later test
    listed = requests.get(f"{server.origin}/api/uploads", timeout=IO_TIMEOUT).json()["uploads"]
    assert listed[0]["length"] == data.stat().st_size
    assert listed[0]["offset"] == data.stat().st_size


def test_cleanup_line(server: ServerProcess) -> None:
    (block,) = blocks(section("Expiration and cleanup"), "sh")
    command = shlex.split(block.split("#", 1)[0])
    assert command[:3] == ["tusserver", "cleanup", "--data-dir"]
    server.stop()
    done = subprocess.run(
        [*command[:-1], str(server.data_dir)],  # the README's `data`, as the server was started
        env=clean_environ({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr


def test_troubleshooting_413_with_tus_max_size(start_server: StartServer, tmp_path: Path) -> None:
    text = section("Troubleshooting")
    (start,) = re.findall(r"started with `(tusserver [^`]*)`", text)
    server = start_server(*shlex.split(start)[1:])
    (command,) = blocks(text, "sh")
    (shown,) = blocks(text, "text")
    done = bash(command, server, tmp_path)
    assert done.returncode == 0, done.stderr
    answer = done.stdout.replace("\r\n", "\n")
    status, *headers = answer.split("\n\n", 1)[0].splitlines()
    shown_status, shown_header, _, shown_body = shown.strip().splitlines()
    assert status.split()[:2] == shown_status.split()[:2]  # the reason phrase is the ASGI server's
    assert shown_header in headers
    assert answer.split("\n\n", 1)[1].strip() == shown_body
    assert requests.options(server.url, headers=TUS, timeout=IO_TIMEOUT).headers["Tus-Max-Size"] == "1073741824"


@pytest.mark.parametrize("asgi_server", ["uvicorn"])
def test_parallel_uploads_js_snippet(start_server: StartServer, tmp_path: Path) -> None:
    server = start_server()
    (script,) = blocks(section("Parallel uploads (concatenation)"), "js")
    (tmp_path / "node_modules").symlink_to(JS_MODULES)
    (tmp_path / "parallel.mjs").write_text(script.replace(ORIGIN, server.origin))
    video = random_file(tmp_path / "video.mp4", 6 * MiB)
    command = [tool("node"), "parallel.mjs"]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    url = done.stdout.strip().removeprefix("uploaded to ")
    assert requests.get(url, timeout=IO_TIMEOUT).content == video.read_bytes()


def test_hooks_module_line(start_server: StartServer) -> None:
    line = next(block for block in blocks(section("Hooks"), "sh") if "--hooks-module" in block).strip()
    server = start_server(*shlex.split(line)[1:], env={"PYTHONPATH": str(README.parent)})
    refused = requests.post(server.url, headers=TUS | {"Upload-Length": "1"}, timeout=IO_TIMEOUT)
    assert (refused.status_code, refused.text) == (400, "no filename provided")


def test_upload_page_line(start_server: StartServer) -> None:
    (block,) = blocks(section("Upload page"), "sh")
    server = start_server(*shlex.split(block.split("#", 1)[0])[1:])
    page = requests.get(f"{server.origin}/", timeout=IO_TIMEOUT)
    assert page.status_code == 200
    assert "text/html" in page.headers["content-type"]


# --- blocks that start servers in the background: run by bash in a session of its own, stopped by its group ----


def started(script: str, cwd: Path, log: Path, **environ: str) -> subprocess.Popen[bytes]:
    """Start `script` with bash -e in `cwd` (this environment's `tusserver` on PATH), output to `log`; the caller
    stops it with `stop_group`."""
    path = f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"
    with log.open("wb") as output:
        return subprocess.Popen(
            ["bash", "-ec", script],
            cwd=cwd,
            env=clean_environ({"PATH": path, **environ}),
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def stop_group(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM to the process group `started` made (the script and everything it put in the background)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    process.wait(STOP_TIMEOUT)


def answers(url: str) -> Callable[[], bool]:
    """Whether `url` answers a GET below 500."""

    def check() -> bool:
        try:
            return requests.get(url, timeout=1).status_code < 500
        except requests.ConnectionError:
            return False

    return check


def test_webhook_receiver_lines(tmp_path: Path) -> None:
    (block,) = [block for block in blocks(section("Hooks"), "sh") if "webhook_receiver" in block]
    receiver, tusserver = free_ports(2)
    # The README's fixed port 8000 is replaced by a free port; tusserver's default 8080 by TUSSERVER_PORT.
    script = block.replace("8000", str(receiver))
    log = tmp_path / "block.log"
    process = started(script, README.parent, log, TUSSERVER_PORT=str(tusserver), TUSSERVER_DATA_DIR=str(tmp_path))
    try:
        endpoint = f"http://127.0.0.1:{tusserver}/files/"
        wait_until(answers(f"http://127.0.0.1:{receiver}/"), what=f"the receiver:\n{log.read_text()}")
        wait_until(answers(endpoint), what=f"tusserver:\n{log.read_text()}", timeout=20)
        refused = requests.post(endpoint, headers=TUS | {"Upload-Length": "1"}, timeout=IO_TIMEOUT)
        assert (refused.status_code, refused.text) == (400, "no filename provided")
        named = TUS | {"Upload-Length": "1", "Upload-Metadata": "filename YS50eHQ="}
        created = requests.post(endpoint, headers=named, timeout=IO_TIMEOUT)
        assert created.status_code == 201, created.text
        assert "/upload-" in created.headers["Location"]  # the receiver's id
    finally:
        stop_group(process)


def test_examples_lines(tmp_path: Path) -> None:
    node_line, http_line, tuspy_line = blocks(section("Examples"), "sh")[0].strip().splitlines()
    (tmp_path / "examples").symlink_to(README.parent / "examples")
    source = random_file(tmp_path / "big.iso", 4 * MiB)  # the README's file
    server = launch(tmp_path / "server")
    pages = free_ports(1)[0]
    # The README's fixed port 8000 is replaced by a free port.
    log = tmp_path / "http.log"
    process = started(http_line.replace("8000", str(pages)), tmp_path, log)
    try:
        server.wait_ready()
        for line in (node_line, tuspy_line):
            done = bash(line, server, tmp_path)
            assert done.returncode == 0, done.stdout + done.stderr
            url = done.stdout.splitlines()[-1].removeprefix("done ")
            assert requests.get(url, timeout=IO_TIMEOUT).content == source.read_bytes()
        page = f"http://127.0.0.1:{pages}/browser/"
        wait_until(answers(page), what=f"python -m http.server:\n{log.read_text()}")
        assert "<html" in requests.get(page, timeout=IO_TIMEOUT).text.lower()
    finally:
        stop_group(process)
        server.stop()


def test_scale_out_lines(tmp_path: Path) -> None:
    block = blocks(section("Scale out"), "sh")[0]  # the next is Redis Sentinel's
    ports = dict(zip(["6379", "8081", "8082", "8083", "8080"], map(str, free_ports(5)), strict=True))
    # The README's fixed ports (Redis 6379, tusserver 8081-8083, nginx 8080) are replaced by free ports, in the
    # block and in its nginx configuration, and /srv/tus and nginx's /tmp/ paths by this test's directory.
    (tmp_path / "examples").mkdir()
    config = (README.parent / "examples" / "nginx-scale-out.conf").read_text().replace("/tmp/", f"{tmp_path}/")
    for fixed, free in ports.items():
        block, config = block.replace(fixed, free), config.replace(fixed, free)
    (tmp_path / "examples" / "nginx-scale-out.conf").write_text(config)
    log = tmp_path / "block.log"
    process = started(block.replace("/srv/tus", str(tmp_path / "tus")), tmp_path, log)
    endpoint = f"http://127.0.0.1:{ports['8080']}/files/"
    try:
        for port in ("8081", "8082", "8083"):
            url = f"http://127.0.0.1:{ports[port]}/files/"
            wait_until(answers(url), what=f"tusserver on {url}:\n{log.read_text()}", timeout=20)
        wait_until(answers(endpoint), what=f"nginx:\n{log.read_text()}")
        data = os.urandom(3 * MiB)
        created = requests.post(endpoint, headers=TUS | {"Upload-Length": str(len(data))}, timeout=IO_TIMEOUT)
        location = created.headers["Location"]
        assert location.startswith(endpoint)  # X-Forwarded-Host: the client is sent back to the proxy
        for _ in range(2):  # a resume from the offset HEAD reports, each request on any instance
            offset = int(requests.head(location, headers=TUS, timeout=IO_TIMEOUT).headers["Upload-Offset"])
            end = offset + 2 * MiB if offset == 0 else len(data)
            headers = PATCH_HEADERS | {"Upload-Offset": str(offset)}
            answer = requests.patch(location, headers=headers, data=data[offset:end], timeout=IO_TIMEOUT)
            assert answer.status_code == 204, answer.text
        assert requests.get(location, timeout=IO_TIMEOUT).content == data
        assert (tmp_path / "appendonly.aof").exists() or (tmp_path / "appendonlydir").is_dir()  # --appendonly yes
    finally:
        pid_file = tmp_path / "nginx-scale-out.pid"  # nginx runs as a daemon, outside the block's group
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGQUIT)
        stop_group(process)

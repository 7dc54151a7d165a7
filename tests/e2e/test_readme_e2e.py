"""The README's snippets that no other test runs, run as written against a real `tusserver` (issue 23 item 9):
the Quickstart's first upload and resume with curl and `tusserver upload`; the tus-js-client snippet of "Clients"
under Node, interrupted and run again so that it resumes from its file URL storage; the tuspy snippets of
"Clients" and "Checksums"; the `tusserver cleanup` line of "Expiration and cleanup"; the 413 of "Troubleshooting".
The README's `http://127.0.0.1:8080` is replaced by the test server's address, nothing else."""

from __future__ import annotations

import gc
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import IO_TIMEOUT, TUS, MiB, ServerProcess, StartServer, clean_environ, random_file, tool

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

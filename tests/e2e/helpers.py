"""Helpers for the end-to-end tests: the server process, raw HTTP over sockets, files and hashes.

Every wait here is a bounded poll on an observable condition, never a fixed sleep.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Protocol
from urllib.parse import urlsplit

import psutil
import requests

from tests.server_process import free_ports

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TUS = {"Tus-Resumable": "1.0.0"}
PATCH_HEADERS = TUS | {"Content-Type": "application/offset+octet-stream"}
STARTUP_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
IO_TIMEOUT = 15.0


def wait_until(condition: Callable[[], bool], *, what: str, timeout: float = 10.0, interval: float = 0.01) -> None:
    """Poll `condition` until it holds; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def tool(name: str) -> str:
    """The path of a required external program (node, curl): missing is a failure, not a skip."""
    path = shutil.which(name)
    assert path is not None, f"{name} is required for the e2e tests and is not on PATH"
    return path


# --- the server process -------------------------------------------------------------------------------------------


def server_command() -> list[str]:
    """The installed `tusserver` script next to this interpreter, else `python -m tusserver`."""
    script = Path(sys.executable).with_name("tusserver")
    return [str(script)] if script.exists() else [sys.executable, "-m", "tusserver"]


def clean_environ(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without any TUSSERVER_* variable, plus `extra`."""
    environ = {name: value for name, value in os.environ.items() if not name.startswith("TUSSERVER_")}
    return environ | {"PYTHONUNBUFFERED": "1"} | dict(extra or {})


@dataclass
class ServerProcess:
    """A `tusserver` subprocess on 127.0.0.1, its data directory and its captured stderr."""

    process: subprocess.Popen[bytes]
    port: int
    base_path: str
    data_dir: Path
    stderr_path: Path

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        """The creation endpoint, e.g. http://127.0.0.1:PORT/files/."""
        return self.origin + self.base_path

    def log(self) -> str:
        return self.stderr_path.read_text(errors="replace") if self.stderr_path.exists() else ""

    def stored_path(self, location: str) -> Path:
        """Where the local storage keeps the bytes of the upload at `location`."""
        return self.data_dir / "uploads" / upload_id(location)

    def wait_ready(self) -> None:
        """Poll OPTIONS on the creation endpoint until it answers 200 (the server exiting is a failure)."""
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"tusserver exited with {self.process.returncode}:\n{self.log()}")
            try:
                if requests.options(self.url, timeout=1).status_code == 200:
                    return
            except requests.ConnectionError:
                pass
            time.sleep(0.02)
        raise AssertionError(f"tusserver not ready after {STARTUP_TIMEOUT} s:\n{self.log()}")

    def stop(self) -> int:
        """terminate -> wait -> kill; returns the exit code."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        return self.process.returncode


def launch(
    workdir: Path,
    *args: str,
    env: Mapping[str, str] | None = None,
    base_path: str = "/files/",
    config_by_env: bool = False,
) -> ServerProcess:
    """Start `tusserver` in `workdir` (its cwd) with a free port and `workdir/data`; does not wait.

    Port, base path and data directory go in as flags, or as TUSSERVER_* variables with `config_by_env`.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port, data_dir = free_ports(1)[0], workdir / "data"
    settings = {"port": str(port), "base_path": base_path, "data_dir": str(data_dir)}
    environ = clean_environ(env)
    flags: list[str] = []
    for name, value in settings.items():
        if config_by_env:
            environ["TUSSERVER_" + name.upper()] = value
        else:
            flags += ["--" + name.replace("_", "-"), value]
    stderr_path = workdir / "server.stderr.log"
    with stderr_path.open("wb") as stderr:
        process = subprocess.Popen(
            [*server_command(), *flags, *args], stdout=subprocess.DEVNULL, stderr=stderr, cwd=workdir, env=environ
        )
    return ServerProcess(process, port, base_path, data_dir, stderr_path)


class StartServer(Protocol):
    """The `start_server` fixture: launch a server and wait until it answers."""

    def __call__(
        self, *args: str, env: Mapping[str, str] | None = None, base_path: str = "/files/", config_by_env: bool = False
    ) -> ServerProcess: ...


# --- tus over requests ---------------------------------------------------------------------------------------------


def upload_id(location: str) -> str:
    """The upload id: the last segment of the upload URL."""
    return urlsplit(location).path.rstrip("/").rsplit("/", 1)[-1]


def create_upload(server: ServerProcess, length: int, headers: Mapping[str, str] | None = None) -> str:
    """POST an upload of `length` bytes; returns its absolute URL."""
    response = requests.post(
        server.url, headers=TUS | {"Upload-Length": str(length), **(headers or {})}, timeout=IO_TIMEOUT
    )
    assert response.status_code == 201, response.text
    return requests.compat.urljoin(server.url, response.headers["Location"])


def head_offset(location: str) -> int:
    """HEAD the upload (it takes the upload lock, so any earlier request on it has finished)."""
    response = requests.head(location, headers=TUS, timeout=IO_TIMEOUT)
    assert response.status_code == 200, response.headers
    return int(response.headers["Upload-Offset"])


def patch(location: str, offset: int, data: bytes) -> requests.Response:
    headers = PATCH_HEADERS | {"Upload-Offset": str(offset)}
    return requests.patch(location, headers=headers, data=data, timeout=IO_TIMEOUT)


# --- files ------------------------------------------------------------------------------------------------------


def random_file(path: Path, size: int) -> Path:
    with path.open("wb") as file:
        for start in range(0, size, MiB):
            file.write(os.urandom(min(MiB, size - start)))
    return path


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while piece := file.read(MiB):
            digest.update(piece)
    return digest.hexdigest()


def files_under(root: Path, *, excluding: Path | None = None) -> set[Path]:
    """Every file below `root`, except those below `excluding`."""
    return {
        path for path in root.rglob("*") if path.is_file() and (excluding is None or not path.is_relative_to(excluding))
    }


# --- raw HTTP/1.1 over a socket ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class RawResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes


def raw_request(method: str, target: str | bytes, headers: Mapping[str, str], body: bytes = b"") -> bytes:
    """The bytes of one HTTP/1.1 request; `target` goes on the request line exactly as given."""
    target_bytes = target if isinstance(target, bytes) else target.encode("latin-1")
    lines = [method.encode() + b" " + target_bytes + b" HTTP/1.1", b"Host: 127.0.0.1"]
    lines += [f"{name}: {value}".encode("latin-1") for name, value in headers.items()]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def connect(server: ServerProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=IO_TIMEOUT)


def send_all(sock: socket.socket, data: bytes) -> bool:
    """Send `data`; False if the server closed the connection first (it may have answered early)."""
    try:
        sock.sendall(data)
    except (BrokenPipeError, ConnectionResetError):
        return False
    return True


def _recv(sock: socket.socket) -> bytes:
    try:
        return sock.recv(256 * KiB)
    except ConnectionResetError:
        return b""


def read_response(sock: socket.socket, *, head: bool = False) -> RawResponse | None:
    """Read one response; None if the connection closed without any answer."""
    data = b""
    while b"\r\n\r\n" not in data:
        piece = _recv(sock)
        if not piece:
            assert not data, f"connection closed inside a response head: {data!r}"
            return None
        data += piece
    head_bytes, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head_bytes.decode("latin-1").split("\r\n")
    pairs = (line.partition(":") for line in header_lines)
    headers = {name.strip().lower(): value.strip() for name, _, value in pairs}
    length = 0 if head else int(headers.get("content-length", "0"))
    while len(body) < length and (piece := _recv(sock)):
        body += piece
    return RawResponse(int(status_line.split()[1]), headers, body[:length])


def raw_exchange(server: ServerProcess, request: bytes, *, head: bool = False) -> RawResponse | None:
    """Send one raw request on a new connection and read the answer (None: closed without one)."""
    with connect(server) as sock:
        send_all(sock, request)
        return read_response(sock, head=head)


def target_of(location: str) -> str:
    """The request target (path) of an upload URL."""
    return urlsplit(location).path


# --- process memory ----------------------------------------------------------------------------------------------


class RssSampler:
    """Samples the RSS of a process and its children (granian serves from a worker process) in a thread;
    `peak` is the largest sum seen (bytes)."""

    def __init__(self, pid: int, interval: float = 0.005) -> None:
        root = psutil.Process(pid)
        self._processes = [root, *root.children(recursive=True)]
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.peak = 0
        self.samples = 0

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, sum(process.memory_info().rss for process in self._processes))
            self.samples += 1
            self._stop.wait(self._interval)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join(IO_TIMEOUT)


def peak_rss_hwm(pid: int) -> int:
    """The kernel's high-water marks of the RSS (VmHWM, bytes) of a process and its children, summed."""
    root = psutil.Process(pid)
    return sum(_hwm(process.pid) for process in [root, *root.children(recursive=True)])


def _hwm(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * KiB
    raise AssertionError(f"no VmHWM for pid {pid}")


def wait_for_log(server: ServerProcess, text: str, *, timeout: float = 10.0) -> None:
    """Wait until the server's stderr contains `text` (e.g. the access-log line a request writes when it ends)."""
    wait_until(lambda: text in server.log(), what=f"{text!r} in the server log", timeout=timeout)


def stored_size(server: ServerProcess, location: str) -> int:
    path = server.stored_path(location)
    return path.stat().st_size if path.exists() else 0


# --- racing writers ----------------------------------------------------------------------------------------------

# PROTOCOL.md item 28: what a PATCH racing another on the same upload may get; never a 5xx.
RACE_OUTCOMES = {204, 409, 400, 423}


def check_race_outcome(response: RawResponse | None) -> None:
    """A racing PATCH's answer: one of RACE_OUTCOMES, and a 400 only for an interrupted request."""
    assert response is not None, "the server closed the connection without an answer"
    assert response.status in RACE_OUTCOMES, response
    if response.status == 400:
        assert response.body.startswith(b"ERR_UPLOAD_INTERRUPTED"), response


def racing_patch(server: ServerProcess, location: str, data: bytes, start: threading.Barrier) -> RawResponse | None:
    """A PATCH of `data` from offset 0, sent in 16 KiB pieces once every racer is ready."""
    headers = PATCH_HEADERS | {"Upload-Offset": "0", "Content-Length": str(len(data))}
    with connect(server) as sock:
        start.wait(IO_TIMEOUT)
        for piece in range(0, len(data), 16 * KiB):
            head = raw_request("PATCH", target_of(location), headers) if piece == 0 else b""
            if not send_all(sock, head + data[piece : piece + 16 * KiB]):
                break  # answered early and closed; the answer may still be readable
        return read_response(sock)


def race_patches(servers: list[ServerProcess], location: str, datas: list[bytes]) -> bytes:
    """PATCH datas[i] to servers[i] at once; check every answer and that one writer's bytes were stored.

    Returns the winning data, of which the stored file is a prefix.
    """
    responses: list[RawResponse | None] = [None] * len(servers)
    start = threading.Barrier(len(servers))

    def run(index: int) -> None:
        responses[index] = racing_patch(servers[index], location, datas[index], start)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(servers))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for response in responses:
        check_race_outcome(response)
    stored = servers[0].stored_path(location).read_bytes()
    winners = [data for data in datas if data.startswith(stored)]
    assert winners, "the stored bytes mix both requests"
    return winners[0]


def finish_from_head(location: str, data: bytes) -> None:
    """The offset HEAD reports must be accepted by the next PATCH, which completes the upload."""
    offset = head_offset(location)
    response = patch(location, offset, data[offset:])
    assert (response.status_code, response.headers.get("Upload-Offset")) == (204, str(len(data))), response.text

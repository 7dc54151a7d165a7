"""The servers under test: how each is started on a free port with its own data directory, and stopped.

Every server listens on 127.0.0.1 only and runs in its own process group, so that stopping it ends exactly the
processes the harness started.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import time
from abc import ABC, abstractmethod
from collections import Counter
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import ClassVar
from urllib.parse import urlsplit

import psutil
from fsprobe import fast_directory

HOST = "127.0.0.1"
BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
NODE_DIR = BENCH / "node"
START_TIMEOUT = 30.0
STOP_TIMEOUT = 10.0


class ServerError(RuntimeError):
    """A server did not start or did not answer."""


def upload_id(upload_url: str) -> str:
    """The last path segment of an upload URL, which every server here uses as the file name."""
    name = urlsplit(upload_url).path.rstrip("/").rsplit("/", 1)[-1]
    if not name or name.startswith(".") or "/" in name:
        raise ServerError(f"unexpected upload URL {upload_url!r}")
    return name


class Server(ABC):
    """One kind of server: its command line, where it stores an upload, and which workloads it takes part in."""

    name: ClassVar[str]
    label: ClassVar[str]
    role: ClassVar[str]  # "subject", "peer" or "ceiling"
    protocol: ClassVar[str] = "tus"  # "tus" (POST + PATCH) or "put" (one PUT per file)
    workloads: ClassVar[frozenset[str]] = frozenset({"W1", "W2", "W3", "W4"})

    def unavailable(self) -> str | None:
        """Why this server cannot run here, or None."""
        return None

    @abstractmethod
    def version(self) -> str: ...

    @abstractmethod
    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        """The command that runs the server in the foreground; may write config files into scratch."""

    @abstractmethod
    def stored_path(self, data_dir: Path, upload_url: str) -> Path: ...

    def env(self) -> dict[str, str]:
        return dict(os.environ)


class TusServer(Server):
    """tusserver itself, started the way a user starts it: the `tusserver` command (uvicorn by default)."""

    name = "tusserver"
    label = "tusserver"
    role = "subject"
    workloads = frozenset({"W1", "W2", "W3", "W4", "W5"})

    def __init__(self, extra_args: list[str] | None = None) -> None:
        self.extra_args = extra_args or []
        self.executable = Path(sys.executable).with_name("tusserver")

    def unavailable(self) -> str | None:
        return None if self.executable.exists() else f"{self.executable} not found (pip install -e . first)"

    def version(self) -> str:
        return f"tusserver {metadata.version('tusserver')}, uvicorn {metadata.version('uvicorn')}"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        args = ["--port", str(port), "--data-dir", str(data_dir), "--log-level", "warning"]
        return [str(self.executable), *args, *self.extra_args]

    def stored_path(self, data_dir: Path, upload_url: str) -> Path:
        return data_dir / "uploads" / upload_id(upload_url)


class TusGranianServer(TusServer):
    """tusserver on granian (`tusserver --server granian`), the faster ASGI server option."""

    name = "tusserver-granian"
    label = "tusserver (granian)"

    def version(self) -> str:
        return f"tusserver {metadata.version('tusserver')}, granian {metadata.version('granian')}"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        return [*super().command(port, data_dir, scratch), "--server", "granian"]


class NodeTusServer(Server):
    """The peer: @tus/server with @tus/file-store (bench/node/server.mjs)."""

    name = "tus-node"
    label = "@tus/server"
    role = "peer"

    def unavailable(self) -> str | None:
        if shutil.which("node") is None:
            return "node is not on PATH"
        if not (NODE_DIR / "node_modules" / "@tus" / "server").is_dir():
            return "bench/node/node_modules is missing (run bench/setup.sh)"
        return None

    def version(self) -> str:
        versions = []
        for package in ("server", "file-store"):
            manifest = NODE_DIR / "node_modules" / "@tus" / package / "package.json"
            versions.append(f"@tus/{package} {json.loads(manifest.read_text())['version']}")
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
        return ", ".join(versions) + f", node {node}"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        return ["node", str(NODE_DIR / "server.mjs"), "--port", str(port), "--dir", str(data_dir)]

    def stored_path(self, data_dir: Path, upload_url: str) -> Path:
        return data_dir / upload_id(upload_url)

    def env(self) -> dict[str, str]:
        return {**os.environ, "NODE_ENV": "production"}


class SinkServer(Server):
    """The Python ceiling: bench/sink.py, a socket loop with one write() per recv. In W3 it is what the same
    file creates and writes cost in Python without any upload state or protocol checks."""

    name = "sink"
    label = "socket sink (ceiling)"
    role = "ceiling"
    workloads = frozenset({"W1", "W2", "W3"})

    def version(self) -> str:
        return f"bench/sink.py on Python {platform.python_version()}"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        return [sys.executable, str(BENCH / "sink.py"), "--port", str(port), "--dir", str(data_dir)]

    def stored_path(self, data_dir: Path, upload_url: str) -> Path:
        return data_dir / upload_id(upload_url)


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
{user}
pid {scratch}/nginx.pid;
error_log {scratch}/error.log warn;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_max_body_size 0;
    client_body_temp_path {data}/.body;
{temp_paths}
    server {{
        listen {host}:{port};
        root {data};
        location /files/ {{
            dav_methods PUT;
            create_full_put_path on;
        }}
    }}
}}
"""


class NginxServer(Server):
    """The C ceiling: nginx with `dav_methods PUT`, one worker. Takes part in W1 only (a PUT per file)."""

    name = "nginx"
    label = "nginx dav PUT (ceiling)"
    role = "ceiling"
    protocol = "put"
    workloads = frozenset({"W1"})

    def __init__(self) -> None:
        self.executable = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/sbin")

    def _build_info(self) -> str:
        if self.executable is None:
            return ""
        return subprocess.run([self.executable, "-V"], capture_output=True, text=True, check=False).stderr

    def unavailable(self) -> str | None:
        if self.executable is None:
            return "absent (nginx is not installed)"
        if "--with-http_dav_module" not in self._build_info():
            return "absent (this nginx has no dav module)"
        return None

    def version(self) -> str:
        first = self._build_info().splitlines()
        return first[0].removeprefix("nginx version: ") if first else "absent"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        info = self._build_info()
        temp_paths = "\n".join(
            f"    {module}_temp_path {scratch}/{module};"
            for module in ("proxy", "fastcgi", "uwsgi", "scgi")
            if f"--without-http_{module}_module" not in info
        )
        user = "user root;" if os.geteuid() == 0 else ""
        conf = NGINX_CONF.format(user=user, scratch=scratch, data=data_dir, temp_paths=temp_paths, host=HOST, port=port)
        (scratch / "nginx.conf").write_text(conf)
        assert self.executable is not None
        return [
            self.executable,
            "-p",
            str(scratch),
            "-c",
            str(scratch / "nginx.conf"),
            "-e",
            str(scratch / "error.log"),
        ]

    def stored_path(self, data_dir: Path, upload_url: str) -> Path:
        return data_dir / "files" / upload_id(upload_url)


# --- tusserver with hooks (issue 20) --------------------------------------------------------------------------


class HookReceiver:
    """bench/hook_receiver.py on uvicorn, in its own process group on a free port: started once per benchmark
    (`start`) by the harness, which gives its URL to the servers with hooks and reads its counts of events."""

    def __init__(self) -> None:
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0
        self.log_path: Path | None = None

    @property
    def url(self) -> str:
        if self.process is None:
            raise ServerError("the hook receiver has not been started")
        return f"http://{HOST}:{self.port}/"

    def start(self, directory: Path) -> None:
        self.port = free_port()
        self.log_path = directory / "hook-receiver.log"
        with self.log_path.open("wb") as log:
            command = [sys.executable, str(BENCH / "hook_receiver.py"), "--port", str(self.port)]
            self.process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise ServerError(f"the hook receiver exited with {self.process.returncode}")
            with contextlib.suppress(OSError, ValueError):
                self.counts()
                return
            time.sleep(0.05)
        self.stop()
        raise ServerError(f"the hook receiver did not answer within {START_TIMEOUT:.0f} s")

    def counts(self) -> Counter[str]:
        """The events received so far, by type."""
        connection = http.client.HTTPConnection(HOST, self.port, timeout=5)
        try:
            connection.request("GET", "/")
            response = connection.getresponse()
            return Counter(json.loads(response.read()))
        finally:
            connection.close()

    def cpu_s(self) -> float:
        """user+sys CPU seconds the receiver has used."""
        if self.process is None:
            return 0.0
        times = psutil.Process(self.process.pid).cpu_times()
        return float(times.user + times.system)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            _signal_group(process.pid, signal.SIGTERM)
            try:
                process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(process.pid, signal.SIGKILL)
                process.wait(STOP_TIMEOUT)


# tusd's -hooks-enabled-events default, which tusserver's default follows.
DEFAULT_EVENTS = ("pre-create", "post-create", "post-receive", "post-finish", "post-terminate")
# The events an upload created by a POST and finished by one PATCH sends, each at least once.
UPLOAD_EVENTS = ("pre-create", "post-create", "post-receive", "post-finish")


class TusHooksServer(TusServer):
    """tusserver (uvicorn) sending hook events over HTTP to the harness's receiver, compared with `tusserver`
    without hooks in the workloads where its events matter. `events`: what it sends (None: tusserver's default,
    not passed on the command line, as a user runs it)."""

    events: ClassVar[tuple[str, ...] | None] = None

    def __init__(self, extra_args: list[str] | None, receiver: HookReceiver) -> None:
        super().__init__(extra_args)
        self.receiver = receiver

    @property
    def enabled(self) -> tuple[str, ...]:
        return self.events if self.events is not None else DEFAULT_EVENTS

    @property
    def upload_events(self) -> tuple[str, ...]:
        """The events the receiver must get once per finished upload."""
        return tuple(event for event in UPLOAD_EVENTS if event in self.enabled)

    def version(self) -> str:
        return f"{super().version()}; hooks: {', '.join(self.enabled)} to bench/hook_receiver.py (uvicorn)"

    def command(self, port: int, data_dir: Path, scratch: Path) -> list[str]:
        hooks = ["--hooks-http", self.receiver.url]
        if self.events is not None:
            hooks += ["--hooks-enabled-events", ",".join(self.events)]
        return [*super().command(port, data_dir, scratch), *hooks]


class TusHooksReceiveServer(TusHooksServer):
    """post-receive only, in W1: the hook that runs beside the PATCH stream."""

    name = "tusserver-hooks-receive"
    label = "tusserver + post-receive hook"
    workloads = frozenset({"W1"})
    events = ("post-receive",)


class TusHooksDefaultServer(TusHooksServer):
    """tusd's default events, in W3: a blocking pre-create and three more events per small upload."""

    name = "tusserver-hooks-default"
    label = "tusserver + default hooks"
    workloads = frozenset({"W3"})


def all_servers(tusserver_args: list[str], receiver: HookReceiver | None = None) -> dict[str, Server]:
    """Every server the harness knows; the ones with hooks send their events to `receiver` (one for both)."""
    receiver = receiver or HookReceiver()
    servers: list[Server] = [
        TusServer(tusserver_args),
        TusGranianServer(tusserver_args),
        NodeTusServer(),
        SinkServer(),
        NginxServer(),
        TusHooksReceiveServer(tusserver_args, receiver),
        TusHooksDefaultServer(tusserver_args, receiver),
    ]
    return {server.name: server for server in servers}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class RunningServer:
    """A started server; `stop()` ends its process group."""

    server: Server
    process: subprocess.Popen[bytes]
    port: int
    data_dir: Path
    log_path: Path
    create_cost_us: float  # CPU per file created in data_dir, measured before the start (bench/fsprobe.py)

    @property
    def url(self) -> str:
        """The creation endpoint (tus) or the directory for PUTs."""
        return f"http://{HOST}:{self.port}/files/"

    def stored_path(self, upload_url: str) -> Path:
        return self.server.stored_path(self.data_dir, upload_url)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        """SIGTERM the server's process group, SIGKILL it if it lingers; returns the exit code."""
        descendants = _descendants(self.process.pid)
        if self.process.poll() is None:
            _signal_group(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                _signal_group(self.process.pid, signal.SIGKILL)
                self.process.wait(STOP_TIMEOUT)
        for child in descendants:  # anything the server left behind, by pid (psutil checks it is the same process)
            with contextlib.suppress(psutil.Error):
                child.kill()
        return self.process.returncode


def _descendants(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children(recursive=True)
    except psutil.Error:
        return []


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signum)


def start(server: Server, run_dir: Path) -> RunningServer:
    """Start the server with a fresh data directory under run_dir and wait until it answers."""
    data_dir = run_dir / "data"
    scratch = run_dir / "scratch"
    run_dir.mkdir(parents=True)
    create_cost_us = fast_directory(data_dir)
    scratch.mkdir()
    port = free_port()
    log_path = run_dir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            server.command(port, data_dir, scratch),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env=server.env(),
            cwd=run_dir,
            start_new_session=True,
        )
    running = RunningServer(server, process, port, data_dir, log_path, create_cost_us)
    try:
        _wait_ready(running)
    except BaseException:
        running.stop()
        raise
    return running


def _wait_ready(running: RunningServer) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise ServerError(f"{running.server.name} exited with {running.process.returncode}:\n{running.log_tail()}")
        try:
            with socket.create_connection((HOST, running.port), timeout=0.5):
                pass
        except OSError:
            time.sleep(0.05)
            continue
        if running.server.protocol != "tus" or _answers_options(running.port):
            return
        time.sleep(0.05)
    raise ServerError(f"{running.server.name} did not answer within {START_TIMEOUT:.0f} s:\n{running.log_tail()}")


def _answers_options(port: int) -> bool:
    connection = http.client.HTTPConnection(HOST, port, timeout=5)
    try:
        connection.request("OPTIONS", "/files/", headers={"Tus-Resumable": "1.0.0"})
        return connection.getresponse().status < 300
    except OSError:
        return False
    finally:
        connection.close()

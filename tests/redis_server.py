"""A real redis-server process on a free loopback port, for the tests (SERVICES.md §1)."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass
from typing import ClassVar

from tests.server_process import ServerProcess, free_ports


@dataclass
class RedisServer(ServerProcess):
    """A running redis-server with AOF persistence (appendfsync always) in its own directory."""

    name: ClassVar[str] = "redis"

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        """Start (or restart, keeping the data) and wait until PING answers."""
        executable = shutil.which("redis-server")
        assert executable, "redis-server is not installed (run .ci/test, which installs it)"
        self.port = self.port or free_ports(1)[0]
        command = [executable, "--bind", "127.0.0.1", "--port", str(self.port), "--dir", str(self.directory),
                   "--save", "", "--appendonly", "yes", "--appendfsync", "always", "--daemonize", "no"]  # fmt: skip
        self._spawn(command, lambda: _answers_ping(self.port), timeout=10)


def _answers_ping(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False

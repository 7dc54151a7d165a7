"""What the tests' real servers (Redis, SeaweedFS, moto) share: a process of its own on a free loopback port,
its output in a log file in its directory, a crash on demand and a stop that never hangs."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, ClassVar


@dataclass
class ServerProcess:
    """Subclasses set `name` (the log is `<name>.log`) and start with `_spawn`."""

    name: ClassVar[str]
    stop_timeout: ClassVar[float] = 10.0  # seconds between SIGTERM and SIGKILL

    directory: Path
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / f"{self.name}.log"

    def _spawn(
        self, command: Sequence[str], ready: Callable[[], bool], *, env: Mapping[str, str] | None = None, timeout: float
    ) -> None:
        """Run `command` in the directory, logging to `log_path`, and wait until `ready()` (or fail with the log)."""
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command, cwd=self.directory, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_until(ready, self.process, f"{self.name} (see {self.log_path})", timeout)

    def kill(self) -> None:
        """SIGKILL, as a crash would."""
        if self.process is not None:
            self.process.kill()
            self.process.wait(10)
        self._close_log()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL after `stop_timeout` seconds."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(self.stop_timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        self._close_log()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None


def wait_until(ready: Callable[[], bool], process: subprocess.Popen[bytes], what: str, timeout: float) -> None:
    """Poll `ready()` until it holds; fail if `process` exits first or `timeout` seconds pass (then kill it)."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, f"{what} exited with rc={process.returncode}"
        if time.monotonic() >= deadline:
            process.kill()
            process.wait(10)
            raise AssertionError(f"{what} was not ready within {timeout} s")
        time.sleep(0.05)


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (all sockets held open until every port is chosen)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("127.0.0.1", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()

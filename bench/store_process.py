"""The store processes the benchmarks start (SeaweedFS's `weed mini`, Azurite): waiting until one answers, and
stopping it with everything it started (each runs in a process group of its own)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

__all__ = ["stop_group", "wait_until_answering"]

START_TIMEOUT = 60.0
STOP_TIMEOUT = 20.0


def wait_until_answering(answers: Callable[[], bool], process: subprocess.Popen[bytes], name: str, log: Path) -> None:
    """Poll `answers` until it says yes; raise if `process` exits first or START_TIMEOUT passes (see `log`)."""
    deadline = time.monotonic() + START_TIMEOUT
    while not answers():
        if process.poll() is not None:
            raise RuntimeError(f"{name} exited with {process.returncode}; see {log}")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name} did not answer within {START_TIMEOUT:.0f} s; see {log}")
        time.sleep(0.1)


def stop_group(process: subprocess.Popen[bytes] | None) -> None:
    """SIGTERM the process group of `process` if it still runs, SIGKILL if it lingers past STOP_TIMEOUT."""
    if process is None or process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(STOP_TIMEOUT)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait(STOP_TIMEOUT)

"""The README's "Operations" commands as a new user runs them (issue 23): `tusserver` started as the section
starts it, each curl line run by a shell, the JSON log read line by line against the section's example, and the
`kill -TERM` line stopping the server with exit code 0."""

from __future__ import annotations

import json
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from tests.auth.readme import section_blocks
from tests.e2e.helpers import IO_TIMEOUT, STOP_TIMEOUT, create_upload, launch

pytestmark = pytest.mark.e2e

SECTION = "Operations"


def shell(command: str, **variables: str) -> str:
    """Run `command` as the README shows it, with `variables` set; its output."""
    done = subprocess.run(
        ["bash", "-c", command],
        env={"PATH": "/usr/bin:/bin", **variables},
        capture_output=True,
        text=True,
        timeout=IO_TIMEOUT,
        check=True,
    )
    return done.stdout


def test_readme_operations_commands(tmp_path: Path) -> None:
    start, probes, stop = section_blocks("sh", SECTION)
    (example,) = section_blocks("json", SECTION)
    command = shlex.split(start.strip())
    assert command[0] == "tusserver"
    server = launch(tmp_path, *command[1:])
    try:
        server.wait_ready()
        create_upload(server, 3)
        metrics, health, ready, request_id = (
            line.replace("http://localhost:8080", server.origin) for line in probes.strip().splitlines()
        )
        assert shell(metrics) == "tusserver_uploads_created_total 1.0\n"
        assert re.match(r"HTTP/1.1 200 OK\n.*\n\nok\n$", shell(health), re.DOTALL)
        assert re.match(r"HTTP/1.1 200 OK\n.*\n\nready\n$", shell(ready), re.DOTALL)
        assert shell(request_id) == "x-request-id: trace-42\n"

        assert shell(stop.strip(), TUSSERVER_PID=str(server.pid)) == ""
        assert server.process.wait(STOP_TIMEOUT) == 0
    finally:
        server.stop()

    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    traced = [line for line in lines if line.get("request_id") == "trace-42"]
    assert len(traced) == 1
    assert traced[0].keys() == json.loads(example).keys()  # the section's example has every field a line has
    assert (traced[0]["method"], traced[0]["path"], traced[0]["status"]) == ("OPTIONS", "/files/", 200)
    assert any(line["message"].startswith("draining") for line in lines)

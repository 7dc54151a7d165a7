"""The `tusserver` command: help, TUSSERVER_* variables, bad values, the access log and SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest
import requests

from tests.e2e.helpers import (
    IO_TIMEOUT,
    STOP_TIMEOUT,
    TUS,
    ServerProcess,
    StartServer,
    clean_environ,
    create_upload,
    head_offset,
    patch,
    raw_exchange,
    raw_request,
    server_command,
    upload_id,
    wait_for_log,
)
from tusserver.serving.cli import OPTIONS

pytestmark = pytest.mark.e2e


def run_cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `tusserver` to completion (for commands that exit by themselves)."""
    return subprocess.run(
        [*server_command(), *args], capture_output=True, text=True, timeout=30, env=clean_environ(env), check=False
    )


def test_help_lists_every_flag_and_variable() -> None:
    done = run_cli("--help")
    assert done.returncode == 0
    for option in OPTIONS:
        assert option.flag in done.stdout
        assert option.env in done.stdout


def test_environment_configures_port_base_path_and_max_size(start_server: StartServer) -> None:
    server = start_server(env={"TUSSERVER_MAX_SIZE": "1K"}, base_path="/uploads/", config_by_env=True)
    response = requests.options(server.url, timeout=IO_TIMEOUT)
    assert requests.options(server.origin + "/files/", timeout=IO_TIMEOUT).status_code == 404
    assert (response.status_code, response.headers["Tus-Max-Size"]) == (200, "1024")
    too_big = requests.post(server.url, headers=TUS | {"Upload-Length": "1025"}, timeout=IO_TIMEOUT)
    assert too_big.status_code == 413


@pytest.mark.parametrize(
    ("flag", "value"),
    [("--port", "eighty"), ("--max-size", "12Q"), ("--fsync", "maybe"), ("--lock-timeout", "-1"), ("--port", "70000")],
)
def test_invalid_flag_value_exits_nonzero_with_message(flag: str, value: str) -> None:
    done = run_cli(flag, value)
    assert done.returncode != 0
    message = done.stderr.strip().splitlines()[-1]
    assert message.startswith("tusserver: error:")
    assert flag.lstrip("-").replace("-", "_") in message.lower().replace("-", "_")  # names the setting


def test_invalid_environment_value_exits_nonzero_naming_the_variable() -> None:
    done = run_cli(env={"TUSSERVER_PORT": "eighty"})
    assert done.returncode != 0
    assert "TUSSERVER_PORT" in done.stderr


def access_log_lines(server: ServerProcess, text: str) -> list[str]:
    return [line for line in server.log().splitlines() if text in line and "tusserver:" in line]


def test_access_log_has_one_line_per_request_with_upload_id(server: ServerProcess) -> None:
    location = create_upload(server, 5)
    assert patch(location, 0, b"hello").status_code == 204
    assert head_offset(location) == 5
    wait_for_log(server, f'"HEAD /files/{upload_id(location)}"')
    lines = access_log_lines(server, f"upload={upload_id(location)}")
    assert [line.split('"')[1].split()[0] for line in lines] == ["POST", "PATCH", "HEAD"]
    assert [line.split('"')[2].split()[0] for line in lines] == ["201", "204", "200"]


def test_access_log_line_cannot_be_split_by_encoded_newlines(server: ServerProcess) -> None:
    forged = "2026-01-01 00:00:00,000 INFO tusserver: 127.0.0.1 forged"
    target = "/files/x%0d%0a" + forged.replace(" ", "%20")
    response = raw_exchange(server, raw_request("HEAD", target, TUS), head=True)
    assert response is not None
    assert response.status == 404
    wait_for_log(server, "forged")
    assert not [line for line in server.log().splitlines() if line.startswith(forged[:10])]


def test_sigterm_stops_server_with_exit_code_zero(server: ServerProcess) -> None:
    os.kill(server.pid, signal.SIGTERM)
    assert server.process.wait(STOP_TIMEOUT) == 0
    assert "stopped: state and storage closed" in server.log()  # the app's shutdown ran

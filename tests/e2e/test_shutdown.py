"""SIGTERM mid-PATCH on the real server (uvicorn and granian): the bytes received are kept, the process exits 0,
and the upload resumes on a restarted server byte-exact. Also the JSON log, parsed line by line."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import (
    STOP_TIMEOUT,
    TUS,
    ServerProcess,
    create_upload,
    head_offset,
    launch,
    patch,
    stored_size,
    target_of,
    wait_for_log,
    wait_until,
)

pytestmark = pytest.mark.e2e

SIZE = 4 * 1024 * 1024
SENT = 1024 * 1024 + 12345  # what the client sends before the server is stopped: spliced, then cut


def start(workdir: Path, port_dir: Path, *flags: str) -> ServerProcess:
    server = launch(workdir, "--data-dir", str(port_dir), "--shutdown-timeout", "1", "--log-format", "json", *flags)
    server.data_dir = port_dir
    server.wait_ready()
    return server


def test_sigterm_mid_patch_keeps_the_bytes_and_resumes(tmp_path: Path, asgi_server: str) -> None:
    data = bytes(range(256)) * (SIZE // 256)
    data_dir = tmp_path / "data"
    server = start(tmp_path / "first", data_dir, "--server", asgi_server)
    location = create_upload(server, SIZE)
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = (
        f"PATCH {target_of(location)} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        f"Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: {SIZE}\r\n\r\n"
    )
    sock.sendall(head.encode() + data[:SENT])
    wait_until(lambda: stored_size(server, location) >= SENT, what="the PATCH to store what was sent")
    server.process.send_signal(signal.SIGTERM)
    wait_for_log(server, "draining")
    with pytest.raises(requests.ConnectionError):  # no new connections while draining
        requests.options(server.url, timeout=2)
    assert server.process.wait(STOP_TIMEOUT) == 0  # the PATCH ended after --shutdown-timeout, cleanly
    sock.close()

    lines = [json.loads(line) for line in server.log().splitlines() if line.strip()]
    assert all({"time", "level", "logger", "message"} <= line.keys() for line in lines)
    assert [line["message"] for line in lines if line["level"] == "error"] == []
    cut = [line for line in lines if line.get("method") == "PATCH"]
    assert len(cut) == 1
    assert cut[0]["upload_id"] == location.rsplit("/", 1)[1]
    assert cut[0]["bytes"] == SENT
    assert set(cut[0]) >= {"request_id", "path", "status", "duration_ms", "error_code", "remote_addr"}

    restarted = start(tmp_path / "second", data_dir, "--server", asgi_server)
    try:
        relocated = location.replace(str(server.port), str(restarted.port))
        offset = head_offset(relocated)
        assert offset == SENT  # every byte received before the stop was recorded
        assert patch(relocated, offset, data[offset:]).status_code == 204
        assert requests.get(relocated, headers=TUS, timeout=10).content == data
    finally:
        assert restarted.stop() == 0


def test_sigterm_lets_a_short_patch_finish(tmp_path: Path, asgi_server: str) -> None:
    server = launch(tmp_path, "--shutdown-timeout", "30", "--server", asgi_server)
    server.wait_ready()
    location = create_upload(server, 10)
    sock = socket.create_connection(("127.0.0.1", server.port))
    head = (
        f"PATCH {target_of(location)} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n"
        "Upload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nContent-Length: 10\r\n\r\n"
    )
    sock.sendall(head.encode() + b"01234")
    wait_until(lambda: stored_size(server, location) == 5, what="the PATCH to start")
    server.process.send_signal(signal.SIGTERM)
    wait_for_log(server, "draining")
    sock.sendall(b"56789")  # the rest arrives during the drain
    answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 204")
    assert b"upload-offset: 10" in answer.lower()
    sock.close()
    try:
        assert server.process.wait(STOP_TIMEOUT) == 0
    except subprocess.TimeoutExpired:
        server.process.kill()
        raise
    assert server.stored_path(location).read_bytes() == b"0123456789"

"""The `tusserver` command: help, TUSSERVER_* variables, bad values, the access log and SIGTERM."""

from __future__ import annotations

import importlib.metadata
import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from redis import Redis

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
from tests.redis_server import RedisServer
from tests.server_process import free_ports
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


# --- issue 23: the command line as a new user meets it ----------------------------------------------------------------


def test_version_prints_the_installed_version() -> None:
    done = run_cli("--version")
    assert (done.returncode, done.stdout) == (0, f"tusserver {importlib.metadata.version('tusserver')}\n")


def test_help_has_no_python_reprs_and_no_broken_words() -> None:
    for command in ([], ["cleanup"]):
        done = run_cli(*command, "--help")
        assert done.returncode == 0
        assert "None" not in done.stdout
        assert "(default: )" not in done.stdout
        assert not [line for line in done.stdout.splitlines() if line.endswith("-")]


def refused(done: subprocess.CompletedProcess[str]) -> str:
    """The one line a server that refused to start wrote (it must have exited non-zero)."""
    assert done.returncode != 0, done.stdout
    lines = [line for line in done.stderr.splitlines() if " INFO " not in line]  # aiobotocore's credential line
    assert len(lines) == 1, done.stderr
    return lines[0]


def test_start_up_fails_fast_when_redis_cannot_be_reached(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    started = time.monotonic()
    done = run_cli("--redis-url", f"redis://:hunter2@127.0.0.1:{port}/0", "--data-dir", str(tmp_path / "data"))
    line = refused(done)
    assert line.startswith(f"tusserver: --redis-url: cannot use Redis at redis://:***@127.0.0.1:{port}/0: ")
    assert "hunter2" not in done.stderr
    assert time.monotonic() - started < 15


def test_start_up_fails_fast_when_the_s3_endpoint_cannot_be_reached(tmp_path: Path) -> None:
    port = free_ports(1)[0]
    flags = ["--storage", "s3", "--s3-bucket", "tus", "--s3-endpoint", f"http://127.0.0.1:{port}"]
    keys = {"AWS_ACCESS_KEY_ID": "a", "AWS_SECRET_ACCESS_KEY": "b", "AWS_DEFAULT_REGION": "us-east-1"}
    done = run_cli(*flags, "--storage-timeout", "2", "--data-dir", str(tmp_path / "data"), env=keys)
    assert refused(done).startswith("tusserver: bucket 'tus': Could not connect to the endpoint URL")


def test_a_second_server_on_the_same_data_directory_refuses_and_says_why(start_server: StartServer) -> None:
    first = start_server()
    done = run_cli("--data-dir", str(first.data_dir), "--port", str(free_ports(1)[0]))
    assert refused(done) == (
        f"tusserver: another tusserver (pid {first.pid}) is using the data directory {first.data_dir}: without "
        "--redis-url its upload locks live in that process, so only one server may use a data directory; stop it, "
        "give this one another --data-dir, or share state and locks with --redis-url"
    )
    assert requests.options(first.url, timeout=IO_TIMEOUT).status_code == 200  # the first one serves on
    first.stop()
    second = start_server("--data-dir", str(first.data_dir))  # its lock went with its process
    assert requests.options(second.url, timeout=IO_TIMEOUT).status_code == 200


def test_servers_sharing_redis_may_share_a_data_directory(start_server: StartServer, redis_server: RedisServer) -> None:
    first = start_server("--redis-url", redis_server.url, "--redis-prefix", "shared-dir:")
    second = start_server("--redis-url", redis_server.url, "--redis-prefix", "shared-dir:", "--data-dir",
                          str(first.data_dir))  # fmt: skip
    assert requests.options(second.url, timeout=IO_TIMEOUT).status_code == 200


def as_another_user(command: list[str]) -> list[str]:
    """`command` run by an unprivileged user when the tests run as root (root writes anywhere)."""
    if os.getuid() != 0:
        return command
    setpriv = shutil.which("setpriv")
    assert setpriv, "setpriv (util-linux) is needed to test permissions as root"
    return [setpriv, "--reuid", "65534", "--regid", "65534", "--clear-groups", *command]


def test_a_data_directory_it_cannot_write_is_one_line_not_a_traceback(tmp_path: Path) -> None:
    """Issue 23 (Docker): a bind-mounted directory owned by another user."""
    parent = tmp_path / "mounted"
    parent.mkdir()
    parent.chmod(0o555)  # nobody may create data/ in it (and root's tests run as nobody)
    tmp_path.chmod(0o755)
    command = as_another_user([*server_command(), "--data-dir", str(parent / "data"), "--port", "0"])
    done = subprocess.run(command, capture_output=True, text=True, timeout=30, env=clean_environ(), check=False)
    uid = 65534 if os.getuid() == 0 else os.getuid()
    assert refused(done) == (
        f"tusserver: cannot write the data directory {parent / 'data'} (Permission denied) as user {uid}: make it "
        f"writable by that user (for a bind mount, `chown {uid}` the host directory), or give another --data-dir"
    )


def test_the_413_of_the_size_limit_carries_tus_max_size(server_with_limit: ServerProcess) -> None:
    response = requests.post(server_with_limit.url, headers=TUS | {"Upload-Length": "1025"}, timeout=IO_TIMEOUT)
    assert (response.status_code, response.headers["Tus-Max-Size"]) == (413, "1024")
    assert response.text == "ERR_MAX_SIZE_EXCEEDED: upload length exceeds the server's maximum size\n"


def test_a_refused_cors_preflight_is_an_error_body(server_with_limit: ServerProcess) -> None:
    headers = {"Origin": "https://elsewhere.example", "Access-Control-Request-Method": "POST"}
    response = requests.options(server_with_limit.url, headers=headers, timeout=IO_TIMEOUT)
    assert response.status_code == 400
    assert response.text == "ERR_CORS_REJECTED: this server does not allow the preflight's origin\n"


@pytest.fixture
def server_with_limit(start_server: StartServer) -> ServerProcess:
    return start_server("--max-size", "1K", "--cors-origins", "https://app.example")


def test_the_503_while_redis_is_down_is_an_error_body(start_server: StartServer, tmp_path: Path) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.directory.mkdir()
    redis.start()
    try:
        server = start_server("--redis-url", redis.url)
    finally:
        redis.stop()
    response = requests.post(server.url, headers=TUS | {"Upload-Length": "5"}, timeout=60)
    assert (response.status_code, response.headers["Retry-After"]) == (503, "1")
    code, reason = response.text.rstrip("\n").split(": ", 1)
    assert (code, reason.startswith("the state store is unreachable")) == ("ERR_SERVICE_UNAVAILABLE", True)


# --- a Redis that answers PING but refuses writes: refused at start-up, with Redis's reason ---------------------------


def replica_of_another(redis: Redis, other: RedisServer) -> None:
    """A replica reached directly (replica-read-only is on by default)."""
    redis.replicaof("127.0.0.1", other.port)


def without_enough_replicas(redis: Redis, other: RedisServer) -> None:
    redis.config_set("min-replicas-to-write", 1)


def after_a_failed_save(redis: Redis, other: RedisServer) -> None:
    """MISCONF: a save point is set and the last background save failed. Its directory is gone (`dir` is a
    protected setting, and root writes anywhere): Redis cannot create the temporary file there."""
    directory = redis.config_get("dir")["dir"]
    assert directory
    shutil.rmtree(directory)
    redis.config_set("save", "3600 1")
    redis.bgsave()
    wait_until_true(lambda: redis.info("persistence")["rdb_last_bgsave_status"] == "err", "the save to fail")


def as_a_read_only_user(redis: Redis, other: RedisServer) -> None:
    redis.acl_setuser("reader", enabled=True, passwords=["+secret"], keys=["*"], commands=["+@read", "+ping"])


def wait_until_true(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + 10
    while not check():
        assert time.monotonic() < deadline, f"waited 10 s for {what}"
        time.sleep(0.05)


REFUSES = "Redis at {url} refuses writes"  # the write check's words: PING answered
CANNOT = "cannot use Redis at {url}"  # the PING's: Redis refuses even PING after a failed save


@pytest.mark.parametrize(
    ("breakage", "user", "failure", "reason"),
    [
        (replica_of_another, "", REFUSES, r"READONLY You can't write against a read only replica\."),
        (without_enough_replicas, "", REFUSES, r"NOREPLICAS Not enough good replicas to write\."),
        (after_a_failed_save, "", CANNOT, r"MISCONF Redis is configured to save RDB snapshots, but it's .*"),
        (as_a_read_only_user, "reader:secret@", REFUSES, r"NOPERM .* no permissions to run the 'set' command"),
    ],
    ids=["replica", "min-replicas", "misconf", "acl"],
)
def test_start_up_fails_fast_when_redis_refuses_writes(
    breakage: Callable[[Redis, RedisServer], None],
    user: str,
    failure: str,
    reason: str,
    redis_server: RedisServer,
    tmp_path: Path,
) -> None:
    redis = RedisServer(tmp_path / "redis")
    redis.directory.mkdir()
    redis.start()
    try:
        with Redis.from_url(redis.url) as client:
            breakage(client, redis_server)
        url = redis.url.replace("redis://", f"redis://{user}")
        done = run_cli("--redis-url", url, "--data-dir", str(tmp_path / "data"))
    finally:
        redis.stop()
    said = failure.format(url=re.escape(url.replace(":secret@", ":***@")))
    assert re.fullmatch(f"tusserver: --redis-url: {said}: {reason}", refused(done))
    assert "secret" not in done.stderr

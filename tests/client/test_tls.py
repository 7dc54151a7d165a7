"""The client over TLS and without it: https:// servers are verified (against `SSL_CERT_FILE` here, a self-signed
certificate for 127.0.0.1), and an http:// server needs no certificates at all (`session._TransportPerScheme`)."""

from __future__ import annotations

import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.e2e.helpers import ServerProcess, random_file
from tests.server_process import free_ports, wait_until
from tests.tls import self_signed_certificate
from tusserver.client import RetryPolicy, TransferError, TransferOptions, TusClient

MiB = 1024 * 1024
# tusserver's app on uvicorn's own TLS (the command has no TLS options: a proxy usually terminates it).
SERVE = (
    "import sys, uvicorn; from tusserver import Settings, create_app; "
    "uvicorn.run(create_app(Settings(data_dir=sys.argv[1])), host='127.0.0.1', port=int(sys.argv[2]), "
    "ssl_certfile=sys.argv[3], ssl_keyfile=sys.argv[4], log_level='warning')"
)


@pytest.fixture(scope="module")
def tls_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """(the creation URL of a tusserver served over https, its certificate)."""
    directory = tmp_path_factory.mktemp("tls")
    cert, key = self_signed_certificate(directory)
    port = free_ports(1)[0]
    command = [sys.executable, "-c", SERVE, str(directory / "data"), str(port), str(cert), str(key)]
    url = f"https://127.0.0.1:{port}/files/"

    def answers() -> bool:
        try:
            requests.options(url, verify=str(cert), timeout=1)
        except requests.ConnectionError:
            return False
        return True

    with subprocess.Popen(command) as process:
        wait_until(answers, process, "the TLS server", 20)
        try:
            yield url, cert
        finally:
            process.terminate()
            process.wait(10)


def test_an_https_server_is_verified_and_its_uploads_arrive_byte_exact(
    tls_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, cert = tls_server
    source = random_file(tmp_path / "secret.bin", 3 * MiB + 5)
    monkeypatch.setenv("SSL_CERT_FILE", str(cert))
    with TusClient(TransferOptions(chunk_size=MiB)) as client:
        result = client.upload(source, url)
        client.download(result.url, tmp_path / "back.bin")
    assert (tmp_path / "back.bin").read_bytes() == source.read_bytes()


def test_an_https_server_whose_certificate_is_not_trusted_is_refused(
    tls_server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url, _ = tls_server
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)
    options = TransferOptions(retry=RetryPolicy(retries=0))
    with TusClient(options) as client, pytest.raises(TransferError, match="CERTIFICATE_VERIFY_FAILED"):
        client.upload(random_file(tmp_path / "file.bin", 1000), url)


def test_an_http_server_needs_no_certificates(
    tus_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No verifying TLS context is made (reading the CA bundle fails here, as on a machine without one)."""

    def no_ca_bundle(*args: object, **kwargs: object) -> ssl.SSLContext:
        raise ssl.SSLError("no CA bundle here")

    monkeypatch.setattr(ssl, "create_default_context", no_ca_bundle)
    source = random_file(tmp_path / "plain.bin", MiB)
    with TusClient() as client:
        result = client.upload(source, tus_server.url)
    assert result.length == MiB


def test_the_environments_proxy_is_honoured(
    tus_server: ServerProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HTTP_PROXY (here a port nobody listens on) takes the requests, as httpx's own transports do."""
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{free_ports(1)[0]}")
    monkeypatch.delenv("NO_PROXY", raising=False)
    monkeypatch.delenv("no_proxy", raising=False)
    with TusClient(TransferOptions(retry=RetryPolicy(retries=0))) as client, pytest.raises(TransferError):
        client.upload(random_file(tmp_path / "file.bin", 1000), tus_server.url)

"""The README's blocks that install tusserver or point it at a cloud account, run as written against local
stand-ins (issue 23 item 9): the Quickstart's install line, in a fresh virtual environment made in a copy of
the sources (pip fetches the dependencies from the index, as a user's does); "S3 storage" on moto, reached
through AWS_ENDPOINT_URL; and the connection-string line of "Azure Blob storage" on Azurite, through
AZURE_STORAGE_CONNECTION_STRING. tusserver's default port 8080 is replaced by TUSSERVER_PORT, `./data` by
TUSSERVER_DATA_DIR; other replacements are said where they are made."""

from __future__ import annotations

import shutil
from pathlib import Path

import boto3
import pytest
import requests
from azure.storage.blob import BlobServiceClient

from tests.azure_server import Azurite, create_container
from tests.e2e.helpers import IO_TIMEOUT, TUS, upload_id, wait_until
from tests.e2e.test_readme_e2e import answers, blocks, section, started, stop_group
from tests.s3_server import ACCESS_KEY, REGION, SECRET_KEY, MotoS3, client_config, create_bucket
from tests.server_process import free_ports

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).parents[2]
SOURCES = ["pyproject.toml", "README.md", "LICENSE", "tusserver", "storage_backends"]  # what `pip install .` needs
BODY = b"hello, stand-in"


class Running:
    """A README line that serves, run by bash on a free port; `stop` ends it."""

    def __init__(self, script: str, cwd: Path, **environ: str) -> None:
        self.port = free_ports(1)[0]
        self.log = cwd / "block.log"
        environ = {"TUSSERVER_PORT": str(self.port), "TUSSERVER_DATA_DIR": str(cwd / "data"), **environ}
        self.process = started(script, cwd, self.log, **environ)
        self.endpoint = f"http://127.0.0.1:{self.port}/files/"

    def wait_ready(self, timeout: float = 30) -> None:
        wait_until(answers(self.endpoint), what=f"tusserver:\n{self.log.read_text()}", timeout=timeout)

    def upload(self) -> str:
        """Create an upload with BODY in its POST (creation-with-upload); its upload id."""
        headers = TUS | {"Upload-Length": str(len(BODY)), "Content-Type": "application/offset+octet-stream"}
        created = requests.post(self.endpoint, headers=headers, data=BODY, timeout=IO_TIMEOUT)
        assert (created.status_code, created.headers.get("Upload-Offset")) == (201, str(len(BODY))), created.text
        return upload_id(created.headers["Location"])

    def stop(self) -> None:
        stop_group(self.process)


@pytest.mark.timeout(300)
def test_quickstart_install_line_serves(tmp_path: Path) -> None:
    (line,) = blocks(section("Quickstart"), "sh")[0].strip().splitlines()
    assert ".venv/bin/pip install ." in line
    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, checkout / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(ROOT / name, checkout / name)
    server = Running(line, checkout)
    try:
        server.wait_ready(timeout=240)  # pip installs the dependencies first
        assert (checkout / "data" / "uploads" / server.upload()).read_bytes() == BODY
    finally:
        server.stop()
    assert (checkout / ".venv" / "bin" / "tusserver").exists()  # the fresh environment's, not this one's


@pytest.fixture(scope="module")
def readme_bucket(moto_s3: MotoS3) -> str:
    """The README's bucket, `my-uploads`, on the session's moto (which accepts any key, as the block's `...`)."""
    create_bucket(moto_s3.endpoint, "my-uploads")
    return "my-uploads"


def object_in(moto_s3: MotoS3, bucket: str, key: str) -> bytes:
    client = boto3.client(
        "s3",
        endpoint_url=moto_s3.endpoint,
        region_name=REGION,
        aws_access_key_id=ACCESS_KEY,
        aws_secret_access_key=SECRET_KEY,
        config=client_config(),
    )
    try:
        body: bytes = client.get_object(Bucket=bucket, Key=key)["Body"].read()
        return body
    finally:
        client.close()


def s3_lines() -> tuple[str, str, str, str]:
    install, credentials, on_aws, elsewhere = blocks(section("S3 storage"), "sh")[0].strip().splitlines()
    return install, credentials, on_aws, elsewhere


def offline_pip(tmp_path: Path) -> dict[str, str]:
    """The block's `pip install 'tusserver[s3]'` runs with this environment's pip, offline: the tusserver installed
    here (the checkout) satisfies it when the extra exists and its packages are installed. That PyPI serves
    tusserver is not what this tests."""
    return {"PIP_NO_INDEX": "1", "PIP_CACHE_DIR": str(tmp_path / "pip-cache")}


def test_s3_block_on_aws_line_through_aws_endpoint_url(moto_s3: MotoS3, readme_bucket: str, tmp_path: Path) -> None:
    install, credentials, on_aws, _ = s3_lines()
    server = Running("\n".join([install, credentials, on_aws]), tmp_path, AWS_ENDPOINT_URL=moto_s3.endpoint,
                     **offline_pip(tmp_path))  # fmt: skip
    try:
        server.wait_ready()
        key = server.upload()
    finally:
        server.stop()
    log = server.log.read_text()
    assert "Requirement already satisfied: tusserver[s3]" in log, log
    assert "does not provide the extra" not in log
    assert object_in(moto_s3, readme_bucket, f"tus/{key}") == BODY  # --s3-prefix tus/


def test_s3_block_s3_compatible_line(moto_s3: MotoS3, readme_bucket: str, tmp_path: Path) -> None:
    install, credentials, _, elsewhere = s3_lines()
    # The README's S3 server on 127.0.0.1:8333 is moto on its free port, and the bucket placeholder `B` the
    # README's bucket; no AWS_ENDPOINT_URL: the line's own --s3-endpoint reaches it.
    assert "--s3-bucket B --s3-endpoint http://127.0.0.1:8333" in elsewhere
    elsewhere = elsewhere.replace("127.0.0.1:8333", f"127.0.0.1:{moto_s3.port}")
    elsewhere = elsewhere.replace("--s3-bucket B ", f"--s3-bucket {readme_bucket} ")
    server = Running("\n".join([install, credentials, elsewhere]), tmp_path, **offline_pip(tmp_path))
    try:
        server.wait_ready()
        key = server.upload()
    finally:
        server.stop()
    assert object_in(moto_s3, readme_bucket, key) == BODY


def test_azure_block_connection_string_line(azurite: Azurite, tmp_path: Path) -> None:
    """The first two lines of the block; the third (`--azure-account-url https://ACCOUNT.blob.core.windows.net`,
    with DefaultAzureCredential) is run by tests/e2e/test_azure_entra.py, on Azurite's OAuth mode."""
    install, connection_string_line, account_url_line = (
        blocks(section("Azure Blob storage"), "sh")[0].strip().splitlines()
    )
    assert "ACCOUNT.blob.core.windows.net" in account_url_line
    create_container(azurite.connection_string, "uploads")  # the README's container
    server = Running("\n".join([install, connection_string_line]), tmp_path,
                     AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string, **offline_pip(tmp_path))  # fmt: skip
    try:
        server.wait_ready()
        name = server.upload()
    finally:
        server.stop()
    assert "Requirement already satisfied: tusserver[azure]" in server.log.read_text()
    with BlobServiceClient.from_connection_string(azurite.connection_string) as service:
        assert service.get_blob_client("uploads", name).download_blob().readall() == BODY

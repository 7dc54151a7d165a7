"""One Azurite (the Azure Blob emulator, in memory) for bench/azure_blob.py.

Like tests/azure_server.py's `Azurite` (the same pinned npm package, installed by `.ci/test` or
`cd tests/azurite && npm ci`), started in its own process group, with what the harness needs: the container,
verification by GET, and clean-up by prefix, on the synchronous SDK (untimed work only).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import xxhash
from azure.storage.blob import BlobServiceClient, ContainerClient
from seaweed import HOST, free_ports
from store_process import stop_group, wait_until_answering

PACKAGE = Path(__file__).resolve().parent.parent / "tests" / "azurite" / "node_modules" / "azurite"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public: every Azurite accepts it, no Azure account does).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
READ_BLOCK = 8 << 20


@dataclass
class Azurite:
    """A running Azurite blob service on a free port, blobs in memory; `stop()` ends its process group."""

    directory: Path
    container: str = "bench"
    port: int = 0
    process: subprocess.Popen[bytes] | None = None
    _log: IO[bytes] | None = field(default=None, repr=False)
    _client: BlobServiceClient | None = field(default=None, repr=False)

    @property
    def account_url(self) -> str:
        return f"http://{HOST}:{self.port}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def version(self) -> str:
        package = json.loads((PACKAGE / "package.json").read_text())
        node = subprocess.run(["node", "--version"], capture_output=True, text=True, check=False).stdout.strip()
        return f"Azurite {package['version']} (in memory) on Node {node}"

    def start(self) -> None:
        """Start, wait until the blob service answers, and create the container."""
        main = PACKAGE / "dist" / "src" / "blob" / "main.js"
        if not main.exists():
            raise RuntimeError(f"{main} is missing (cd tests/azurite && npm ci)")
        self.port = free_ports(1)[0]
        self.directory.mkdir(parents=True, exist_ok=True)
        command = [shutil.which("node") or "node", str(main), "--blobHost", HOST, "--blobPort", str(self.port),
                   "--inMemoryPersistence", "--skipApiVersionCheck", "--loose", "--silent",
                   "--disableTelemetry"]  # fmt: skip
        self._log = (self.directory / "azurite.log").open("ab")
        self.process = subprocess.Popen(
            command, cwd=self.directory, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        try:
            self._wait_ready()
            self.client().create_container(self.container)
        except BaseException:
            self.stop()
            raise

    def restart(self) -> None:
        """Stop and start again, empty (a new port; the connection string follows it)."""
        self.stop()
        self.start()

    def _wait_ready(self) -> None:
        assert self.process is not None
        url = f"{self.account_url}?comp=list"
        wait_until_answering(lambda: _answers(url), self.process, "Azurite", self.directory / "azurite.log")

    def stop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None
        stop_group(self.process)
        if self._log is not None:
            self._log.close()
            self._log = None

    def client(self) -> BlobServiceClient:
        if self._client is None:
            self._client = BlobServiceClient.from_connection_string(self.connection_string)
        return self._client

    def blobs(self) -> ContainerClient:
        return self.client().get_container_client(self.container)

    def digest(self, name: str) -> tuple[int, str]:
        """(size, xxh128 hex) of blob `name`, read back with GETs."""
        digest, size = xxhash.xxh3_128(), 0
        for block in self.blobs().download_blob(name, max_concurrency=1).chunks():
            digest.update(block)
            size += len(block)
        return size, digest.hexdigest()


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # 403: up, and refusing an unsigned request
    except OSError:
        return False

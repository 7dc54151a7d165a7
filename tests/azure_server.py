"""A real Azurite (the Azure Blob emulator, npm `azurite` pinned in tests/azurite) on a free loopback port,
for the tests and the bench (SERVICES.md §3).

3.37 is the first version with Put Block From URL (concatenation inside the store). It declares Node 22 but
runs on the Node 20 of these machines; `--skipApiVersionCheck` lets azure-storage-blob use its newest API
version, which Azurite does not know yet. Blobs live in memory: nothing outlives the process.
"""

from __future__ import annotations

import shutil
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from tests.server_process import ServerProcess, free_ports

AZURITE = Path(__file__).parent / "azurite" / "node_modules" / "azurite" / "dist" / "src" / "blob" / "main.js"
ACCOUNT = "devstoreaccount1"
# Azurite's well-known development key (public: every Azurite accepts it, no Azure account does).
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


@dataclass
class Azurite(ServerProcess):
    """A running Azurite blob service, in memory, logging to its directory."""

    name: ClassVar[str] = "azurite"

    @property
    def account_url(self) -> str:
        return f"{self.endpoint}/{ACCOUNT}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.account_url};"
        )

    def start(self) -> None:
        """Start and wait until the blob service answers (any HTTP status: an unsigned request gets 403)."""
        node = shutil.which("node")
        assert node, "node is not installed (Node 20 or newer)"
        assert AZURITE.exists(), f"{AZURITE} is missing (cd tests/azurite && npm ci; .ci/test does it)"
        self.port = self.port or free_ports(1)[0]
        command = [node, str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
                   "--skipApiVersionCheck", "--loose", "--silent", "--disableTelemetry"]  # fmt: skip
        self._spawn(command, lambda: _answers(f"{self.account_url}?comp=list"), timeout=30)


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1):
            return True
    except urllib.error.HTTPError:
        return True  # 403: up, and refusing an unsigned request
    except OSError:
        return False


def create_container(connection_string: str, name: str) -> None:
    """Create container `name` (sync client: fixtures run outside the event loop)."""
    from azure.storage.blob import BlobServiceClient  # noqa: PLC0415 (the Azure SDK only where Azure is tested)

    with BlobServiceClient.from_connection_string(connection_string) as service:
        service.create_container(name)

"""A real Azurite (the Azure Blob emulator, npm `azurite` pinned in tests/azurite) on a free loopback port,
for the tests and the bench (SERVICES.md §3).

3.37 is the first version with Put Block From URL (concatenation inside the store). It declares Node 22 but
runs on the Node 20 of these machines; `--skipApiVersionCheck` lets azure-storage-blob use its newest API
version, which Azurite does not know yet. Blobs live in memory: nothing outlives the process.
"""

from __future__ import annotations

import shutil
import ssl
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


@dataclass
class OAuthAzurite(Azurite):
    """An Azurite that also takes Entra ID bearer tokens (`--oauth basic`, which needs HTTPS: `--cert`/`--key`,
    e.g. tests/tls.py's self-signed certificate). It checks a token's issuer (https://sts.windows.net/... and a
    few other clouds' prefixes), audience (https://storage.azure.com, https://ACCOUNT.blob.core.windows.net, ...)
    and lifetime (nbf, exp, iat must be there), not its signature nor any role; Get User Delegation Key takes
    the token's `oid` and `tid`, and user delegation SAS signatures are checked. The access log stays on (no
    `--silent`): tests read which requests Azurite got, SAS query strings included, in `log_path`."""

    cert: Path | None = None
    key: Path | None = None

    @property
    def endpoint(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def connection_string(self) -> str:
        return super().connection_string.replace("DefaultEndpointsProtocol=http;", "DefaultEndpointsProtocol=https;")

    def start(self) -> None:
        node = shutil.which("node")
        assert node, "node is not installed (Node 20 or newer)"
        assert AZURITE.exists(), f"{AZURITE} is missing (cd tests/azurite && npm ci; .ci/test does it)"
        assert self.cert is not None, "OAuthAzurite needs a certificate"
        assert self.key is not None, "OAuthAzurite needs the certificate's key"
        self.port = self.port or free_ports(1)[0]
        command = [node, str(AZURITE), "--blobHost", "127.0.0.1", "--blobPort", str(self.port), "--inMemoryPersistence",
                   "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--oauth", "basic",
                   "--cert", str(self.cert), "--key", str(self.key)]  # fmt: skip
        context = ssl.create_default_context(cafile=str(self.cert))
        self._spawn(command, lambda: _answers(f"{self.account_url}?comp=list", context), timeout=30)


def _answers(url: str, context: ssl.SSLContext | None = None) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1, context=context):
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

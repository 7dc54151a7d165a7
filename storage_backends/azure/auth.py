"""Connecting to Azure Blob Storage and signing what Azure reads itself (Put Block From URL sources).

Credentials, in the order the options are checked:
- a connection string (an account key or a SAS inside it; Azurite's well-known one in development);
- an account URL with an account key;
- an account URL with a SAS token (it must allow read, write, delete, list and, for concatenation, reading
  the partial uploads' blobs);
- an account URL alone: `DefaultAzureCredential` (Entra ID: environment, workload or managed identity,
  the Azure CLI's login), from azure-identity.

Proxies: the environment's (HTTPS_PROXY, HTTP_PROXY, NO_PROXY) are read once, when the client is made, and
given to it; the SDK's own reading of them (aiohttp's `trust_env`) costs a thread hop and a read of ~/.netrc on
every call, half the CPU of a small one (BENCHMARKS.md, "Azure Blob").

Put Block From URL makes Azure read the source itself, so the source URL carries a short-lived read SAS:
signed with the account key, or with a user delegation key when the credential is Entra ID, or the
configured SAS token itself.
"""

from __future__ import annotations

import ipaddress
import urllib.request
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import anyio
from azure.storage.blob import BlobSasPermissions, UserDelegationKey, generate_blob_sas
from azure.storage.blob.aio import BlobClient, BlobServiceClient

__all__ = ["Credentials", "SourceSigner", "account_name_of", "proxies_for"]

SAS_LIFETIME = timedelta(hours=1)  # long enough for the largest copy, short enough to be worthless soon after
_CLOCK_SKEW = timedelta(minutes=5)  # a SAS starts a little in the past: Azure's clock may run behind ours


def account_name_of(account_url: str) -> str:
    """The storage account in `account_url`: its first host label (`https://NAME.blob.core.windows.net`), or
    its first path segment for an emulator addressed by IP or localhost (`http://127.0.0.1:10000/NAME`)."""
    parts = urlsplit(account_url)
    host = parts.hostname or ""
    try:
        ipaddress.ip_address(host)
        by_path = True
    except ValueError:
        by_path = host == "localhost"
    return parts.path.strip("/").split("/")[0] if by_path else host.split(".")[0]


class Credentials:
    """How to reach the account: see the module docstring. `client(**options)` builds the async service client;
    `aclose` closes a DefaultAzureCredential it made."""

    def __init__(
        self,
        *,
        connection_string: str | None = None,
        account_url: str | None = None,
        account_key: str | None = None,
        sas_token: str | None = None,
    ) -> None:
        if (connection_string is None) == (account_url is None):
            raise ValueError("Azure storage needs a connection string or an account URL (one of them)")
        if account_key is not None and sas_token is not None:
            raise ValueError("give an Azure account key or a SAS token, not both")
        self.connection_string, self.account_url = connection_string, account_url
        self.account_key, self.sas_token = account_key, sas_token
        self._token_credential: Any = None

    def client(self, **options: Any) -> BlobServiceClient:
        """A new service client with `options` (retries, timeouts, transfer sizes), and the environment's proxy
        for its URL, if any."""
        client = self._client(use_env_settings=False, **options)
        proxies = proxies_for(client.url)
        return self._client(use_env_settings=False, proxies=proxies, **options) if proxies else client

    def _client(self, **options: Any) -> BlobServiceClient:
        if self.connection_string is not None:
            return BlobServiceClient.from_connection_string(self.connection_string, **options)
        assert self.account_url is not None
        credential: Any
        if self.account_key is not None:
            credential = {"account_name": account_name_of(self.account_url), "account_key": self.account_key}
        elif self.sas_token is not None:
            credential = self.sas_token.lstrip("?")
        else:
            from azure.identity.aio import DefaultAzureCredential  # noqa: PLC0415 (only for Entra ID)

            credential = self._token_credential = DefaultAzureCredential()
        return BlobServiceClient(self.account_url, credential=credential, **options)

    async def aclose(self) -> None:
        if self._token_credential is not None:
            await self._token_credential.close()
            self._token_credential = None


def proxies_for(url: str) -> dict[str, str]:
    """The proxy the environment names for `url` ({scheme: proxy URL}), or none (NO_PROXY names its host)."""
    parts = urlsplit(url)
    proxy = urllib.request.getproxies().get(parts.scheme)
    if proxy is None or urllib.request.proxy_bypass(parts.hostname or ""):
        return {}
    return {parts.scheme: proxy}


class SourceSigner:
    """Read URLs of blobs, for Azure to read them itself (Put Block From URL)."""

    def __init__(self, service: BlobServiceClient) -> None:
        self.service = service
        self._delegation: tuple[UserDelegationKey, datetime] | None = None
        self._fetching = anyio.Lock()  # a join copies blocks at once: they wait for one key, not fetch one each

    async def url(self, blob: BlobClient) -> str:
        """`blob`'s URL with a read SAS valid for `SAS_LIFETIME` (or the client's own SAS, which its URL holds)."""
        credential = self.service.credential
        now = datetime.now(UTC)
        account_key = getattr(credential, "account_key", None)
        if account_key is not None:
            sas = generate_blob_sas(
                self.service.account_name or "", blob.container_name, blob.blob_name, account_key=account_key,
                permission=BlobSasPermissions(read=True), start=now - _CLOCK_SKEW, expiry=now + SAS_LIFETIME,
            )  # fmt: skip
        elif credential is not None and hasattr(credential, "get_token"):  # Entra ID: a user delegation SAS
            sas = generate_blob_sas(
                self.service.account_name or "", blob.container_name, blob.blob_name,
                user_delegation_key=await self._delegation_key(now), permission=BlobSasPermissions(read=True),
                start=now - _CLOCK_SKEW, expiry=now + SAS_LIFETIME,
            )  # fmt: skip
        else:
            return blob.url  # a SAS credential: the URL carries it
        return f"{blob.url}?{sas}"

    async def _delegation_key(self, now: datetime) -> UserDelegationKey:
        """A user delegation key valid for at least another `SAS_LIFETIME`, fetched once every few hours."""
        async with self._fetching:
            if self._delegation is None or self._delegation[1] < now + SAS_LIFETIME:
                expiry = now + 4 * SAS_LIFETIME
                key = await self.service.get_user_delegation_key(now - _CLOCK_SKEW, expiry)
                self._delegation = (key, expiry)
            return self._delegation[0]

"""How the Azure backend is configured (`AzureOptions`), checked when it is built."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from storage_backends.azure.auth import Credentials
from storage_backends.azure.calls import DEFAULT_TIMEOUT
from storage_backends.azure.layout import MAX_BLOB_SIZE, MAX_BLOCK_SIZE, MAX_BLOCKS
from storage_backends.pieces import MiB

__all__ = ["AzureOptions"]

_PREFIX = re.compile(r"[A-Za-z0-9!_.*'()/-]*")


@dataclass(frozen=True)
class AzureOptions:
    """Where and how uploads are stored in Azure Blob Storage.

    Attributes:
        container: an existing container.
        prefix: prepended to every blob name (e.g. "uploads/").
        connection_string: an account's connection string (with an account key or a SAS).
        account_url: the account's blob endpoint (https://NAME.blob.core.windows.net), instead of a
            connection string; with `account_key`, `sas_token`, or neither for DefaultAzureCredential.
        account_key: the account's shared key.
        sas_token: a SAS token for the account or container.
        block_size: the preferred block size; larger for uploads that would need over 50,000 blocks.
        deferred_block_size: the block size of deferred-length uploads, which caps them at 50,000 times it.
        buffer_budget: bytes all requests together may buffer in blocks.
        block_concurrency: blocks one request stages at once.
        timeout: seconds Azure may take to connect or between two reads of an answer; each call's whole
            deadline adds the time its bytes take at a minimum rate. A call past it fails as unavailable (503).
    """

    container: str
    prefix: str = ""
    connection_string: str | None = field(default=None, repr=False)
    account_url: str | None = None
    account_key: str | None = field(default=None, repr=False)
    sas_token: str | None = field(default=None, repr=False)
    block_size: int = 8 * MiB
    deferred_block_size: int = 16 * MiB
    buffer_budget: int = 256 * MiB
    block_concurrency: int = 4
    timeout: float = DEFAULT_TIMEOUT

    def __post_init__(self) -> None:
        if not _PREFIX.fullmatch(self.prefix) or self.prefix.startswith("/") or ".." in self.prefix:
            raise ValueError(f"unsafe Azure blob name prefix {self.prefix!r}")
        for size in (self.block_size, self.deferred_block_size):
            if not 1 <= size <= MAX_BLOCK_SIZE:
                raise ValueError(f"an Azure block holds 1 to {MAX_BLOCK_SIZE} bytes, not {size}")
        if self.block_concurrency < 1:
            raise ValueError("block_concurrency must be at least 1")

    @property
    def max_deferred_length(self) -> int:
        return min(self.deferred_block_size * MAX_BLOCKS, MAX_BLOB_SIZE)

    def credentials(self) -> Credentials:
        return Credentials(
            connection_string=self.connection_string,
            account_url=self.account_url,
            account_key=self.account_key,
            sas_token=self.sas_token,
        )

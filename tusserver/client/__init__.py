"""A tus 1.0 client: resumable, parallel uploads and verified, resumable downloads, from sync or async code.

Needs the `client` extra (`pip install 'tusserver[client]'`: httpx). Works with any tus 1.0 server; uses
concatenation for parallel streams where the server offers it, and one stream where it does not.

    from tusserver.client import TransferOptions, TusClient, ResumeStore

    with TusClient(TransferOptions(parallel=4), store=ResumeStore()) as client:
        result = client.upload("genome.fastq.gz", "http://127.0.0.1:8080/files/")
        client.download(result.url, "copy.fastq.gz")
"""

from tusserver.client.client import AsyncTusClient
from tusserver.client.downloads import DownloadResult
from tusserver.client.errors import (
    BatchError,
    CapabilityError,
    DigestMismatchError,
    ExtraMissingError,
    FileChangedError,
    TransferError,
    TusClientError,
    UploadGoneError,
)
from tusserver.client.files import Source, collect
from tusserver.client.options import ProgressCallback, TransferOptions
from tusserver.client.session import RetryPolicy
from tusserver.client.store import ResumeStore
from tusserver.client.sync import TusClient
from tusserver.client.uploads import UploadResult

__all__ = [
    "AsyncTusClient",
    "BatchError",
    "CapabilityError",
    "DigestMismatchError",
    "DownloadResult",
    "ExtraMissingError",
    "FileChangedError",
    "ProgressCallback",
    "ResumeStore",
    "RetryPolicy",
    "Source",
    "TransferError",
    "TransferOptions",
    "TusClient",
    "TusClientError",
    "UploadGoneError",
    "UploadResult",
    "collect",
]

"""The pure tus 1.0 core: header parsing, decisions and response building; no I/O at all."""

from tusserver.protocol import errors, headers, responses, rules
from tusserver.protocol.model import OFFSET_OCTET_STREAM, TUS_RESUMABLE, TUS_VERSION, Extension, UploadInfo

__all__ = [
    "OFFSET_OCTET_STREAM",
    "TUS_RESUMABLE",
    "TUS_VERSION",
    "Extension",
    "UploadInfo",
    "errors",
    "headers",
    "responses",
    "rules",
]

"""tusserver: a tus 1.0 resumable upload server as a Starlette ASGI app."""

from tusserver.app import create_app
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import (
    HookChangeFileInfo,
    HookHTTPResponse,
    HookPrincipal,
    HookRequest,
    HookResponse,
)
from tusserver.coordination.locking import Locker, MemoryLocker
from tusserver.coordination.state import MemoryStateStore, SQLiteStateStore, UploadStateStore
from tusserver.protocol import errors
from tusserver.protocol.errors import TusError
from tusserver.protocol.principals import Principal
from tusserver.settings import Settings

__all__ = [
    "HookChangeFileInfo",
    "HookEvent",
    "HookHTTPResponse",
    "HookPrincipal",
    "HookRequest",
    "HookResponse",
    "Locker",
    "MemoryLocker",
    "MemoryStateStore",
    "Principal",
    "SQLiteStateStore",
    "Settings",
    "TusError",
    "UploadStateStore",
    "create_app",
    "errors",
]

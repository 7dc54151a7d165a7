"""tusserver: a tus 1.0 resumable upload server as a Starlette ASGI app.

The names below are imported when first used (PEP 562), not with the package: every module of `tusserver`
imports this file first, and the client (`tusserver upload`, `tusserver.client`) must not pay for the server's
Starlette, storage and hook modules it never runs (about 0.2 s of `tusserver upload`'s 0.5 s start-up).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # what mypy and editors see; at run time `__getattr__` imports them
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

_MODULES = {
    "create_app": "tusserver.app",
    "HookEvent": "tusserver.coordination.hooks.events",
    "HookChangeFileInfo": "tusserver.coordination.hooks.model",
    "HookHTTPResponse": "tusserver.coordination.hooks.model",
    "HookPrincipal": "tusserver.coordination.hooks.model",
    "HookRequest": "tusserver.coordination.hooks.model",
    "HookResponse": "tusserver.coordination.hooks.model",
    "Locker": "tusserver.coordination.locking",
    "MemoryLocker": "tusserver.coordination.locking",
    "MemoryStateStore": "tusserver.coordination.state",
    "SQLiteStateStore": "tusserver.coordination.state",
    "UploadStateStore": "tusserver.coordination.state",
    "errors": "tusserver.protocol",
    "TusError": "tusserver.protocol.errors",
    "Principal": "tusserver.protocol.principals",
    "Settings": "tusserver.settings",
}


def __getattr__(name: str) -> object:
    """`tusserver.create_app` and the other exports, imported on first use and then kept as attributes."""
    module = _MODULES.get(name)
    if module is None:
        raise AttributeError(f"module 'tusserver' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value

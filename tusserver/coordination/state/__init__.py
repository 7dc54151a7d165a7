"""Upload state stores: the contract and its implementations."""

from tusserver.coordination.state.base import UploadStateStore
from tusserver.coordination.state.memory import MemoryStateStore
from tusserver.coordination.state.sqlite import SQLiteStateStore

__all__ = ["MemoryStateStore", "SQLiteStateStore", "UploadStateStore"]

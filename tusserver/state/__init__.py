"""Upload state stores: the contract and its implementations."""

from tusserver.state.base import UploadStateStore
from tusserver.state.memory import MemoryStateStore
from tusserver.state.sqlite import SQLiteStateStore

__all__ = ["MemoryStateStore", "SQLiteStateStore", "UploadStateStore"]

"""Upload state stores: the contract and its implementations, and the hook outbox they keep."""

from tusserver.coordination.state.base import SupportsListing, SupportsOutbox, UploadStateStore
from tusserver.coordination.state.memory import MemoryStateStore
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.coordination.state.sqlite import SQLiteStateStore

__all__ = [
    "MemoryStateStore",
    "OutboxEvent",
    "SQLiteStateStore",
    "SupportsListing",
    "SupportsOutbox",
    "UploadStateStore",
]

"""What one Azure storage remembers of the tails it wrote, to spare a PATCH two round trips to Azure.

- **Recent tails** (`recall`): a PATCH starts by reading the tail its upload's record names, which is most often
  the one the previous PATCH wrote, on this same server. A tail's name is unique (its writer's token and its
  length) and a tail never changes once written, so a copy kept here is always what Azure holds, for as long as
  the tail exists; small ones only (a header, and a tail under 1 MiB), the last `RECENT` of them.
- **Doomed tails** (`doom`): a tail the record no longer names is deleted later, in the background of an
  append, `BATCH` at a time in one batch request (at close, all of them), rather than one Delete Blob before
  each PATCH's answer (a third of a small PATCH's CPU). Best effort, as `discard` always is: an upload's
  tails all go when it is finished or deleted, and what a crash leaves, the sweep removes.
"""

from __future__ import annotations

from collections import OrderedDict

__all__ = ["BATCH", "RECENT", "SMALL", "TailKeeper"]

RECENT = 256  # tails remembered: a few per upload in progress
SMALL = 1024 * 1024  # bytes of a tail worth remembering
BATCH = 16  # doomed tails deleted in one batch request by an append (a request per tail costs 5 times more)
DOOMED = 256  # tails waiting for deletion, beyond which `doom` asks for a flush now (Azure's batch limit)


class TailKeeper:
    """Recently written small tails by name, and tails to delete."""

    def __init__(self) -> None:
        self._recent: OrderedDict[str, bytes] = OrderedDict()
        self._doomed: list[str] = []

    def remember(self, name: str, data: bytes) -> None:
        if len(data) <= SMALL:
            self._recent[name] = data
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)

    def recall(self, name: str) -> bytes | None:
        return self._recent.get(name)

    def forget(self, name: str) -> None:
        self._recent.pop(name, None)

    def doom(self, name: str) -> bool:
        """Mark tail `name` for deletion; True once enough wait that the caller should delete them now."""
        self.forget(name)
        self._doomed.append(name)
        return len(self._doomed) >= DOOMED

    def doomed(self) -> int:
        """How many tails wait to be deleted."""
        return len(self._doomed)

    def take_doomed(self, at_least: int = 1) -> list[str]:
        """The tails to delete, if `at_least` of them wait (else none)."""
        if len(self._doomed) < at_least:
            return []
        doomed, self._doomed = self._doomed, []
        return doomed

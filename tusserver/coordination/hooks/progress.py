"""post-receive while PATCH bodies arrive: one ticker for the whole app, not a task or timer per PATCH.

tusd runs a ticker per upload; here one background task wakes four times per `--hooks-progress-interval`
and tells each PATCH it watches whose interval is up, so a PATCH costs a set insertion, and a body that
stalls is still reported (and can still be stopped) on time. A mounted app has no background to run it in:
there post-receive comes at the end of each PATCH only.
"""

from __future__ import annotations

from typing import Protocol

import anyio

__all__ = ["ProgressTicker", "Watched"]


class Watched(Protocol):
    """A running PATCH: told when its interval is up (`due_at`, anyio.current_time)."""

    due_at: float

    async def tick(self) -> None:
        """Report progress if there is any; must not wait for a hook (send it in the background)."""
        ...


class ProgressTicker:
    """Ticks each watched PATCH at most once per `interval` seconds, from `run` (the app's background)."""

    def __init__(self, interval: float) -> None:
        self.interval = interval
        self._watched: set[Watched] = set()

    def watching(self, watched: Watched) -> _Watching:
        """Tick `watched` while in the block, the first time an interval after it began (if `run` runs)."""
        return _Watching(self._watched, watched, self.interval)

    async def run(self) -> None:
        """Tick what is due, until cancelled."""
        while True:
            await anyio.sleep(self.interval / 4)
            now = anyio.current_time()
            for watched in [watched for watched in self._watched if watched.due_at <= now]:
                watched.due_at = now + self.interval
                await watched.tick()


class _Watching:
    """`ProgressTicker.watching`'s block (a class: a generator-based context manager costs more per PATCH)."""

    __slots__ = ("_interval", "_watched", "_within")

    def __init__(self, within: set[Watched], watched: Watched, interval: float) -> None:
        self._within, self._watched, self._interval = within, watched, interval

    def __enter__(self) -> None:
        self._watched.due_at = anyio.current_time() + self._interval
        self._within.add(self._watched)

    def __exit__(self, *_: object) -> None:
        self._within.discard(self._watched)

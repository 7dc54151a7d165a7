"""A process-wide budget of bytes that buffered parts may hold at once (S3 parts, Azure blocks).

Every request that buffers a part reserves its size first and gives it back when the part is
stored, so memory stays bounded however many uploads run at once: a request that finds the
budget spent waits (and stops reading its body, which slows its client down) until parts
in flight finish. A request reserves a whole part before it fills it, so each holder can
always finish what it holds and no set of requests can wait on one another.
"""

from __future__ import annotations

import anyio

__all__ = ["ByteBudget"]


class ByteBudget:
    """`total` bytes shared by all requests; `acquire` waits until the size is free.

    A single reservation larger than `total` is cut to `total`: it then runs alone.
    """

    def __init__(self, total: int) -> None:
        if total <= 0:
            raise ValueError("the buffer budget must be positive")
        self.total = total
        self.used = 0
        self._waiters: list[anyio.Event] = []

    async def acquire(self, size: int) -> int:
        """Reserve `size` bytes (at most `total`); returns what was reserved, for `release`."""
        size = min(size, self.total)
        while self.used + size > self.total:
            freed = anyio.Event()
            self._waiters.append(freed)
            try:
                await freed.wait()
            finally:
                if freed in self._waiters:
                    self._waiters.remove(freed)
        self.used += size
        return size

    def release(self, size: int) -> None:
        """Give back a reservation and wake every waiter to try again."""
        self.used -= size
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            waiter.set()

"""Delivering the outbox: post-create, post-finish and post-terminate, at least once (beyond tusd).

Each of those events is recorded in the state store in the same step as the change that causes it
(`SupportsOutbox`). A deliverer in every running instance claims due events, sends them, and removes
them once every receiver took them; a failed delivery is tried again with a growing backoff, up to
`--hooks-max-age`, and a claim that outlives a crashed deliverer passes to another. So an event is lost
neither by a crash nor by a receiver's outage; it may arrive twice, with the same `EventID`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime, timedelta

import anyio

from tusserver.coordination.hooks.dispatch import HookFailedError, Hooks
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookRequest
from tusserver.coordination.state.base import SupportsOutbox
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.protocol.errors import TusError

__all__ = ["Deliverer"]

logger = logging.getLogger("tusserver.hooks")

BATCH = 32
POLL = 1.0  # seconds between looks at the outbox when nothing woke the deliverer
MAX_BACKOFF = 300.0


class Deliverer:
    """Sends the outbox's due events through `hooks`, until cancelled (`run`); `wake` after recording.

    Args:
        hooks: the transports.
        outbox: the state store's outbox.
        clock: the current UTC time.
        max_age: seconds after which an undelivered event is dropped (logged).
        claim_for: seconds a claimed event stays this deliverer's: longer than one delivery may take.
    """

    def __init__(
        self, hooks: Hooks, outbox: SupportsOutbox, clock: Callable[[], datetime], *, max_age: float, claim_for: float
    ) -> None:
        self.hooks, self.outbox, self.clock = hooks, outbox, clock
        self.max_age, self.claim_for = max_age, claim_for
        self._woken = anyio.Event()
        self.running = False

    def wake(self) -> None:
        """Look at the outbox now (a request just recorded events)."""
        self._woken.set()

    async def run(self) -> None:
        """Deliver due events until cancelled; an outage of the state store is logged and waited out."""
        self.running = True
        try:
            while True:
                try:
                    delivered = await self.deliver_due()
                except (TusError, OSError) as exc:  # the state store is unreachable or full: try later
                    logger.warning("hook outbox unavailable: %s", exc)
                    delivered = 0
                if delivered < BATCH:
                    with anyio.move_on_after(POLL):
                        await self._woken.wait()
                    self._woken = anyio.Event()
        finally:
            self.running = False

    async def deliver_due(self) -> int:
        """Claim and deliver one batch of due events, all at once: each takes at most the slowest delivery,
        which the claim outlasts, so no other instance takes one meanwhile. Returns how many were claimed."""
        due = await self.outbox.outbox_due(self.clock(), limit=BATCH, claim_for=self.claim_for)
        async with anyio.create_task_group() as tasks:
            for event in due:
                tasks.start_soon(self.deliver, event)
        return len(due)

    async def deliver(self, event: OutboxEvent) -> bool:
        """Send one event; done when every receiver took it, else due again after a backoff (or dropped
        past the maximum age). Returns whether it was delivered."""
        request = HookRequest.model_validate_json(event.payload)
        try:
            await self.hooks.deliver(HookEvent(event.event), request)
        except anyio.get_cancelled_exc_class():  # a stop: the event is due again at once, not when the claim ends
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self.outbox.outbox_retry(event.id, self.clock())
            raise
        except HookFailedError as exc:
            age = (self.clock() - event.created_at).total_seconds()
            if age >= self.max_age:
                logger.error("dropped %s event %s of upload %s after %.0f s: %s", event.event, event.id,
                             event.upload_id, age, exc)  # fmt: skip
                await self.outbox.outbox_done(event.id)
                return False
            backoff = min(2.0 ** max(event.attempts - 1, 0), MAX_BACKOFF)
            logger.warning("%s hook for upload %s failed (attempt %d), again in %.0f s: %s", event.event,
                           event.upload_id, event.attempts, backoff, exc)  # fmt: skip
            await self.outbox.outbox_retry(event.id, self.clock() + timedelta(seconds=backoff))
            return False
        await self.outbox.outbox_done(event.id)
        return True

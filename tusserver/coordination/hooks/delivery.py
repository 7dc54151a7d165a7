"""Delivering the outbox: post-create, post-finish and post-terminate, at least once (beyond tusd).

Each of those events is recorded in the state store in the same step as the change that causes it
(`SupportsOutbox`), already claimed by the recording process's deliverer (`claimed`), and sent by its request
in the background with the request's other events, in order (`send`): no second look at the store, and one
removal for the events delivered within `GATHER` seconds of each other. Events nobody sent
(their process stopped, or their receiver was down) wait in the store; every deliverer looks there each
`POLL` seconds, claims what is due, and sends it. A failed delivery is tried again with a growing backoff, up
to `--hooks-max-age`; a claim that outlives a crashed deliverer passes to another (on Redis, after
`claim_for`; with SQLite at once, at the restart). So an event is lost neither by a crash nor by a receiver's
outage; it may arrive twice, with the same `EventID`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import anyio

from tusserver.coordination.hooks.dispatch import HookFailedError, Hooks
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookRequest
from tusserver.coordination.state.base import SupportsOutbox
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.protocol.errors import TusError

__all__ = ["Deliverer", "Recorded"]

logger = logging.getLogger("tusserver.hooks")

BATCH = 32
POLL = 1.0  # seconds between looks at the outbox for events this process is not sending
GATHER = 0.05  # seconds a delivered event waits, with those delivered meanwhile, for their removal in one step
MAX_BACKOFF = 300.0


@dataclass(frozen=True, slots=True)
class Recorded:
    """An event as recorded, with its request (so it is not parsed back from the payload)."""

    event: OutboxEvent
    request: HookRequest


class Deliverer:
    """Sends outbox events through `hooks`: those its process records (`claimed`, then `send`), and, while it
    runs (`run`, until cancelled), those it finds due in the store.

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
        self._done: list[str] = []  # delivered, not yet removed from the outbox
        self._woken = anyio.Event()
        self.running = False

    def claimed(self, event: HookEvent, upload_id: str, request: HookRequest) -> OutboxEvent:
        """The outbox entry of `request`, claimed by this deliverer from the start: once it is recorded, its
        request's `send` delivers it, and no other instance takes it meanwhile."""
        now = self.clock()
        return OutboxEvent.model_construct(  # from our own typed values: nothing to validate
            id=request.EventID, event=event, upload_id=upload_id, payload=request.to_json().decode(), created_at=now,
            attempts=1, not_before=now + timedelta(seconds=self.claim_for),
        )  # fmt: skip

    async def send(self, recorded: Recorded) -> None:
        """Deliver an event recorded by this process (from `claimed`); a failure is tried again later."""
        if not await self.deliver(recorded.event, recorded.request):
            return
        if self.running:  # removed with others
            self._done.append(recorded.event.id)
            self._woken.set()
        else:  # no background (a mounted app): at once
            await self._remove([recorded.event.id])

    async def run(self) -> None:
        """Look at the outbox every `POLL` seconds and deliver what is due; remove what was delivered; until
        cancelled. An outage of the state store is logged and waited out."""
        self.running = True
        try:
            await self._resume()
            look_at = 0.0  # when to look at the outbox next (anyio.current_time)
            while True:
                if anyio.current_time() >= look_at:
                    claimed = await self._look()
                    look_at = anyio.current_time() + (0 if claimed == BATCH else POLL)
                with anyio.move_on_after(max(look_at - anyio.current_time(), 0)):
                    await self._woken.wait()
                if self._woken.is_set():  # something was delivered: remove it with what follows it closely
                    await anyio.sleep(GATHER)
                    self._woken = anyio.Event()
                    await self._remove_done()
        finally:
            self.running = False
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):  # delivered stays delivered on a stop
                await self._remove_done()

    async def _remove_done(self) -> None:
        done, self._done = self._done, []
        await self._remove(done)

    async def _remove(self, done: list[str]) -> None:
        if not done:
            return
        try:
            await self.outbox.outbox_done(*done)
        except (TusError, OSError) as exc:  # sent again later: at least once
            logger.warning("hook outbox unavailable: %s", exc)

    async def _resume(self) -> None:
        try:
            await self.outbox.outbox_resume(self.clock())
        except (TusError, OSError) as exc:
            logger.warning("hook outbox unavailable: %s", exc)

    async def _look(self) -> int:
        try:
            return await self.deliver_due()
        except (TusError, OSError) as exc:  # the state store is unreachable or full: try later
            logger.warning("hook outbox unavailable: %s", exc)
            return 0

    async def deliver_due(self) -> int:
        """Claim and deliver one batch of due events, all at once: each takes at most the slowest delivery,
        which the claim outlasts, so no other instance takes one meanwhile. Returns how many were claimed."""
        due = await self.outbox.outbox_due(self.clock(), limit=BATCH, claim_for=self.claim_for)
        done: list[str] = []
        try:
            async with anyio.create_task_group() as tasks:
                for event in due:
                    tasks.start_soon(self._deliver_due, event, done)
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):  # delivered stays delivered on a stop
                await self._remove(done)
        return len(due)

    async def _deliver_due(self, event: OutboxEvent, done: list[str]) -> None:
        if await self.deliver(event, HookRequest.model_validate_json(event.payload)):
            done.append(event.id)

    async def deliver(self, event: OutboxEvent, request: HookRequest) -> bool:
        """Send one event. Returns whether the outbox is done with it: every receiver took it, or it is past
        the maximum age (logged); otherwise it is due again after a backoff."""
        try:
            await self.hooks.deliver(HookEvent(event.event), request)
        except anyio.get_cancelled_exc_class():  # a stop: the event is due again at once, not when the claim ends
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await self._retry(event, self.clock())
            raise
        except HookFailedError as exc:
            age = (self.clock() - event.created_at).total_seconds()
            if age >= self.max_age:
                logger.error("dropped %s event %s of upload %s after %.0f s: %s", event.event, event.id,
                             event.upload_id, age, exc)  # fmt: skip
                return True
            backoff = min(2.0 ** max(event.attempts - 1, 0), MAX_BACKOFF)
            logger.warning("%s hook for upload %s failed (attempt %d), again in %.0f s: %s", event.event,
                           event.upload_id, event.attempts, backoff, exc)  # fmt: skip
            await self._retry(event, self.clock() + timedelta(seconds=backoff))
            return False
        return True

    async def _retry(self, event: OutboxEvent, when: datetime) -> None:
        try:
            await self.outbox.outbox_retry(event.id, when)
        except (TusError, OSError) as exc:  # then it is due again when its claim ends
            logger.warning("hook outbox unavailable: %s", exc)

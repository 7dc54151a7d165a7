"""The non-blocking events one request (or sweep) causes, in the order it caused them.

post-create, post-finish and post-terminate go into the outbox: built before the state write that records
the change (`outbox`), passed to it, and handed to the deliverer once it succeeded (`wrote`). The others are
queued as they happen (`add`). `send` runs once the request has let go of the upload's lock: no lock is held
while a non-blocking hook runs, even where it runs in the request (a mounted app, with no background).
"""

from __future__ import annotations

from collections.abc import Sequence

from tusserver.context import TusContext
from tusserver.coordination.hooks.delivery import Recorded
from tusserver.coordination.hooks.events import DELIVERED_AT_LEAST_ONCE, HookEvent
from tusserver.coordination.hooks.model import EMPTY_RESPONSE, HookHTTPRequest, HookRequest
from tusserver.coordination.hooks.requests import about
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.protocol.model import UploadInfo

__all__ = ["Outgoing"]


class Outgoing:
    """One request's non-blocking events, and pre-finish's answer, which shapes its response."""

    def __init__(self, tus: TusContext, http: HookHTTPRequest) -> None:
        self.tus, self.http = tus, http
        self.items: list[HookRequest | Recorded] = []  # best-effort requests and recorded outbox events
        self._requests: dict[str, HookRequest] = {}  # outbox events built, by id, until recorded
        self.finish_answer = EMPTY_RESPONSE

    def add(self, event: HookEvent, info: UploadInfo) -> None:
        """Queue a best-effort event (post-receive) about `info` as it is now, if it is on."""
        assert event not in DELIVERED_AT_LEAST_ONCE
        if self.tus.hooks.on(event):
            self.items.append(about(self.tus, event, info, self.http))

    def outbox(self, event: HookEvent, info: UploadInfo) -> list[OutboxEvent]:
        """The outbox entry of `event` about `info` (none when it is off), for the state write."""
        if not self.tus.hooks.on(event):
            return []
        request = about(self.tus, event, info, self.http)
        self._requests[request.EventID] = request
        deliverer = self.tus.deliverer
        if deliverer is not None:
            return [deliverer.claimed(event, info.id, request)]
        now = self.tus.clock()  # no deliverer (a store without an outbox): recorded, due at once
        return [OutboxEvent(id=request.EventID, event=event, upload_id=info.id, payload=request.to_json().decode(),
                            created_at=now, not_before=now)]  # fmt: skip

    def wrote(self, events: Sequence[OutboxEvent]) -> None:
        """The state write that carried `events` succeeded: they go out with the rest."""
        self.items.extend(Recorded(event, self._requests.pop(event.id)) for event in events)

    async def send(self) -> None:
        """Send what was queued, in the order it happened: in the background of the running app (or now,
        without one: a mounted app)."""
        items, self.items = self.items, []
        if items:
            await self.tus.hooks.in_background(self._send_in_order, items)

    async def _send_in_order(self, items: list[HookRequest | Recorded]) -> None:
        hooks, deliverer = self.tus.hooks, self.tus.deliverer
        for item in items:
            if isinstance(item, HookRequest):
                await hooks.notify(HookEvent(item.Type), item)
            elif deliverer is not None:
                await deliverer.send(item)
        if deliverer is not None and not deliverer.running:  # no background: what is left over goes out now
            await deliverer.deliver_due()

"""Running hooks: the transports an event goes to, which events are on, and what their answers add up to.

A blocking event (`BLOCKING`) is awaited by its request: every transport in turn, and a failure of any
(unreachable, timed out, a non-2xx answer after its retries, an answer that is not a hook response) is the
request's failure, `503` with `Retry-After`, so that nothing is created, finished or deleted that a hook
did not see. A non-blocking event never fails its request: its failures are logged and counted.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Coroutine, Mapping, Sequence
from typing import Any, Protocol, TypeVarTuple

import anyio
from anyio.abc import TaskGroup
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from tusserver.coordination import metrics
from tusserver.coordination.hooks.events import BLOCKING, HookEvent
from tusserver.coordination.hooks.model import (
    EMPTY_RESPONSE,
    HookChangeFileInfo,
    HookHTTPResponse,
    HookPrincipal,
    HookRequest,
    HookResponse,
)

__all__ = ["HookFailedError", "Hooks", "InProcessHook", "InProcessHooks", "Transport", "merge"]

logger = logging.getLogger("tusserver.hooks")
Args = TypeVarTuple("Args")
_Job = tuple[Callable[..., Coroutine[Any, Any, None]], tuple[Any, ...]]

BACKGROUND_SENDERS = 16
"""Non-blocking events sent at once (a request's events go out one after the other, in order): as many as the
HTTP hooks keep connections to their receiver. An in-process hook that takes long holds one of them."""
WAITING_JOBS = 1024
"""Requests' events waiting for a sender; past that a request waits before it answers, so a receiver slower
than the uploads slows them down rather than fill the memory."""

InProcessHook = Callable[[HookRequest], Awaitable[HookResponse | None]]
"""An in-process hook: gets the event's request, answers a response (None: nothing to say)."""


class HookFailedError(Exception):
    """A hook could not be run, or answered something unusable; the message says which and why."""


class Transport(Protocol):
    """One way of delivering events to receivers: in-process callables, HTTP(S), executable files."""

    async def invoke(self, request: HookRequest) -> HookResponse:
        """Deliver `request` (its `Type` names the event) and return the receiver's answer.

        Raises:
            HookFailedError: unreachable, timed out, a non-2xx answer after the retries, an exit code that
                is not 0, or an answer that is not a hook response.
        """
        ...

    async def aclose(self) -> None:
        """Release connections."""
        ...


class InProcessHooks:
    """Async callables per event, in the server's own process (`create_app(hooks=...)`, `--hooks-module`)."""

    def __init__(self, hooks: Mapping[str, InProcessHook]) -> None:
        self._hooks = {HookEvent(event): hook for event, hook in hooks.items()}

    @property
    def events(self) -> frozenset[HookEvent]:
        """The events this transport has a hook for."""
        return frozenset(self._hooks)

    async def invoke(self, request: HookRequest) -> HookResponse:
        hook = self._hooks.get(HookEvent(request.Type))
        if hook is None:
            return EMPTY_RESPONSE
        try:
            return await hook(request) or EMPTY_RESPONSE
        except Exception as exc:  # the application's code: any failure is the hook's
            raise HookFailedError(f"in-process {request.Type} hook raised {type(exc).__name__}: {exc}") from exc

    async def aclose(self) -> None:
        """Nothing to release."""


class Hooks:
    """The configured transports, each with the events it gets.

    Args:
        routes: each transport with its events: an in-process transport gets the events it has hooks
            for, HTTP and file hooks the enabled ones (tusd's `-hooks-enabled-events`). A blocking
            event's answers from several transports are merged (`merge`).
    """

    def __init__(self, routes: Sequence[tuple[Transport, Collection[HookEvent]]] = ()) -> None:
        self.routes = tuple((transport, frozenset(events)) for transport, events in routes)
        self.enabled = frozenset().union(*(events for _, events in self.routes))
        self._by_event = {event: tuple(t for t, events in self.routes if event in events) for event in self.enabled}
        self.failures: Counter[HookEvent] = Counter()  # non-blocking failures, by event
        # tusserver_hook_invocations / _errors, bound once per event: every event, blocking or not, counts there.
        self._counters = {event: metrics.hook_counters(str(event)) for event in HookEvent}
        self._jobs: MemoryObjectSendStream[_Job] | None = None

    @property
    def in_the_background(self) -> bool:
        """Whether non-blocking events are sent in the background (`run_in`), not in their request."""
        return self._jobs is not None

    def run_in(self, tasks: TaskGroup | None) -> None:
        """Send non-blocking events from `BACKGROUND_SENDERS` tasks of `tasks` (the app's lifespan), or, with None,
        in their request. A pool and not a task per request: starting a task cost more than some hooks."""
        if self._jobs is not None:
            self._jobs.close()
            self._jobs = None
        if tasks is not None:
            self._jobs, jobs = anyio.create_memory_object_stream[_Job](WAITING_JOBS)
            for _ in range(BACKGROUND_SENDERS):
                tasks.start_soon(_send_jobs, jobs.clone())
            jobs.close()

    def on(self, event: HookEvent) -> bool:
        """Whether `event` is sent anywhere: the callers skip building its request otherwise."""
        return event in self.enabled

    async def call(self, event: HookEvent, request: HookRequest) -> HookResponse:
        """Send a blocking event to each of its transports in turn and merge their answers.

        Raises:
            HookFailedError: a transport failed (the request fails with 503).
        """
        invocations, failures = self._counters[event]
        invocations.inc()
        try:
            return merge([await transport.invoke(request) for transport in self._transports(event)])
        except HookFailedError:
            failures.inc()
            raise

    async def notify(self, event: HookEvent, request: HookRequest) -> HookResponse:
        """Send a non-blocking event; a failure is logged and counted, and answers nothing."""
        assert event not in BLOCKING
        responses = []
        self._counters[event][0].inc()
        for transport in self._transports(event):
            try:
                responses.append(await transport.invoke(request))
            except HookFailedError as exc:
                self.failures[event] += 1
                self._counters[event][1].inc()
                logger.warning("%s hook for upload %s failed: %s", event, request.Event.Upload.ID or "-", exc)
        return merge(responses)

    async def deliver(self, event: HookEvent, request: HookRequest) -> None:
        """Send an outbox event to each of its transports (all are tried).

        Raises:
            HookFailedError: a transport failed (the event is due again; the others get it twice).
        """
        failures = []
        self._counters[event][0].inc()
        for transport in self._transports(event):
            try:
                await transport.invoke(request)
            except HookFailedError as exc:
                failures.append(str(exc))
        if failures:
            self.failures[event] += 1
            self._counters[event][1].inc()
            raise HookFailedError("; ".join(failures))

    async def later(
        self, event: HookEvent, request: HookRequest, *, then: Callable[[HookResponse], None] | None = None
    ) -> None:
        """Send a non-blocking event without making the caller wait for it (`in_background`), then give its
        answer to `then`."""
        await self.in_background(self._notify, event, request, then)

    async def _notify(
        self, event: HookEvent, request: HookRequest, then: Callable[[HookResponse], None] | None
    ) -> None:
        answer = await self.notify(event, request)
        if then is not None:
            then(answer)

    async def in_background(self, send: Callable[[*Args], Coroutine[Any, Any, None]], *args: *Args) -> None:
        """Run `send(*args)` in the background of the running app, in the order of the calls (but with up to
        `BACKGROUND_SENDERS` running at once). A mounted app gets no lifespan, and so no background: there it
        runs before this returns."""
        if self._jobs is not None:
            await self._jobs.send((send, args))  # waits while WAITING_JOBS wait: the senders set the pace
        else:
            await send(*args)

    def _transports(self, event: HookEvent) -> tuple[Transport, ...]:
        return self._by_event.get(event, ())

    async def aclose(self) -> None:
        for transport, _ in self.routes:
            await transport.aclose()


async def _send_jobs(jobs: MemoryObjectReceiveStream[_Job]) -> None:
    async with jobs:
        async for send, args in jobs:
            try:
                await send(*args)
            except Exception:  # a bug, not a hook's failure (those are handled): log it, and go on with the next
                logger.exception("sending a hook event in the background failed")


def merge(responses: Sequence[HookResponse]) -> HookResponse:
    """The answers of several receivers as one: any rejection or stop wins; a later non-empty status, body,
    id, metadata or principal replaces an earlier one; response headers add up."""
    if len(responses) == 1:
        return responses[0]
    status, body, headers = 0, "", {}
    file_id, metadata, principal = "", None, HookPrincipal()
    for response in responses:
        principal = response.Principal if response.Principal.ID else principal
        status = response.HTTPResponse.StatusCode or status
        body = response.HTTPResponse.Body or body
        headers.update(response.HTTPResponse.Header)
        file_id = response.ChangeFileInfo.ID or file_id
        metadata = response.ChangeFileInfo.MetaData if response.ChangeFileInfo.MetaData is not None else metadata
    return HookResponse(
        HTTPResponse=HookHTTPResponse(StatusCode=status, Body=body, Header=headers),
        RejectUpload=any(response.RejectUpload for response in responses),
        RejectTermination=any(response.RejectTermination for response in responses),
        ChangeFileInfo=HookChangeFileInfo(ID=file_id, MetaData=metadata),
        StopUpload=any(response.StopUpload for response in responses),
        RejectAccess=any(response.RejectAccess for response in responses),
        Principal=principal,
        HoldUpload=any(response.HoldUpload for response in responses),
        Reason=_reason(responses),
    )


def _reason(responses: Sequence[HookResponse]) -> str:
    """The reason of the verdict that wins (pre-finish): a rejection's, else a hold's, else any given."""
    for wins in (lambda answer: answer.RejectUpload, lambda answer: answer.HoldUpload, lambda answer: True):
        reasons = [response.Reason for response in responses if wins(response) and response.Reason]
        if reasons:
            return reasons[-1]
    return ""

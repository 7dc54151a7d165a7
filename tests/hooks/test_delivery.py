"""Issue 20: the outbox deliverer, over every state store (a real Redis and SQLite file included): what a state
write recorded goes out; a receiver that fails gets it again later, with the same id; past the maximum age it
is dropped; two deliverers on one store send each event once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from storage_backends.base import StorageRef
from tests.contract.conftest import Backing
from tusserver.coordination.hooks.delivery import Deliverer
from tusserver.coordination.hooks.dispatch import Hooks, InProcessHooks
from tusserver.coordination.hooks.events import HookEvent
from tusserver.coordination.hooks.model import HookEventData, HookRequest, HookResponse, HookUpload
from tusserver.coordination.state.base import SupportsOutbox, UploadStateStore
from tusserver.coordination.state.outbox import OutboxEvent
from tusserver.protocol.model import UploadInfo

pytestmark = pytest.mark.anyio

START = datetime(2026, 12, 7, tzinfo=UTC)


class Clock:
    def __init__(self) -> None:
        self.now = START

    def __call__(self) -> datetime:
        return self.now


class Receiver:
    """An in-process post-finish hook that records event ids, failing while `down`."""

    def __init__(self) -> None:
        self.ids: list[str] = []
        self.down = False

    async def __call__(self, request: HookRequest) -> HookResponse | None:
        if self.down:
            raise ConnectionError("the receiver is down")
        self.ids.append(request.EventID)
        return None


def record(upload_id: str) -> UploadInfo:
    return UploadInfo(id=upload_id, length=5, offset=5, storage=StorageRef(backend="memory", key=upload_id),
                      created_at=START)  # fmt: skip


def finished_event(upload_id: str, event_id: str) -> OutboxEvent:
    request = HookRequest(Type="post-finish", Event=HookEventData(Upload=HookUpload(ID=upload_id)), EventID=event_id)
    return OutboxEvent(id=event_id, event="post-finish", upload_id=upload_id, payload=request.model_dump_json(),
                       created_at=START, not_before=START)  # fmt: skip


@pytest.fixture
def outbox(store: UploadStateStore) -> SupportsOutbox:
    assert isinstance(store, SupportsOutbox)
    return store


def deliverer(store: SupportsOutbox, receiver: Receiver, clock: Clock, *, max_age: float = 3600) -> Deliverer:
    hooks = Hooks([(InProcessHooks({HookEvent.POST_FINISH: receiver}), {HookEvent.POST_FINISH})])
    return Deliverer(hooks, store, clock, max_age=max_age, claim_for=30)


async def test_what_a_write_recorded_is_delivered_once(store: UploadStateStore, outbox: SupportsOutbox) -> None:
    receiver, clock = Receiver(), Clock()
    await store.create(record("u1"), events=[finished_event("u1", "e" * 32)])
    sender = deliverer(outbox, receiver, clock)
    assert await sender.deliver_due() == 1
    assert receiver.ids == ["e" * 32]
    clock.now += timedelta(hours=1)
    assert await sender.deliver_due() == 0  # done: never again


async def test_a_failed_delivery_is_tried_again_later_with_the_same_id(
    store: UploadStateStore, outbox: SupportsOutbox
) -> None:
    receiver, clock = Receiver(), Clock()
    await store.create(record("u1"), events=[finished_event("u1", "a" * 32)])
    sender = deliverer(outbox, receiver, clock)
    receiver.down = True
    assert await sender.deliver_due() == 1
    assert await sender.deliver_due() == 0  # backing off
    receiver.down = False
    clock.now += timedelta(seconds=2)
    assert await sender.deliver_due() == 1
    assert receiver.ids == ["a" * 32]


async def test_an_event_past_the_maximum_age_is_dropped(
    store: UploadStateStore, outbox: SupportsOutbox, caplog: pytest.LogCaptureFixture
) -> None:
    receiver, clock = Receiver(), Clock()
    await store.create(record("u1"), events=[finished_event("u1", "b" * 32)])
    sender = deliverer(outbox, receiver, clock, max_age=60)
    receiver.down = True
    clock.now += timedelta(seconds=61)
    assert await sender.deliver_due() == 1
    assert "dropped post-finish event" in caplog.text
    receiver.down = False
    clock.now += timedelta(hours=1)
    assert await sender.deliver_due() == 0
    assert receiver.ids == []


async def test_two_deliverers_on_one_store_send_each_event_once(backing: Backing) -> None:
    first, second = backing.open(), backing.open()
    assert isinstance(first, SupportsOutbox)
    assert isinstance(second, SupportsOutbox)
    try:
        events = [finished_event(f"u{index}", f"{index:032x}") for index in range(40)]
        for index, event in enumerate(events):
            await first.create(record(f"u{index}"), events=[event])
        receiver, clock = Receiver(), Clock()
        senders = [deliverer(first, receiver, clock), deliverer(second, receiver, clock)]
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tasks:
                for sender in senders * 2:
                    tasks.start_soon(sender.deliver_due)
        assert sorted(receiver.ids) == sorted(event.id for event in events)
    finally:
        await first.aclose()
        await second.aclose()


async def test_the_running_deliverer_sends_what_it_is_woken_for(
    store: UploadStateStore, outbox: SupportsOutbox
) -> None:
    receiver, clock = Receiver(), Clock()
    sender = deliverer(outbox, receiver, clock)
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sender.run)
            await store.create(record("u1"), events=[finished_event("u1", "c" * 32)])
            sender.wake()
            while not receiver.ids:  # noqa: ASYNC110  # the receiver has no event to wait on
                await anyio.sleep(0.01)
            tasks.cancel_scope.cancel()
    assert receiver.ids == ["c" * 32]

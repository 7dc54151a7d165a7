"""Issue 20: the outbox deliverer, over every state store (a real Redis and SQLite file included): what a state
write recorded goes out; a receiver that fails gets it again later, with the same id; past the maximum age it
is dropped; two deliverers on one store send each event once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import anyio
import pytest

from storage_backends.base import StorageRef
from tests.contract.conftest import Backing
from tusserver.coordination.hooks.delivery import Deliverer, Recorded
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


async def running(sender: Deliverer, receiver: Receiver, count: int) -> None:
    """Run `sender` until `receiver` got `count` events."""
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sender.run)
            while len(receiver.ids) < count:  # noqa: ASYNC110  # the receiver has no event to wait on
                await anyio.sleep(0.01)
            tasks.cancel_scope.cancel()


async def test_what_this_process_recorded_goes_out_from_memory_claimed_from_the_start(
    store: UploadStateStore, outbox: SupportsOutbox
) -> None:
    receiver, clock = Receiver(), Clock()
    sender = deliverer(outbox, receiver, clock)
    request = HookRequest(Type="post-finish", Event=HookEventData(Upload=HookUpload(ID="u1")), EventID="c" * 32)
    event = sender.claimed(HookEvent.POST_FINISH, "u1", request)
    assert (event.attempts, event.not_before) == (1, START + timedelta(seconds=30))  # no other deliverer takes it
    await store.create(record("u1"), events=[event])
    with anyio.fail_after(5):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(sender.run)
            await sender.send(Recorded(event, request))
            assert receiver.ids == ["c" * 32]
            while await outbox.outbox_due(START + timedelta(days=1), limit=9, claim_for=1):  # noqa: ASYNC110
                await anyio.sleep(0.01)  # removed once the running deliverer gathered what was delivered
            tasks.cancel_scope.cancel()


async def test_the_running_deliverer_sends_what_it_finds_due_in_the_store(
    store: UploadStateStore, outbox: SupportsOutbox
) -> None:
    receiver, clock = Receiver(), Clock()
    await store.create(record("u1"), events=[finished_event("u1", "d" * 32)])  # another process's, say
    await running(deliverer(outbox, receiver, clock), receiver, 1)
    assert receiver.ids == ["d" * 32]


async def test_a_restart_ends_the_claims_only_a_stopped_process_can_hold(backing: Backing) -> None:
    """SQLite serves one process: what it claimed and did not send goes at the restart. Redis is shared: a
    claim may be a running instance's, and stands until it ends."""
    store = backing.open()
    assert isinstance(store, SupportsOutbox)
    try:
        receiver, clock = Receiver(), Clock()
        before = deliverer(store, receiver, clock)
        request = HookRequest(Type="post-finish", Event=HookEventData(Upload=HookUpload(ID="u1")), EventID="f" * 32)
        await store.create(record("u1"), events=[before.claimed(HookEvent.POST_FINISH, "u1", request)])
        await store.outbox_resume(START)  # the next process starts
        due = await store.outbox_due(START, limit=9, claim_for=1)
        assert [event.id for event in due] == (["f" * 32] if backing.name.startswith("sqlite") else [])
    finally:
        await store.aclose()

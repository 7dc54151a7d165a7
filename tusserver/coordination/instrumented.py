"""Latency metrics for any storage backend, state store and locker, added by the app (`create_app`).

The calls are timed on the instance itself: each async method of the contract is replaced by a timed one
in the instance's dict. A wrapping proxy would have to re-declare every optional capability a backend may
have (`SupportsDelete`, `SupportsOpen`, ...), which the pipeline checks with `isinstance` against runtime
protocols; the instance keeps them all, and so does a backend written outside this repository.
"""

from __future__ import annotations

import functools
import inspect
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager, suppress
from types import TracebackType
from typing import Any

from tusserver.coordination import metrics
from tusserver.coordination.locking import Lease, Locker

__all__ = ["instrument_locker", "instrument_state", "instrument_storage"]

# The contract's calls (storage_backends.base and its capabilities); iterators such as `expiring` are not timed.
STORAGE_CALLS = ("create", "append", "stored_length", "complete", "delete", "discard", "concatenate", "open", "read")
STATE_CALLS = ("create", "get", "save", "delete", "peek", "list_uploads", "outbox_due", "outbox_done")
_MARK = "_tusserver_instrumented"  # an instance given to two apps is timed once


def instrument_storage(storage: Any) -> None:
    """Time `storage`'s calls under `tusserver_storage_seconds{backend=<its scheme>}`."""
    _instrument(storage, "storage", str(getattr(storage, "scheme", type(storage).__name__)), STORAGE_CALLS)


def instrument_state(state: Any) -> None:
    """Time the state store's calls under `tusserver_state_seconds{store=<its class>}`."""
    _instrument(state, "state", type(state).__name__.removesuffix("StateStore").lower() or "custom", STATE_CALLS)


def _instrument(target: Any, kind: str, owner: str, names: tuple[str, ...]) -> None:
    if getattr(target, _MARK, False):
        return
    for name in names:
        method = getattr(target, name, None)
        if method is not None and inspect.iscoroutinefunction(method):
            try:
                setattr(target, name, _timed(method, metrics.timed(kind, owner, name).observe))
            except AttributeError:  # __slots__ or a read-only attribute: that call goes untimed
                return
    with suppress(AttributeError):
        setattr(target, _MARK, True)


def _timed(method: Callable[..., Awaitable[Any]], observe: Callable[[float], None]) -> Callable[..., Awaitable[Any]]:
    @functools.wraps(method)
    async def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            observe(time.perf_counter() - started)

    return timed


def instrument_locker(locker: Locker) -> None:
    """Observe the wait for each of `locker`'s locks in `tusserver_lock_wait_seconds` (a wait that ends in
    423 too)."""
    if getattr(locker, _MARK, False):
        return
    acquire = locker.acquire

    def timed_acquire(upload_id: str, *, timeout: float) -> AbstractAsyncContextManager[Lease]:
        return _TimedAcquire(acquire(upload_id, timeout=timeout))

    with suppress(AttributeError):  # a locker with __slots__ goes untimed
        setattr(locker, "acquire", timed_acquire)  # noqa: B010  # the instance's own, as for the storage
        setattr(locker, _MARK, True)


class _TimedAcquire:
    """A lock's context manager, timing its entry. A class: a generator-based one costs a few microseconds more."""

    __slots__ = ("_manager",)

    def __init__(self, manager: AbstractAsyncContextManager[Lease]) -> None:
        self._manager = manager

    async def __aenter__(self) -> Lease:
        started = time.perf_counter()
        try:
            return await self._manager.__aenter__()
        finally:
            metrics.LOCK_WAIT.observe(time.perf_counter() - started)

    async def __aexit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool | None:
        return await self._manager.__aexit__(kind, exc, tb)

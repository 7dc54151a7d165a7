"""What the S3 and Azure writers share past filling (`_filling.Filler`): the pieces being stored, the first failure
among them, and progress checkpoints, each of which records the pieces stored so far and the rest of the bytes in
a new tail of the writer's own."""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import AsyncIterable, Awaitable, Callable, Coroutine
from typing import Any, Generic, Protocol, TypeVar, cast

import anyio
from anyio.abc import TaskGroup

from storage_backends._filling import Filler
from storage_backends._tasks import count_bytes
from storage_backends.base import Appended, ReadsInto, StorageRef
from storage_backends.errors import StorageError

__all__ = ["PieceWriter"]


class _Recorded(Protocol):
    def ref(self) -> StorageRef: ...


U = TypeVar("U", bound=_Recorded)  # what a record holds of the upload: S3's `Upload`, Azure's `Blob`


class PieceWriter(Filler, Generic[U]):
    """A `Filler` that stores each full piece in a task of `tasks` (`in_flight` until it answers) and records its
    progress through tails (`_write_tail`, `_record`)."""

    tasks: TaskGroup | None
    failure: StorageError | None
    in_flight: dict[int, anyio.Event]  # piece index -> set once that piece is stored (or failed)

    @property
    @abstractmethod
    def pieces_handed_on(self) -> int:
        """The full pieces before the one being filled: stored, or being stored."""

    @abstractmethod
    async def load_tail(self) -> None:
        """Start from the recorded tail: the pieces before it, and its bytes up to `position`."""

    @abstractmethod
    async def finish(self) -> tuple[U, int]:
        """Once every piece has answered: the upload (with this writer's last tail) and its length."""

    @abstractmethod
    async def _write_tail(self, count: int, rest: bytes | memoryview) -> U:
        """A new tail of this writer's: the first `count` full pieces, then the bytes `rest` of the next."""

    @abstractmethod
    def release(self) -> None:
        """Give back the budget and the buffer this writer holds."""

    @abstractmethod
    async def _record(self, upload: U, position: int) -> None:
        """Record `upload` holding `position` bytes (nothing without checkpoints: one writer, whose lock cannot
        lapse, records only at the end)."""

    async def take(
        self, chunks: AsyncIterable[bytes], *, alongside: Callable[[], Coroutine[Any, Any, None]] | None = None
    ) -> tuple[U, int]:
        """The append: from the recorded tail on, the whole body (read into the buffers where it can be), each full
        piece stored while it comes, then the last tail (`finish`). `alongside` runs beside the body."""
        try:
            await self.load_tail()
            async with anyio.create_task_group() as tasks:
                self.tasks = tasks
                if alongside is not None:
                    tasks.start_soon(alongside)
                if hasattr(chunks, "read_into"):  # not isinstance(): against a Protocol it costs ~7 µs
                    await self.fill(cast(ReadsInto, chunks))
                async for chunk in chunks:
                    await self.write(chunk)
                    self.raise_failure()
        except BaseExceptionGroup as group:  # a piece's failure, or the body's own (a refused record)
            raise self.failure or (group.exceptions[0] if len(group.exceptions) == 1 else group) from None
        self.raise_failure()
        return await self.finish()

    async def append(
        self,
        ref: StorageRef,
        chunks: AsyncIterable[bytes],
        *,
        gone: type[Exception],
        finished_size: Callable[[], Awaitable[int | None]],
        alongside: Callable[[], Coroutine[Any, Any, None]] | None = None,
    ) -> Appended:
        """The store's append (`take`), then the writer released. When the store answers `gone` (no tail, no
        upload in progress any more), the upload may have been completed before the server could record it (a
        crash), or this is an empty PATCH to a finished upload: if `finished_size()` finds the finished object,
        it holds every byte the client sends again."""
        try:
            finished, length = await self.take(chunks, alongside=alongside)
        except gone:
            stored = await finished_size()
            if stored is None:
                raise
            return Appended(min(stored, self.position + await count_bytes(chunks)), ref)
        finally:
            self.release()
        return Appended(length, finished.ref())

    def raise_failure(self) -> None:
        if self.failure is not None:
            raise self.failure

    def _fail(self, exc: StorageError) -> None:
        """Keep the first failure and stop the pieces still being stored: the append fails with it."""
        self.failure = self.failure or exc
        assert self.tasks is not None
        self.tasks.cancel_scope.cancel()

    async def _drain(self) -> None:
        """Wait until every piece handed on so far has answered."""
        for stored in list(self.in_flight.values()):
            await stored.wait()
        self.raise_failure()

    async def checkpoint(self) -> None:
        """Record the bytes so far: the pieces stored, and the rest in a new tail of this writer's."""
        self.checkpointing = True
        try:
            await self._drain()
            with self._piece() as piece:
                upload = await self._write_tail(self.pieces_handed_on, piece[: self.filled])
            await self._record(upload, self.position)
            self.clock.passed(self.position)
            self.new_bytes = False
        finally:
            self.checkpointing = False

    def _checkpoint_soon(self) -> None:
        """At a piece boundary: record it once the pieces before it are stored, while the body goes on."""
        self.checkpointing = True
        self.clock.passed(self.position)
        assert self.tasks is not None
        self.tasks.start_soon(self._checkpoint_at, self.pieces_handed_on, self.position)

    async def _checkpoint_at(self, count: int, position: int) -> None:
        try:
            for index, stored in list(self.in_flight.items()):
                if index < count:
                    await stored.wait()
            self.raise_failure()
            await self._record(await self._write_tail(count, b""), position)
        except StorageError as exc:
            self._fail(exc)
        finally:
            self.checkpointing = False

"""BodyReader: a request body as chunks that always end cleanly (tusd's bodyReader).

Storage backends never see a disconnect, a stalled client or a lock-release request: the
chunk stream simply ends, the endpoint stores the offset reached, and `end` says why it
stopped. Chunks come straight from the ASGI `receive` channel, without Starlette's stream
wrapper, because this loop runs once per ~250 KiB of every upload.

Where the ASGI server offers the `tusserver.splice` extension (tusserver's uvicorn protocol, for
large bodies), a file-backed store can have the body moved into its file by the kernel instead
(`BodyReader.splice_into`), and a store that buffers parts can have it read straight into its part
buffers (`BodyReader.read_into`), with the same limit, timeouts and ends.
"""

from __future__ import annotations

import mmap
import os
from collections.abc import AsyncIterable, AsyncIterator, Awaitable, Callable
from typing import cast

import anyio
import anyio.to_thread
from starlette.types import Receive, Scope

from tusserver.protocol.checksums import Hasher
from tusserver.protocol.rules import BodyEnd

__all__ = ["SPLICE_EXTENSION", "BodyReader", "ReadInto", "Splice", "digesting", "read_into_of", "splice_of"]

_OFFLOAD_MIN = 64 * 1024
_HASH_WINDOW = 8 * 1024 * 1024  # bytes of a file mapped at once to hash what a splice moved into it
SPLICE_EXTENSION = "tusserver.splice"
SPLICE_STEP = 1024 * 1024  # bytes per step: each step may wait, and is timed, as one body piece is

Splice = Callable[[int, int], Awaitable[tuple[int, bool]]]
"""The `tusserver.splice` extension: `await splice(fd, limit)` moves up to `limit` (at least 1) bytes
of the request body into the file `fd` at its file position, waiting for them if need be, and returns
`(moved, more_body)`: `more_body` is False once the body is complete; `moved` is 0 with `more_body`
True when the client is gone. Raises OSError when writing into `fd` fails."""


ReadInto = Callable[[memoryview], Awaitable[tuple[int, bool]]]
"""The `read_into` of the `tusserver.splice` extension: `await read_into(view)` reads up to `len(view)` (at
least 1) bytes of the request body into `view`, waiting for them if need be, and returns `(count, more_body)`
as `Splice` does."""


def splice_of(scope: Scope) -> Splice | None:
    """The `splice` of the request's `tusserver.splice` extension, if its ASGI server offers one."""
    extension = scope.get("extensions", {}).get(SPLICE_EXTENSION)
    return None if extension is None else cast(Splice, extension["splice"])


def read_into_of(scope: Scope) -> ReadInto | None:
    """The `read_into` of the request's `tusserver.splice` extension, if its ASGI server offers one."""
    extension = scope.get("extensions", {}).get(SPLICE_EXTENSION)
    return None if extension is None else cast(ReadInto | None, extension.get("read_into"))


class BodyReader:
    """Iterates over a request body, at most `limit` bytes of it.

    Args:
        receive: the ASGI receive callable of the request.
        limit: the most bytes to accept; a longer body ends with `BodyEnd.LIMIT_EXCEEDED`.
        read_timeout: seconds to wait for each next piece before ending with `BodyEnd.TIMEOUT`.
        splice: the `splice` of the request's `tusserver.splice` extension, if any (`splice_of`).
        read_into: its `read_into`, if any (`read_into_of`).
        min_rate: bytes per second the body must average, 0 for no bound (`Settings.min_body_rate`):
            waiting uses up an allowance of `read_timeout` seconds, each `min_rate` bytes received give
            a second back, up to `read_timeout`; a wait longer than what is left ends with `BodyEnd.TIMEOUT`.
    """

    def __init__(
        self,
        receive: Receive,
        *,
        limit: int | None,
        read_timeout: float,
        splice: Splice | None = None,
        read_into: ReadInto | None = None,
        min_rate: int = 0,
    ) -> None:
        self._receive = receive
        self._splice = splice
        self._read_into = read_into
        self._rest = memoryview(b"")  # of a piece that `read_into` took in part
        self._limit = limit
        self._read_timeout = read_timeout
        self._min_rate = min_rate
        self._allowance = read_timeout  # seconds the next wait may take (stays read_timeout without min_rate)
        self._waiting: anyio.CancelScope | None = None
        self._taps: list[tuple[Hasher, bool]] = []
        self.received = 0
        self.end: BodyEnd | None = None

    def tap(self, hasher: Hasher, *, offload: bool) -> None:
        """Feed `hasher` every byte this body hands on, whichever way: its chunks, what `read_into` reads, and
        what `splice_into` moves, hashed from the page cache once the kernel has moved it (the splice is kept:
        a declared digest or checksum no longer sends the body through Python). With `offload`, large pieces are
        hashed on a worker thread (see `digesting`)."""
        self._taps.append((hasher, offload))

    async def _feed(self, data: bytes | memoryview) -> None:
        for hasher, offload in self._taps:
            await _update(hasher, data, offload)

    def stop(self) -> None:
        """End the stream now, e.g. because another request wants the upload."""
        if self.end is None:
            self.end = BodyEnd.INTERRUPTED
        if self._waiting is not None:
            self._waiting.cancel()

    def __aiter__(self) -> BodyReader:
        return self

    async def __anext__(self) -> bytes:
        if self._rest:
            rest, self._rest = self._rest, memoryview(b"")
            chunk = rest.tobytes()
        else:
            chunk = b""
            while self.end is None and not chunk:
                chunk = await self._next_piece()
            if not chunk:
                raise StopAsyncIteration
        if self._taps:
            await self._feed(chunk)
        return chunk

    async def splice_into(
        self,
        fd: int,
        position: int,
        before_write: Callable[[int, int], None],
        *,
        most: int | None = None,
        until: float | None = None,
    ) -> int:
        """Have the server move the body into `fd` (at `position`, its file position) until it ends,
        `most` bytes have moved, or the clock (anyio.current_time) passes `until`.

        Returns the bytes moved: 0, with nothing done, without the extension or once the body has
        ended. `before_write(position, size)` is called before each step of at most `size` bytes.
        Iterating afterwards yields what is left: nothing once `end` is set, which it is unless the
        extension is missing or `most` or `until` stopped it (then call again).

        With taps (`tap`), `fd` must be readable too: the bytes moved are hashed from the file.

        Raises:
            OSError: writing into `fd` failed (or, with taps, mapping it to read them).
        """
        splice = self._splice
        if splice is None:
            return 0
        start = os.lseek(fd, 0, os.SEEK_CUR) if self._taps else 0

        def step(done: int, size: int) -> Awaitable[tuple[int, bool]]:
            before_write(position + done, size)
            return splice(fd, size)

        moved = await self._stepped(step, SPLICE_STEP, most, until)
        if self._taps and moved:
            await self._feed_from_file(fd, start, moved)
        return moved

    async def _feed_from_file(self, fd: int, start: int, count: int) -> None:
        """Feed the taps `count` bytes of file `fd` from `start`, mapped a window at a time (no copy: the pages are
        in the page cache, just written)."""
        end = start + count
        while start < end:
            first = start - start % mmap.ALLOCATIONGRANULARITY
            size = min(end, first + _HASH_WINDOW) - first
            try:
                mapped = mmap.mmap(
                    fd, size, flags=mmap.MAP_SHARED | mmap.MAP_POPULATE, prot=mmap.PROT_READ, offset=first
                )
            except OSError:  # a file system that cannot map files: the window is read instead (one copy)
                await self._feed(os.pread(fd, first + size - start, start))
            else:
                try:
                    with memoryview(mapped)[start - first :] as window:  # released before the mapping closes
                        await self._feed(window)
                finally:
                    mapped.close()
            start = first + size

    async def read_into(self, view: memoryview, *, until: float | None = None) -> int:
        """Fill `view` with the body's next bytes until it is full, the body ends (`end` is then set), or the
        clock (anyio.current_time) passes `until`; return how many.

        With the server's `read_into`, the kernel copies the bytes into `view` and nothing else does; without
        it, the body's pieces are copied in (what does not fit is kept for the next call, or the iteration).
        """
        read_into = self._read_into
        if read_into is None:
            return await self._pieces_into(view, until)

        def step(done: int, size: int) -> Awaitable[tuple[int, bool]]:
            return read_into(view[done : done + size])

        filled = await self._stepped(step, len(view), len(view), until)
        if self._taps and filled:
            await self._feed(view[:filled])
        return filled

    async def _stepped(
        self,
        step: Callable[[int, int], Awaitable[tuple[int, bool]]],
        most_a_step: int,
        most: int | None,
        until: float | None,
    ) -> int:
        """Take the body through the server's extension, `step(done, size)` at a time (at most `most_a_step`
        bytes, each step timed as one body piece), until it ends, `most` bytes are taken, the limit is reached or
        the clock passes `until`; return how many were taken."""
        done = 0
        # One scope for all the steps, its deadline moved on before each: timed as a scope per step would
        # be, at half the cost (8 against 16 µs a step; BENCHMARKS.md, optimisation 15).
        with anyio.CancelScope() as scope:
            self._waiting = scope
            while self.end is None:
                size = most_a_step if most is None else min(most_a_step, most - done)
                if self._limit is not None:
                    if self.received >= self._limit:  # and the body goes on
                        self.end = BodyEnd.LIMIT_EXCEEDED
                        break
                    size = min(size, self._limit - self.received)
                if size <= 0:
                    break
                started = anyio.current_time()
                scope.deadline = started + self._allowance
                count, more = await step(done, size)
                self._waited_for(started, count)
                done += count
                self.received += count
                if not more:
                    self.end = BodyEnd.COMPLETE
                elif count == 0:
                    self.end = BodyEnd.DISCONNECTED
                elif until is not None and anyio.current_time() >= until:
                    break
        self._waited(scope)
        return done

    async def _pieces_into(self, view: memoryview, until: float | None) -> int:
        filled = 0
        while filled < len(view):
            if not self._rest:
                if self.end is not None or (filled and until is not None and anyio.current_time() >= until):
                    break
                self._rest = memoryview(await self._next_piece())
                continue
            count = min(len(self._rest), len(view) - filled)
            view[filled : filled + count] = self._rest[:count]
            self._rest = self._rest[count:]
            filled += count
        if self._taps and filled:
            await self._feed(view[:filled])
        return filled

    def _waited(self, scope: anyio.CancelScope) -> bool:
        """Whether the wait in `scope` ended early: the read timeout passed (`end` is then TIMEOUT) or `stop` came."""
        self._waiting = None
        if scope.cancelled_caught:
            self.end = self.end or BodyEnd.TIMEOUT
        return scope.cancelled_caught

    def _waited_for(self, started: float, count: int) -> None:
        """Charge a wait begun at `started` that brought `count` bytes to the allowance (`min_rate`)."""
        if self._min_rate:
            used = anyio.current_time() - started
            self._allowance = min(self._read_timeout, self._allowance - used + count / self._min_rate)

    async def _next_piece(self) -> bytes:
        started = anyio.current_time()
        with anyio.move_on_after(self._allowance) as scope:
            self._waiting = scope
            message = await self._receive()
        if self._waited(scope) or self.end is not None:  # a piece that came as `stop` did is not stored
            return b""
        self._waited_for(started, len(message.get("body", b"")))
        if message["type"] == "http.disconnect":
            self.end = BodyEnd.DISCONNECTED
            return b""
        if not message.get("more_body", False):
            self.end = BodyEnd.COMPLETE
        return self._within_limit(message.get("body", b""))

    def _within_limit(self, chunk: bytes) -> bytes:
        if self._limit is not None and self.received + len(chunk) > self._limit:
            chunk = chunk[: self._limit - self.received]
            self.end = BodyEnd.LIMIT_EXCEEDED
        self.received += len(chunk)
        return chunk


async def digesting(chunks: AsyncIterable[bytes], hasher: Hasher, *, offload: bool) -> AsyncIterator[bytes]:
    """Pass `chunks` through while feeding them to `hasher` (one pass, no buffering).

    With `offload`, large chunks are hashed on a worker thread: hashlib releases the GIL, and a
    sha256 of 256 KiB costs ~1 ms here (PERF.md A3), too long to hold the event loop.
    """
    async for chunk in chunks:
        await _update(hasher, chunk, offload)
        yield chunk


async def _update(hasher: Hasher, data: bytes | memoryview, offload: bool) -> None:
    if offload and len(data) >= _OFFLOAD_MIN:
        await anyio.to_thread.run_sync(hasher.update, data)
    else:
        hasher.update(data)

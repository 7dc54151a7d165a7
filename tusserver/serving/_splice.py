"""Moving request body bytes from a connection's socket into a file inside the kernel (splice(2)), or
straight into a buffer of the app's (readv(2)).

Why: on uvicorn each body piece is read into a new `bytes` (uvloop), passed through httptools and
the ASGI channel, then written out again: a copy into Python and Python's work for every ~250 KiB.
splice(2) moves the bytes socket → pipe → file without leaving the kernel: the socket's pages go
into the pipe without a copy, and from the pipe they are copied once into the page cache, as a
`write` would copy them. Measured in W1: 40 % less server CPU per GiB (BENCHMARKS.md, optimisation 14).

How: the socket is duplicated, so that its readiness can be awaited on a descriptor of our own
while uvicorn's transport, which keeps the original, has reading paused. Bytes leave the socket
only between awaits, and reach the file before the next one, so a cancelled wait (a timeout, a
lock-release request) never leaves bytes in the pipe. Readiness is awaited on the event loop itself (a
reader and a future), not with anyio: `close` runs from uvicorn's `connection_lost`, a callback outside any
task, where anyio cannot find (and so cannot wake) the task waiting on the descriptor.

Buffers: a store that keeps parts in memory (Azure blocks) has the body read into its part buffer, with
readv(2) while the socket has bytes: one copy, the kernel's, where uvicorn's path makes three (a `bytes` per
read, httptools' `bytes` per body piece, the copy into the part) and passes every ~250 KiB through the ASGI
channel.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import fcntl
import os
import socket
from typing import NamedTuple

__all__ = ["BATCH", "MIN_PIPE", "PATIENCE", "PIPE_SIZE", "SPLICE_AVAILABLE", "Splicer"]

SPLICE_AVAILABLE = hasattr(os, "splice")  # Linux only
PIPE_SIZE = 256 * 1024  # 4 times the default; larger pipes measured no faster (BENCHMARKS.md)
MIN_PIPE = 64 * 1024  # below this (a user past fs.pipe-user-pages-soft gets 8 KiB) pieces are cheaper
# `read_into` has the socket wake it only once this many bytes wait (SO_RCVLOWAT; fewer wake-ups, reads and
# window updates: 3-8 % less CPU per 8 MiB PATCH on Azure, BENCHMARKS.md), or once `PATIENCE` seconds have
# passed: then it takes what came, so that a slow client's body goes on at its own pace.
BATCH = 1024 * 1024
PATIENCE = 0.02


class Splicer:
    """Moves bytes from one connection's socket into files, through a pipe of its own, or into buffers.

    Args:
        sock: the connection's socket descriptor (duplicated here; the original is not touched).
        pipe: whether to make the pipe now (`move` needs it; `read_into` does not).

    Raises:
        OSError: the descriptors could not be made (the process has none left), or the pipe
            holds less than `MIN_PIPE`.
    """

    def __init__(self, sock: int, *, pipe: bool = True) -> None:
        self._pipe: _Pipe | None = _new_pipe() if pipe else None
        try:
            # A socket object of our own for setsockopt; it never changes the descriptor's (shared) blocking mode.
            self._socket = socket.socket(fileno=os.dup(sock))
        except OSError:
            self._close_pipe()
            raise
        self._sock = self._socket.fileno()
        self._lowat = 1  # the socket's SO_RCVLOWAT, put back to 1 before uvicorn reads from it again
        self.closed = False
        self._loop = asyncio.get_running_loop()
        self._readable: asyncio.Future[None] | None = None  # while `move` or `read_into` waits for the socket

    @property
    def capacity(self) -> int:
        """What the pipe holds (the most one `move` step can take); 0 without a pipe."""
        return 0 if self._pipe is None else self._pipe.capacity

    async def read_into(self, view: memoryview) -> int:
        """Read up to `len(view)` bytes from the socket into `view`.

        Waits until the socket has `BATCH` bytes (or all of `view`), or has any after `PATIENCE`, then reads
        what it has (several reads while it has more), up to `len(view)`. Returns how many; 0 when the client
        closed or reset the connection, or `close` was called.
        """
        total = 0
        batch = min(len(view), BATCH)
        while total < len(view) and not self.closed:
            try:
                count = os.readv(self._sock, [view[total:]])
            except BlockingIOError:
                if total:
                    break
                await self._wait_readable(batch)
                batch = 1  # woken with nothing to read (patience ran out on a stalled client): any byte will do
                continue
            except OSError:  # ECONNRESET and the like: the client is gone
                break
            if count == 0:
                break
            total += count
        return total

    async def move(self, fd: int, limit: int) -> int:
        """Move up to `limit` bytes from the socket into `fd` at its file position.

        Waits until the socket has bytes, then moves what it has, up to `limit`. Returns how many
        moved; 0 when the client closed or reset the connection, or `close` was called.

        Raises:
            OSError: writing into `fd` failed, or no pipe could be made; the splicer is closed, its
                pipe may hold bytes.
        """
        if self._pipe is None:
            self._pipe = _new_pipe()
        capacity = self._pipe.capacity
        moved = await self._from_socket(min(limit, capacity), wait=True)
        total = 0
        while moved:
            try:
                _drain(self._pipe.read_end, fd, moved)
            except OSError:
                self.close()
                raise
            total += moved
            moved = await self._from_socket(min(limit - total, capacity), wait=False) if total < limit else 0
        return total

    async def _from_socket(self, size: int, *, wait: bool) -> int:
        assert self._pipe is not None
        while not self.closed:
            try:
                return os.splice(self._sock, self._pipe.write_end, size, flags=os.SPLICE_F_MOVE | os.SPLICE_F_NONBLOCK)
            except BlockingIOError:
                if not wait:
                    return 0
                await self._wait_readable()
            except OSError:  # ECONNRESET and the like: the client is gone
                return 0
        return 0

    async def _wait_readable(self, batch: int = 1) -> None:
        """Until the socket has bytes (or EOF), or `close` is called; with `batch`, until it has that many or
        `PATIENCE` has passed."""
        self._readable = readable = self._loop.create_future()
        self._set_lowat(batch)
        patience = self._loop.call_later(PATIENCE, _set, readable) if batch > 1 else None
        self._loop.add_reader(self._sock, _set, readable)
        try:
            await readable
        finally:
            self._readable = None
            if patience is not None:
                patience.cancel()
            if not self.closed:  # `close` removed the reader before the number could be reused
                self._loop.remove_reader(self._sock)

    def _set_lowat(self, count: int) -> None:
        if count != self._lowat:
            with contextlib.suppress(OSError):  # best effort: as before, the socket then wakes for any byte
                self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVLOWAT, count)
                self._lowat = count

    def close(self) -> None:
        """Release the descriptors and wake a pending `move`, which then returns 0.

        Afterwards no call touches them again: their numbers may be reused by other connections.
        """
        if self.closed:
            return
        self.closed = True
        if self._readable is not None:
            self._loop.remove_reader(self._sock)
            _set(self._readable)
        self._set_lowat(1)
        self._socket.close()
        self._close_pipe()

    def _close_pipe(self) -> None:
        if self._pipe is not None:
            os.close(self._pipe.read_end)
            os.close(self._pipe.write_end)
            self._pipe = None


class _Pipe(NamedTuple):
    read_end: int
    write_end: int
    capacity: int


def _new_pipe() -> _Pipe:
    """A pipe of `PIPE_SIZE`, or what the user's pipe budget allows (at least `MIN_PIPE`)."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    with contextlib.suppress(OSError):  # over the user's pipe budget: the pipe keeps its size
        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, PIPE_SIZE)
    capacity = fcntl.fcntl(write_end, fcntl.F_GETPIPE_SZ)
    if capacity < MIN_PIPE:
        os.close(read_end)
        os.close(write_end)
        raise OSError(errno.ENOBUFS, f"the pipe holds only {capacity} bytes")
    return _Pipe(read_end, write_end, capacity)


def _set(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _drain(pipe: int, fd: int, count: int) -> None:
    """Move exactly `count` bytes, all waiting in `pipe`, into `fd` at its file position."""
    while count:
        written = os.splice(pipe, fd, count, flags=os.SPLICE_F_MOVE)
        if written == 0:
            raise OSError(errno.EIO, "the file took no bytes from the pipe")
        count -= written

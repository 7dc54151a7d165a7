"""LocalStorage reserves disk blocks ahead of big appends and never leaves them past the data.

Measured on the test machine's file system (ext4 here; tmpfs and XFS behave the same): the
blocks a file holds (`st_blocks`) against the bytes it holds (`st_size`).
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from storage_backends import LocalStorage, _reserve
from storage_backends.base import StorageRef

PIECE = 256 * 1024
Upload = tuple[LocalStorage, StorageRef, Path]
SLACK = 64 * 1024  # file-system blocks past the end that are not ours to count (a last partial block)


def allocated(path: Path) -> int:
    return os.stat(path).st_blocks * 512


class Disconnected(Exception):
    """The client went away in the middle of the body."""


async def body(
    total: int, seen: list[tuple[int, int]], path: Path, *, fail_after: int | None = None
) -> AsyncIterator[bytes]:
    """`total` bytes in PIECE pieces; before each piece, what the file held (size, blocks)."""
    sent = 0
    while sent < total:
        seen.append((os.stat(path).st_size, allocated(path)))
        if fail_after is not None and sent >= fail_after:
            raise Disconnected
        piece = min(PIECE, total - sent)
        yield bytes([sent // PIECE % 251]) * piece
        sent += piece


@pytest.fixture
async def upload(tmp_path: Path) -> Upload:
    storage = LocalStorage(tmp_path)
    return storage, await storage.create("big", length=None), tmp_path / "big"


@pytest.mark.anyio
async def test_big_append_reserves_ahead_without_growing_the_size(upload: Upload) -> None:
    storage, ref, path = upload
    seen: list[tuple[int, int]] = []
    total = _reserve.LEAD_IN + 3 * _reserve.WINDOW + 1000
    assert (await storage.append(ref, 0, body(total, seen, path))).length == total
    # The size only ever counts bytes written (the offset-recovery rule of LocalStorage) ...
    assert [size for size, _ in seen] == [min(i * PIECE, total) for i in range(len(seen))]
    # ... while past the lead-in the file holds blocks up to a window ahead of them.
    ahead = [blocks - size for size, blocks in seen if size > _reserve.LEAD_IN]
    assert max(ahead) >= _reserve.WINDOW
    # Done, it holds no block past its end: a finished upload takes the space of its bytes.
    assert os.stat(path).st_size == total
    assert allocated(path) < total + SLACK


@pytest.mark.anyio
async def test_reserves_no_further_than_the_declared_size(upload: Upload) -> None:
    """With Content-Length known, a body received whole leaves nothing to free (no churn per PATCH)."""
    storage, ref, path = upload
    seen: list[tuple[int, int]] = []
    total = _reserve.LEAD_IN + 3 * _reserve.WINDOW + 1000
    assert (await storage.append(ref, 0, body(total, seen, path), size=total)).length == total
    assert max(blocks - size for size, blocks in seen) >= _reserve.WINDOW  # still ahead of the writes
    assert all(blocks < total + SLACK for _, blocks in seen)  # but never past the declared end
    assert allocated(path) < total + SLACK


@pytest.mark.anyio
async def test_small_append_reserves_nothing(upload: Upload) -> None:
    storage, ref, path = upload
    seen: list[tuple[int, int]] = []
    total = _reserve.LEAD_IN
    assert (await storage.append(ref, 0, body(total, seen, path))).length == total
    assert all(blocks < size + SLACK for size, blocks in seen)


@pytest.mark.anyio
async def test_an_interrupted_append_leaves_no_reserved_blocks(upload: Upload) -> None:
    storage, ref, path = upload
    seen: list[tuple[int, int]] = []
    stop, declared = _reserve.LEAD_IN + PIECE, 64 * 1024 * 1024
    with pytest.raises(Disconnected):
        await storage.append(ref, 0, body(declared, seen, path, fail_after=stop), size=declared)
    assert seen[-1][1] >= stop + _reserve.WINDOW - PIECE  # it had reserved ahead
    assert os.stat(path).st_size == stop
    assert allocated(path) < stop + SLACK
    # The next append goes on from the stored bytes, and the file is exact.
    assert (await storage.append(ref, stop, body(PIECE, [], path))).length == stop + PIECE
    assert allocated(path) < stop + PIECE + SLACK


@pytest.mark.anyio
async def test_appends_go_on_where_reserving_fails(upload: Upload, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file system without fallocate, or a disk too full to reserve: the writes still happen."""
    calls: list[int] = []

    def refuse(fd: int, mode: int, offset: int, length: int) -> int:
        calls.append(mode)
        return -1

    monkeypatch.setattr(_reserve, "_fallocate", refuse)
    storage, ref, path = upload
    total = _reserve.LEAD_IN + 3 * _reserve.WINDOW
    assert (await storage.append(ref, 0, body(total, [], path))).length == total
    assert calls == [0x01]  # tried once, then not again for this append, and nothing to release
    expected = b"".join(bytes([i % 251]) * PIECE for i in range(total // PIECE))
    assert path.read_bytes() == expected

"""The piece buffers kept for reuse by the S3 and Azure stores (storage_backends/_filling.py)."""

from __future__ import annotations

from storage_backends._filling import BufferPool


def test_a_buffer_given_back_is_taken_again_for_its_size_only() -> None:
    pool = BufferPool(2, bytearray, len)
    first = pool.take(8)
    assert len(first) == 8
    assert pool.give_back(first)
    assert pool.take(4) is not first  # another size: a new buffer
    assert pool.take(8) is first
    assert pool.take(8) is not first  # taken already


def test_at_most_keep_buffers_are_kept() -> None:
    pool = BufferPool(1, bytearray, len)
    kept, extra = pool.take(8), pool.take(8)
    assert pool.give_back(kept)
    assert not pool.give_back(extra)  # the caller frees it
    assert pool.take(8) is kept
    assert pool.take(8) is not extra

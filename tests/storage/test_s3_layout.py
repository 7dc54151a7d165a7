"""The pure arithmetic of the S3 backend: part sizes, tail headers, concatenation plans."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_backends.s3.layout import (
    MAX_OBJECT_SIZE,
    MAX_PART_SIZE,
    MAX_PARTS,
    MIN_PART_SIZE,
    PLANNED_PARTS,
    MiB,
    TailHeader,
    part_size_for,
    plan_concat,
    tail_key,
    tail_prefix,
)

PREFERRED, DEFERRED = 8 * MiB, 16 * MiB


def test_small_upload_gets_the_preferred_part_size() -> None:
    assert part_size_for(1, preferred=PREFERRED, deferred=DEFERRED) == PREFERRED
    assert part_size_for(PREFERRED * PLANNED_PARTS, preferred=PREFERRED, deferred=DEFERRED) == PREFERRED


def test_large_upload_grows_its_part_size_to_fit_the_planned_parts() -> None:
    """Planned for 9,000 parts: the other 1,000 numbers are for reservations that writers never used."""
    length = PREFERRED * PLANNED_PARTS + 1
    size = part_size_for(length, preferred=PREFERRED, deferred=DEFERRED)
    assert size == PREFERRED + MiB  # rounded up to whole MiB
    assert -(-length // size) <= PLANNED_PARTS < MAX_PARTS


def test_largest_object_fits_in_10000_parts_under_5_gib() -> None:
    size = part_size_for(MAX_OBJECT_SIZE, preferred=PREFERRED, deferred=DEFERRED)
    assert MIN_PART_SIZE <= size <= MAX_PART_SIZE
    assert -(-MAX_OBJECT_SIZE // size) <= MAX_PARTS


def test_part_size_never_below_5_mib() -> None:
    assert part_size_for(10, preferred=MiB, deferred=DEFERRED) == MIN_PART_SIZE


def test_deferred_length_gets_the_deferred_part_size() -> None:
    assert part_size_for(None, preferred=PREFERRED, deferred=DEFERRED) == DEFERRED


def test_object_over_5_tib_is_refused() -> None:
    with pytest.raises(ValueError, match="5497558138880"):
        part_size_for(MAX_OBJECT_SIZE + 1, preferred=PREFERRED, deferred=DEFERRED)


@given(st.integers(min_value=0, max_value=MAX_OBJECT_SIZE), st.integers(min_value=1, max_value=64))
def test_any_length_fits_the_s3_limits(length: int, preferred_mib: int) -> None:
    size = part_size_for(length, preferred=preferred_mib * MiB, deferred=DEFERRED)
    assert MIN_PART_SIZE <= size <= MAX_PART_SIZE
    assert -(-length // size) <= MAX_PARTS


def test_tail_keys_sort_by_part_number_and_share_a_prefix() -> None:
    assert tail_key("up", 2) < tail_key("up", 10)
    assert tail_key("up", 7).startswith(tail_prefix("up"))
    assert not tail_key("up", 7).startswith(tail_prefix("up2"))


def test_each_writer_names_its_tails_apart() -> None:
    assert tail_key("up", 7, "a1") != tail_key("up", 7, "b2")
    assert tail_key("up", 7, "a1").startswith(tail_prefix("up"))


def test_tail_header_round_trips_and_says_where_the_bytes_start() -> None:
    header = TailHeader(parts=((1, '"abc"'), (4, "def")))  # numbers rise, with gaps where reservations went unused
    data = header.encode() + b"\nbytes"
    decoded, start = TailHeader.decode(data)
    assert decoded == header
    assert data[start:] == b"\nbytes"


def test_tail_header_of_the_first_format_numbers_its_parts_from_one() -> None:
    data = b'tus-s3-tail/1 {"from": 1, "etags": ["a", "b"]}\nrest'
    assert TailHeader.decode(data) == (TailHeader(parts=((1, "a"), (2, "b"))), data.index(b"rest"))


@pytest.mark.parametrize("data", [b"", b"plain bytes\n", b"tus-s3-tail/1 {no newline"])
def test_tail_header_refuses_other_objects(data: bytes) -> None:
    with pytest.raises(ValueError, match="not a tail"):
        TailHeader.decode(data)


def _joined(sizes: list[int]) -> list[tuple[int, int, int]]:
    """The plan's segments in order, adjacent pieces of one source merged: (source, start, end)."""
    merged: list[tuple[int, int, int]] = []
    for segment in [segment for part in plan_concat(sizes) for segment in part.segments]:
        assert segment.size > 0
        if merged and merged[-1][0] == segment.source and merged[-1][2] == segment.start:
            merged[-1] = (segment.source, merged[-1][1], segment.end)
        else:
            merged.append((segment.source, segment.start, segment.end))
    return merged


def test_large_sources_are_copied_whole_and_small_ones_gathered() -> None:
    plan = plan_concat([6 * MiB, 1, 3 * MiB, 5 * MiB])
    assert [part.copied for part in plan] == [True, False, True]
    assert [part.size for part in plan] == [6 * MiB, 5 * MiB, 3 * MiB + 1]
    assert [part.number for part in plan] == [1, 2, 3]


def test_every_part_but_the_last_has_at_least_5_mib() -> None:
    sizes = [1, 2 * MiB, 0, 7 * MiB + 3, 4 * MiB, 4 * MiB, 5 * MiB, 1]
    plan = plan_concat(sizes)
    assert all(part.size >= MIN_PART_SIZE for part in plan[:-1])
    assert all(part.size < 2 * MIN_PART_SIZE for part in plan if not part.copied)


def test_source_over_5_gib_is_split_into_copies() -> None:
    plan = plan_concat([MAX_PART_SIZE * 2 + 1])
    assert len(plan) == 3
    assert all(part.copied and MIN_PART_SIZE <= part.size <= MAX_PART_SIZE for part in plan)
    assert sum(part.size for part in plan) == MAX_PART_SIZE * 2 + 1


def test_empty_sources_plan_nothing() -> None:
    assert plan_concat([]) == []
    assert plan_concat([0, 0]) == []


def test_too_many_parts_is_refused() -> None:
    with pytest.raises(ValueError, match="more than S3's 10000"):
        plan_concat([MIN_PART_SIZE] * (MAX_PARTS + 1))


@given(st.lists(st.integers(min_value=0, max_value=3 * MIN_PART_SIZE), max_size=8))
def test_plan_keeps_every_byte_in_order(sizes: list[int]) -> None:
    assert _joined(sizes) == [(source, 0, size) for source, size in enumerate(sizes) if size]
    plan = plan_concat(sizes)
    assert all(part.size >= MIN_PART_SIZE for part in plan[:-1])

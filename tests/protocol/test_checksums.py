"""The checksum extension's algorithms and Upload-Checksum parsing (tusserver.protocol.checksums), PROTOCOL.md
items 60-64; `check_received` decides whether a checksummed body may be kept (items 62 and 64)."""

from __future__ import annotations

import base64
import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.checksum_reference import REFERENCE
from tusserver.protocol import errors
from tusserver.protocol.checksums import ALGORITHMS, SLOW_ALGORITHMS, Checksum, new_hasher, parse_checksum
from tusserver.protocol.rules import BodyEnd, check_received

INPUTS = [b"", b"hello", b"hello world", bytes(range(256)) * 17]

# Published test vectors, as hex, one per algorithm (the standard "check" values for crc32 and xxHash).
KNOWN_VECTORS = [
    pytest.param("sha1", b"abc", "a9993e364706816aba3e25717850c26c9cd0d89d", id="sha1-abc"),
    pytest.param("md5", b"", "d41d8cd98f00b204e9800998ecf8427e", id="md5-empty"),
    pytest.param("sha256", b"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", id="sha256-abc"),
    pytest.param(
        "sha512",
        b"abc",
        "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a"
        "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f",
        id="sha512-abc",
    ),
    pytest.param("crc32", b"123456789", "cbf43926", id="crc32-check"),
    pytest.param("xxh32", b"", "02cc5d05", id="xxh32-empty"),
    pytest.param("xxh64", b"", "ef46db3751d8e999", id="xxh64-empty"),
    pytest.param("xxh3", b"", "2d06800538d394c2", id="xxh3-empty"),
    pytest.param("xxh128", b"", "99aa06d3014798d86001c324468d497f", id="xxh128-empty"),
]

# PROTOCOL.md item 61: Upload-Checksum header values and the bodies they match.
ITEM_61_VECTORS = [
    pytest.param("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=", b"hello world", id="sha1-hello-world"),
    pytest.param("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=", b"hello", id="sha1-hello"),
    pytest.param("md5 XUFAKrxLKna5cZ2REBfFkg==", b"hello", id="md5-hello"),
    pytest.param("sha256 LPJNul+wow4m6DsqxbninhsWHlwfp0JecwQzYpOLmCQ=", b"hello", id="sha256-hello"),
    pytest.param("sha1 E7X121m3do5RTtnrOi5XTG9Uq0A=", b"Hello, tus!\n", id="sha1-hello-tus"),
]

SHA1_HELLO = base64.b64decode("qvTGHdzF6KLavt4PO0gs2a6pQ00=")


def digest_of(algorithm: str, *pieces: bytes) -> bytes:
    """The module's digest of the pieces, fed one `update` at a time (as the body streams)."""
    hasher = new_hasher(algorithm)
    for piece in pieces:
        hasher.update(piece)
    return hasher.digest()


def test_every_algorithm_has_a_reference_and_a_known_vector() -> None:
    """Guards the tables below: a new algorithm cannot go untested."""
    assert set(ALGORITHMS) == set(REFERENCE) == {param.values[0] for param in KNOWN_VECTORS}


def test_sha1_is_listed_first() -> None:
    """PROTOCOL.md item 60: sha1 is required; Tus-Checksum-Algorithm lists it first."""
    assert next(iter(ALGORITHMS)) == "sha1"


@pytest.mark.parametrize(("algorithm", "data", "expected"), KNOWN_VECTORS)
def test_hasher_matches_published_vector(algorithm: str, data: bytes, expected: str) -> None:
    assert digest_of(algorithm, data).hex() == expected


@pytest.mark.parametrize("data", INPUTS, ids=["empty", "hello", "hello-world", "4352-bytes"])
@pytest.mark.parametrize("algorithm", list(REFERENCE))
def test_hasher_matches_reference_implementation(algorithm: str, data: bytes) -> None:
    assert digest_of(algorithm, data) == REFERENCE[algorithm](data)


@pytest.mark.parametrize("algorithm", list(REFERENCE))
def test_declared_digest_size_matches_digest(algorithm: str) -> None:
    assert ALGORITHMS[algorithm][1] == len(REFERENCE[algorithm](b"x"))


def test_slow_algorithms_are_the_hashlib_ones() -> None:
    """Only these are hashed on a worker thread; each must be a known algorithm."""
    assert frozenset({"sha1", "md5", "sha256", "sha512"}) == SLOW_ALGORITHMS


@given(data=st.binary(max_size=2048), cuts=st.lists(st.integers(min_value=0, max_value=2048), max_size=6))
def test_streamed_digest_equals_one_shot_digest_for_any_split(data: bytes, cuts: list[int]) -> None:
    """The digest is computed while the body streams, so the chunking must not matter."""
    bounds = [0, *sorted(min(cut, len(data)) for cut in cuts), len(data)]
    pieces = [data[start:end] for start, end in itertools.pairwise(bounds)]
    for algorithm, reference in REFERENCE.items():
        assert digest_of(algorithm, *pieces) == reference(data), algorithm


@pytest.mark.parametrize(("header", "body"), ITEM_61_VECTORS)
def test_item_61_vector_parses_and_matches_body(header: str, body: bytes) -> None:
    checksum = parse_checksum(header)
    assert checksum is not None
    assert digest_of(checksum.algorithm, body) == checksum.digest


def test_parse_checksum_returns_algorithm_and_digest() -> None:
    assert parse_checksum("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00=") == Checksum("sha1", SHA1_HELLO)


def test_parse_checksum_without_header_returns_none() -> None:
    assert parse_checksum(None) is None


@pytest.mark.parametrize(
    ("value", "error"),
    [
        pytest.param("md4 qvTGHdzF6KLavt4PO0gs2a6pQ00=", errors.ChecksumAlgorithmError, id="md4-unsupported"),
        pytest.param("SHA1 qvTGHdzF6KLavt4PO0gs2a6pQ00=", errors.ChecksumAlgorithmError, id="uppercase-name"),
        pytest.param("", errors.ChecksumAlgorithmError, id="empty"),
        pytest.param("sha1", errors.InvalidChecksumError, id="no-digest"),
        pytest.param("sha1qvTGHdzF6KLavt4PO0gs2a6pQ00=", errors.ChecksumAlgorithmError, id="no-space"),
        pytest.param("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00", errors.InvalidChecksumError, id="missing-padding"),
        pytest.param("sha1 qvTGHdzF6KLavt4PO0gs2a6p!00=", errors.InvalidChecksumError, id="not-base64"),
        pytest.param("sha1 ", errors.InvalidChecksumError, id="space-no-digest"),
        pytest.param("sha1 qvTGHdzF6KLavt4PO0gs2a6pQ00\xe9", errors.InvalidChecksumError, id="non-ascii-digest"),
        pytest.param("sha1 \xff\xfe", errors.InvalidChecksumError, id="non-ascii-only"),
        pytest.param("sha1\xa0qvTGHdzF6KLavt4PO0gs2a6pQ00=", errors.ChecksumAlgorithmError, id="nbsp-separator"),
        pytest.param("sh\xe41 qvTGHdzF6KLavt4PO0gs2a6pQ00=", errors.ChecksumAlgorithmError, id="non-ascii-name"),
    ],
)
def test_parse_checksum_rejects_with_400(value: str, error: type[errors.TusError]) -> None:
    """PROTOCOL.md item 63: unsupported algorithm (names are lower case) or malformed header -> 400.

    A non-ASCII character in the digest was a ValueError from base64 (a 500) before issue 19.
    """
    with pytest.raises(error) as raised:
        parse_checksum(value)
    assert raised.value.status == 400


@pytest.mark.parametrize(
    ("value", "length"),
    [
        pytest.param("sha1 XUFAKrxLKna5cZ2REBfFkg==", 16, id="md5-length-for-sha1"),
        pytest.param("sha256 qvTGHdzF6KLavt4PO0gs2a6pQ00=", 20, id="sha1-length-for-sha256"),
        pytest.param("crc32 AAAAAAAA", 6, id="crc32-six-bytes"),
        pytest.param("sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAAA", 21, id="item-62-example"),
    ],
)
def test_digest_of_wrong_length_parses_and_mismatches_460(value: str, length: int) -> None:
    """PROTOCOL.md item 63 (corrected): a well-formed digest of the wrong length is a digest that does not
    match, so 460 once the body has arrived, not 400 (suite EXT-CSUM-004/005/008, SCN-ERROR-002)."""
    checksum = parse_checksum(value)
    assert checksum is not None
    assert len(checksum.digest) == length
    with pytest.raises(errors.ChecksumMismatchError) as raised:
        check_received(BodyEnd.COMPLETE, checksum, digest_of(checksum.algorithm, b"hello world"))
    assert raised.value.status == 460


def test_parse_checksum_trims_spaces_and_tabs() -> None:
    """RFC 9110 §5.6.3: OWS around the value and the digest is spaces and tabs."""
    assert parse_checksum("\tsha1  qvTGHdzF6KLavt4PO0gs2a6pQ00=\t ") == Checksum("sha1", SHA1_HELLO)


def test_checksum_error_codes_are_distinct() -> None:
    assert errors.ChecksumAlgorithmError.code == "ERR_CHECKSUM_ALGORITHM_UNSUPPORTED"
    assert errors.InvalidChecksumError.code == "ERR_INVALID_CHECKSUM"
    assert (errors.ChecksumMismatchError.status, errors.ChecksumMismatchError.code) == (460, "ERR_CHECKSUM_MISMATCH")


@pytest.mark.parametrize("end", list(BodyEnd), ids=[end.value for end in BodyEnd])
def test_check_received_without_checksum_accepts_any_end(end: BodyEnd) -> None:
    """Without Upload-Checksum the received bytes are kept however the body ended (item 26)."""
    check_received(end, None, None)


def test_check_received_with_matching_digest_accepts() -> None:
    check_received(BodyEnd.COMPLETE, Checksum("sha1", SHA1_HELLO), SHA1_HELLO)


def test_check_received_with_other_digest_raises_460() -> None:
    """PROTOCOL.md item 62."""
    with pytest.raises(errors.ChecksumMismatchError):
        check_received(BodyEnd.COMPLETE, Checksum("sha1", SHA1_HELLO), bytes(20))


@pytest.mark.parametrize(
    ("end", "error"),
    [
        pytest.param(BodyEnd.DISCONNECTED, errors.ChecksumMismatchError, id="disconnected"),
        pytest.param(BodyEnd.INTERRUPTED, errors.UploadInterruptedError, id="interrupted"),
        pytest.param(BodyEnd.TIMEOUT, errors.ReadTimeoutError, id="timeout"),
        pytest.param(BodyEnd.LIMIT_EXCEEDED, errors.SizeExceededError, id="limit-exceeded"),
    ],
)
def test_check_received_with_checksum_rejects_incomplete_body(end: BodyEnd, error: type[errors.TusError]) -> None:
    """PROTOCOL.md item 64: a body that did not arrive whole cannot be verified, even if the digest matches."""
    with pytest.raises(error):
        check_received(end, Checksum("sha1", SHA1_HELLO), SHA1_HELLO)

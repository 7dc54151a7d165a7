"""Upload-Metadata parsing and serialising (PROTOCOL.md items 16, 39, 40); tus §Upload-Metadata."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tusserver.protocol import errors
from tusserver.protocol.headers import MAX_METADATA_LENGTH, decode_metadata, parse_metadata, serialize_metadata

# Keys: non-empty printable ASCII without space or comma (tus: "MUST NOT contain spaces and commas").
KEY_ALPHABET = "".join(chr(c) for c in range(0x21, 0x7F) if chr(c) != ",")
keys = st.text(alphabet=KEY_ALPHABET, min_size=1, max_size=20)
values = st.binary(max_size=200)
metadata = st.dictionaries(keys, values, max_size=10)


def _encode(pairs: dict[str, bytes]) -> dict[str, str]:
    return {key: base64.b64encode(value).decode("ascii") for key, value in pairs.items()}


# --- round trips ---------------------------------------------------------------------------------------------


@given(metadata)
def test_serialize_then_parse_round_trips(pairs: dict[str, bytes]) -> None:
    """Item 16: HEAD echoes the pairs from creation."""
    encoded = _encode(pairs)
    assert parse_metadata(serialize_metadata(encoded)) == encoded


@given(metadata)
def test_parse_then_decode_gives_original_bytes(pairs: dict[str, bytes]) -> None:
    assert decode_metadata(parse_metadata(serialize_metadata(_encode(pairs)))) == pairs


@given(metadata)
def test_parse_tolerates_spaces_after_commas(pairs: dict[str, bytes]) -> None:
    """Item 39 (IMPL): optional spaces after commas, as tusd and tus-php accept."""
    encoded = _encode(pairs)
    header = ",  ".join(f"{key} {value}" if value else key for key, value in encoded.items())
    assert parse_metadata(header) == encoded


# --- valid headers --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (None, {}),
        ("", {}),
        ("   ", {}),
        ("is_confidential", {"is_confidential": ""}),
        (
            "filename d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==,is_confidential",
            {"filename": "d29ybGRfZG9taW5hdGlvbl9wbGFuLnBkZg==", "is_confidential": ""},
        ),
        ("a YQ==, b Yg==", {"a": "YQ==", "b": "Yg=="}),
        ("a YWI=,b YWJj", {"a": "YWI=", "b": "YWJj"}),
        ("k=v.x-y_z+1 YQ==", {"k=v.x-y_z+1": "YQ=="}),
        ("k a+/9", {"k": "a+/9"}),
    ],
    ids=[
        "absent",
        "empty",
        "blank",
        "key-without-value",
        "spec-example",
        "spaces-after-commas",
        "padding-variants",
        "punctuation-in-key",
        "plus-and-slash",
    ],
)
def test_parse_metadata_valid(header: str | None, expected: dict[str, str]) -> None:
    """Item 39: a key without a value means an empty value; values are padded standard base64."""
    assert parse_metadata(header) == expected


def test_parse_metadata_accepts_header_of_exactly_max_length() -> None:
    header = "abc " + "QUFB" * ((MAX_METADATA_LENGTH - 4) // 4)
    assert len(header) == MAX_METADATA_LENGTH
    assert parse_metadata(header) == {"abc": header[4:]}


# --- invalid headers ------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "header",
    [
        "k !!!",
        "k YQ== x",
        ",a YQ==",
        "a YQ==,,b Yg==",
        "a YQ==,a Yg==",
        "a,a",
        "a YQ==,",
        "a YQ==, ",
        "k YQ",
        "k YQ=",
        "k Y===",
        "k -_8=",
        "a\tb YQ==",
        "ключ YQ==",
        "abcd " + "QUFB" * ((MAX_METADATA_LENGTH - 4) // 4),
        "\xa0",
        "\x85",
    ],
    ids=[
        "non-base64",
        "three-tokens",
        "empty-key-leading-comma",
        "empty-key-between-commas",
        "duplicate-key",
        "duplicate-bare-key",
        "trailing-comma",
        "trailing-comma-space",
        "unpadded",
        "short-padding",
        "over-padded",
        "urlsafe-alphabet",
        "tab-in-key",
        "non-ascii-key",
        "too-long",
        "nbsp-only",  # issue 19: blank means spaces and tabs (RFC 9110 §5.6.3), not Unicode whitespace
        "nel-only",
    ],
)
def test_parse_metadata_invalid_raises_invalid_metadata(header: str) -> None:
    """Item 40: invalid metadata -> 400 ERR_INVALID_METADATA."""
    with pytest.raises(errors.InvalidMetadataError) as info:
        parse_metadata(header)
    assert (info.value.status, info.value.code) == (400, "ERR_INVALID_METADATA")


# --- serialize / decode ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("pairs", "expected"),
    [({}, ""), ({"a": "YQ=="}, "a YQ=="), ({"a": "YQ==", "b": ""}, "a YQ==,b")],
    ids=["empty", "one-pair", "bare-key-for-empty-value"],
)
def test_serialize_metadata(pairs: dict[str, str], expected: str) -> None:
    assert serialize_metadata(pairs) == expected


def test_decode_metadata_gives_bytes() -> None:
    assert decode_metadata({"name": "aGVsbG8=", "flag": ""}) == {"name": b"hello", "flag": b""}

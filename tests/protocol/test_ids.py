"""Upload ids a pre-create hook chooses, and the storage keys they map to (issue 20)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from storage_backends._keys import KEY_PATTERN
from tusserver.protocol.ids import CUSTOM_ID, custom_id_problem, storage_key, upload_id_of

IDS = st.text(alphabet="abcXYZ019-_.~", min_size=1, max_size=128).filter(lambda text: text not in {".", ".."})


@given(IDS)
def test_every_custom_id_maps_to_a_safe_key_and_back(upload_id: str) -> None:
    key = storage_key(upload_id)
    assert KEY_PATTERN.fullmatch(key) or len(key) > 200  # too long ones are refused (below)
    assert upload_id_of(key) == upload_id


@given(IDS, IDS)
def test_different_ids_get_different_keys(first: str, second: str) -> None:
    assert (storage_key(first) == storage_key(second)) == (first == second)


def test_our_own_ids_are_their_own_keys() -> None:
    assert storage_key("0123456789abcdef0123456789abcdef") == "0123456789abcdef0123456789abcdef"


@pytest.mark.parametrize("chosen", [".", "..", "", "a/b", "a b", "ü", "x" * 129, "." * 128])
def test_unusable_ids_are_explained(chosen: str) -> None:
    assert custom_id_problem(chosen) is not None
    assert not CUSTOM_ID.fullmatch(chosen) or len(storage_key(chosen)) > 200


@pytest.mark.parametrize("key", ["_x", "a_", "_"])
def test_keys_no_id_maps_to_are_recognised(key: str) -> None:
    assert upload_id_of(key) is None

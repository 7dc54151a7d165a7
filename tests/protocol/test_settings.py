"""Settings validation (tusserver.settings): base_path normalisation and field bounds."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tusserver.settings import Settings


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("/files/", "/files/"),
        ("/files", "/files/"),
        ("files/", "/files/"),
        ("files", "/files/"),
        ("//files//", "/files/"),
        ("/api/v1/files", "/api/v1/files/"),
        ("/", "/"),
        ("", "/"),
        ("///", "/"),
    ],
    ids=["canonical", "no-trailing", "no-leading", "bare", "doubled", "nested", "root", "empty", "slashes-only"],
)
def test_base_path_is_normalised_to_leading_and_trailing_slash(raw: str, expected: str) -> None:
    assert Settings(base_path=raw).base_path == expected


def test_default_base_path_is_files() -> None:
    assert Settings().base_path == "/files/"


def test_default_max_concat_parts_is_100() -> None:
    """Issue 19, defect 7: the documented default (README, Parallel uploads)."""
    assert Settings().max_concat_parts == 100


@pytest.mark.parametrize(
    "field_value",
    [
        {"port": -1},
        {"port": 65536},
        {"max_size": -1},
        {"lock_timeout": 0},
        {"read_timeout": -1.0},
    ],
    ids=["port-negative", "port-too-big", "max-size-negative", "lock-timeout-zero", "read-timeout-negative"],
)
def test_out_of_range_values_raise_validation_error(field_value: dict[str, float]) -> None:
    with pytest.raises(ValidationError):
        Settings.model_validate(field_value)


def test_settings_are_frozen() -> None:
    settings = Settings()
    with pytest.raises(ValidationError):
        settings.port = 1  # type: ignore[misc]

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


AZURITE = "DefaultEndpointsProtocol=http;AccountName=a;AccountKey=a2V5;BlobEndpoint=http://127.0.0.1:1/a;"


def test_azure_storage_with_a_connection_string_and_a_week_of_expiration_is_valid() -> None:
    settings = Settings(storage="azure", azure_container="tus", azure_connection_string=AZURITE, expiration=7 * 86400)
    assert settings.azure_block_size == 8 * 1024 * 1024
    assert AZURITE not in repr(settings)  # secrets stay out of logs


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"azure_connection_string": AZURITE}, "needs --azure-container"),
        ({"azure_container": "tus"}, "--azure-connection-string or --azure-account-url"),
        ({"azure_container": "tus", "azure_connection_string": AZURITE, "azure_account_url": "https://a"},
         "--azure-connection-string or --azure-account-url"),
        ({"azure_container": "tus", "azure_connection_string": AZURITE, "azure_account_key": "k"},
         "go with --azure-account-url"),
        ({"azure_container": "tus", "azure_connection_string": AZURITE, "expiration": 7 * 86400 + 1},
         "--expiration of at most 7d"),
        ({"azure_container": "tus", "azure_connection_string": AZURITE, "expiration": None},
         "--expiration of at most 7d"),
    ],
    ids=["no-container", "no-credentials", "two-ways", "key-with-string", "eight-days", "never-expires"],
)  # fmt: skip
def test_azure_storage_refuses_an_incomplete_setup_or_long_expiration(fields: dict[str, object], message: str) -> None:
    """Issue 22: Azure drops uncommitted blocks after about 7 days: a longer --expiration is refused at start-up."""
    with pytest.raises(ValidationError, match=message):
        Settings(storage="azure", **fields)

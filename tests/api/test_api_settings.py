"""`--api-path`: where the status API is served, normalized; off; never the root nor the upload collection."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from tusserver import Settings
from tusserver.serving.cli import parse_args


@pytest.mark.parametrize(("given", "path"), [("api", "/api"), ("/api/", "/api"), ("/v1/status", "/v1/status")])
def test_api_path_is_normalized(given: str, path: str) -> None:
    assert Settings(api_path=given).api_path == path


def test_api_path_defaults_to_api_and_may_be_off() -> None:
    assert Settings().api_path == "/api"
    assert parse_args(["--api-path", "off"], {}).api_path is None
    assert parse_args([], {"TUSSERVER_API_PATH": "status"}).api_path == "/status"


@pytest.mark.parametrize(
    ("settings", "message"),
    [
        ({"api_path": "/"}, "--api-path must name a path of its own"),
        ({"api_path": "/files", "base_path": "/files/"}, "--api-path must differ from --base-path"),
        ({"api_path": "/api", "base_path": "api"}, "--api-path must differ from --base-path"),
    ],
)
def test_api_path_must_be_apart(settings: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Settings.model_validate(settings)


def test_apis_below_the_upload_collection_are_apart() -> None:
    """Uploads are one segment below the base path: an API deeper down is never taken for one."""
    assert Settings(base_path="/", api_path="/api").api_path == "/api"
    assert Settings(base_path="/files/", api_path="/files/status").api_path == "/files/status"

"""The `--auth-*` settings: flags and variables, what they refuse, and the one-line reasons at start-up."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from tests.auth.jwt_keys import SECRET, SigningKey
from tusserver import Settings
from tusserver.coordination.auth.keys import FixedKey
from tusserver.coordination.auth.setup import build_authenticator
from tusserver.serving.cli import parse_args


def test_flags_and_variables_configure_authorization(tmp_path: Path) -> None:
    settings = parse_args(
        ["--auth-jwks-url", "https://idp.example/jwks.json", "--auth-admins", "root, curator",
         "--auth-admin-claim", "roles=admin", "--auth-jwt-audience", "tus"],
        {"TUSSERVER_AUTH_JWT_ISSUER": "https://idp.example/"},
    )  # fmt: skip
    assert settings.auth_jwks_url == "https://idp.example/jwks.json"
    assert settings.auth_admins == ("root", "curator")
    assert (settings.auth_jwt_audience, settings.auth_jwt_issuer) == ("tus", "https://idp.example/")
    assert settings.auth_admin_claim == "roles=admin"
    assert "auth_jwt_secret" not in repr(parse_args([], {"TUSSERVER_AUTH_JWT_SECRET": SECRET}))  # never logged


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"auth_jwt_secret": SECRET, "auth_jwks_url": "https://idp/jwks"}, "exclude each other"),
        ({"auth_jwt_audience": "tus"}, "--auth-jwt-audience needs --auth-jwt-secret"),
        ({"auth_admin_claim": "roles=admin"}, "--auth-admin-claim needs"),
        ({"auth_jwt_secret": "short"}, "at least 32 bytes"),
        ({"auth_jwks_url": "file:///etc/passwd"}, "http(s) URL"),
    ],
)
def test_settings_that_cannot_work_are_refused(options: dict[str, str], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        Settings(**options)


def test_no_token_key_means_no_token_check() -> None:
    assert build_authenticator(Settings(auth_admins=("root",))) is None


def test_a_public_key_file_that_cannot_be_used_stops_the_start_up(tmp_path: Path, rsa_signer: SigningKey) -> None:
    missing = tmp_path / "missing.pem"
    with pytest.raises(ValueError, match=r"--auth-jwt-public-key .*missing\.pem: cannot read it"):
        build_authenticator(Settings(auth_jwt_public_key=missing))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a key")
    with pytest.raises(ValueError, match="not a usable PEM public key"):
        build_authenticator(Settings(auth_jwt_public_key=garbage))
    good = tmp_path / "issuer.pem"
    good.write_bytes(rsa_signer.public_pem())
    auth = build_authenticator(Settings(auth_jwt_public_key=good))
    assert auth is not None
    assert isinstance(auth.keys, FixedKey)


def test_a_malformed_admin_claim_stops_the_start_up() -> None:
    with pytest.raises(ValueError, match="NAME=VALUE"):
        build_authenticator(Settings(auth_jwt_secret=SECRET, auth_admin_claim=" =admin"))


def test_without_pyjwt_one_line_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "tusserver.coordination.auth.tokens", None)  # as if PyJWT were missing
    with pytest.raises(RuntimeError, match=r"^--auth-jwt-secret needs PyJWT: pip install 'tusserver\[auth\]'$"):
        build_authenticator(Settings(auth_jwt_secret=SECRET))


def test_a_refused_setting_never_shows_the_secret() -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(auth_jwt_secret=SECRET, auth_jwks_url="https://idp.example/jwks.json")
    assert SECRET not in str(caught.value)

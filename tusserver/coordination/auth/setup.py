"""The bearer-token check a server runs, from its settings (`--auth-*`); None when no token key is set.

Free of PyJWT itself: the CLI imports it to check the settings at start-up, also where the extra is missing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tusserver.coordination.auth.claims import AdminClaim
from tusserver.settings import Settings

if TYPE_CHECKING:
    from tusserver.coordination.auth.keys import KeySource
    from tusserver.coordination.auth.tokens import BearerAuth

__all__ = ["build_authenticator"]


def build_authenticator(settings: Settings) -> BearerAuth | None:
    """The configured bearer-token check.

    Raises:
        RuntimeError: PyJWT (the `auth` extra) is not installed.
        ValueError: the public key file cannot be read or used, or `--auth-admin-claim` is malformed.
    """
    flag = _key_flag(settings)
    if flag is None:
        return None
    admin_claim = AdminClaim.parse(settings.auth_admin_claim) if settings.auth_admin_claim is not None else None
    try:
        from tusserver.coordination.auth.tokens import BearerAuth  # noqa: PLC0415 (PyJWT is an extra)
    except ImportError:
        raise RuntimeError(f"{flag} needs PyJWT: pip install 'tusserver[auth]'") from None
    return BearerAuth(
        _keys(settings), audience=settings.auth_jwt_audience, issuer=settings.auth_jwt_issuer, admin_claim=admin_claim
    )


def _key_flag(settings: Settings) -> str | None:
    if settings.auth_jwt_secret is not None:
        return "--auth-jwt-secret"
    if settings.auth_jwt_public_key is not None:
        return "--auth-jwt-public-key"
    return "--auth-jwks-url" if settings.auth_jwks_url is not None else None


def _keys(settings: Settings) -> KeySource:
    from tusserver.coordination.auth import jwks, keys  # noqa: PLC0415 (PyJWT is an extra)

    if settings.auth_jwt_secret is not None:
        return keys.secret_key(settings.auth_jwt_secret)
    if settings.auth_jwks_url is not None:
        return jwks.JWKSKeys(jwks.http_fetcher(settings.auth_jwks_url))
    path = settings.auth_jwt_public_key
    assert path is not None
    try:
        return keys.pem_key(path.read_bytes())
    except OSError as exc:
        raise ValueError(f"--auth-jwt-public-key {path}: cannot read it ({exc.strerror or exc})") from None
    except ValueError as exc:
        raise ValueError(f"--auth-jwt-public-key {path}: not a usable PEM public key ({exc})") from None

"""Fixtures of the authorization tests: signing keys (made once: RSA key generation is slow), a JWKS endpoint."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.auth.jwt_keys import JWKSServer, SigningKey, ec_key, rsa_key


@pytest.fixture(scope="session")
def rsa_signer() -> SigningKey:
    return rsa_key("rsa-1")


@pytest.fixture(scope="session")
def ec_signer() -> SigningKey:
    return ec_key("ec-1")


@pytest.fixture
def jwks_server(rsa_signer: SigningKey) -> Iterator[JWKSServer]:
    """A JWKS endpoint on a free port, serving `rsa_signer`'s public key."""
    server = JWKSServer()
    server.keys = [rsa_signer.jwk()]
    with server.running():
        yield server

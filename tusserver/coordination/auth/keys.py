"""The keys bearer tokens are checked with: one fixed key (an HS256 secret, a PEM public key), or those of a
JWKS (`jwks.JWKSKeys`). Each pairs a key with the algorithms it may verify, so that a token's own `alg` never
chooses how it is checked (no HS256 token "signed" with a public key, no `none`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, TypeAlias

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, rsa
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from jwt import PyJWK
from jwt.algorithms import AllowedPublicKeys

__all__ = ["FixedKey", "Key", "KeySource", "Verifier", "pem_key", "secret_key"]

Key: TypeAlias = PyJWK | str | AllowedPublicKeys
RSA_ALGORITHMS = ("RS256", "RS384", "RS512", "PS256", "PS384", "PS512")
EC_ALGORITHMS = {"secp256r1": "ES256", "secp384r1": "ES384", "secp521r1": "ES512"}  # each curve has one (RFC 7518)


@dataclass(frozen=True, slots=True)
class Verifier:
    """A key and the only algorithms a token checked with it may use."""

    key: Key
    algorithms: tuple[str, ...]


class KeySource(Protocol):
    """Where the key for a token comes from."""

    async def verifier(self, kid: str | None) -> Verifier:
        """The key for a token whose header names `kid` (None: names none).

        Raises:
            UnauthorizedError: no key has that `kid` (401, invalid_token).
            ServiceUnavailableError: the keys cannot be had now (503: clients retry).
        """
        ...


class FixedKey:
    """One key for every token, whatever `kid` it names (a secret or a public key given to the server)."""

    def __init__(self, verifier: Verifier) -> None:
        self._verifier = verifier

    async def verifier(self, kid: str | None) -> Verifier:
        return self._verifier


def secret_key(secret: str) -> FixedKey:
    """HS256 with `secret` (RFC 7518 §3.2 wants 32 bytes or more: `Settings` checks it)."""
    return FixedKey(Verifier(secret, ("HS256",)))


def pem_key(data: bytes) -> FixedKey:
    """The public key of a PEM file (a public key or a certificate) and the algorithms of its kind.

    Raises:
        ValueError: not a PEM public key or certificate, or a kind of key JWTs are not signed with.
    """
    certificate = b"-----BEGIN CERTIFICATE-----" in data
    key = x509.load_pem_x509_certificate(data).public_key() if certificate else load_pem_public_key(data)
    if isinstance(key, rsa.RSAPublicKey):
        return FixedKey(Verifier(key, RSA_ALGORITHMS))
    if isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name in EC_ALGORITHMS:
        return FixedKey(Verifier(key, (EC_ALGORITHMS[key.curve.name],)))
    if isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
        return FixedKey(Verifier(key, ("EdDSA",)))
    raise ValueError(f"a {type(key).__name__} cannot check JWTs: use an RSA, EC (P-256/384/521) or Ed25519 key")

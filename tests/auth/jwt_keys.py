"""Test keys, tokens and a JWKS endpoint on a free port, for the authorization tests (unit, HTTP and e2e)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from email.message import Message
from typing import Any

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from tests.json_server import JsonServer

SECRET = "a-test-secret-that-is-32-bytes-long!"
TUS = {"Tus-Resumable": "1.0.0"}


@dataclass(frozen=True)
class SigningKey:
    """A private key with the `kid` and algorithm its tokens name."""

    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    kid: str
    alg: str

    def jwk(self) -> dict[str, Any]:
        """The public half as a JWKS entry."""
        public = self.private.public_key()
        if isinstance(public, rsa.RSAPublicKey):
            entry = RSAAlgorithm.to_jwk(public, as_dict=True)
        else:
            entry = ECAlgorithm.to_jwk(public, as_dict=True)
        return {**entry, "kid": self.kid, "use": "sig", "alg": self.alg}

    def public_pem(self) -> bytes:
        return self.private.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )


def rsa_key(kid: str = "rsa-1") -> SigningKey:
    return SigningKey(rsa.generate_private_key(public_exponent=65537, key_size=2048), kid, "RS256")


def ec_key(kid: str = "ec-1") -> SigningKey:
    return SigningKey(ec.generate_private_key(ec.SECP256R1()), kid, "ES256")


def token(key: str | SigningKey = SECRET, sub: str | None = "alice", *, expires_in: float = 300, **claims: Any) -> str:
    """A JWT for `sub`, expiring `expires_in` seconds from now (negative: expired), with `claims` added."""
    payload: dict[str, Any] = {"exp": int(time.time() + expires_in), **claims}
    if sub is not None:
        payload["sub"] = sub
    if isinstance(key, str):
        return jwt.encode(payload, key, algorithm="HS256")
    return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})


def bearer(key: str | SigningKey = SECRET, sub: str = "alice", **claims: Any) -> dict[str, str]:
    """tus headers with an Authorization header carrying a token for `sub`."""
    return TUS | {"Authorization": f"Bearer {token(key, sub, **claims)}"}


class JWKSServer:
    """Serves `keys` as a JWKS at `url` from a thread; counts the fetches. While `held` is clear, answers wait."""

    def __init__(self) -> None:
        self.keys: list[dict[str, Any]] = []
        self.fetches = 0
        self.held = threading.Event()
        self.held.set()
        self._server = JsonServer(self._answer)

    def _answer(self, path: str, _headers: Message) -> tuple[int, Any]:
        self.fetches += 1
        self.held.wait(10)
        return 200 if path == "/jwks.json" else 404, {"keys": self.keys}

    @property
    def url(self) -> str:
        return f"{self._server.origin}/jwks.json"

    @contextmanager
    def running(self) -> Iterator[JWKSServer]:
        self._server.start()
        try:
            yield self
        finally:
            self.held.set()
            self._server.stop()

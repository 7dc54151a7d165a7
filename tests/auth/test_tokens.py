"""Bearer tokens checked (tusserver/coordination/auth): keys, claims, refusals and their challenges (RFC 6750)."""

from __future__ import annotations

import base64
import datetime
import hashlib
import hmac
from typing import Any

import jwt
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from tests.auth.jwt_keys import SECRET, SigningKey, token
from tusserver.coordination.auth.claims import AdminClaim
from tusserver.coordination.auth.keys import pem_key, secret_key
from tusserver.coordination.auth.tokens import BearerAuth
from tusserver.protocol.errors import UnauthorizedError
from tusserver.protocol.principals import Principal

pytestmark = pytest.mark.anyio

INVALID = 'Bearer error="invalid_token"'


def base64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


async def refusal(auth: BearerAuth, authorization: str | None) -> UnauthorizedError:
    with pytest.raises(UnauthorizedError) as caught:
        await auth.principal(authorization)
    assert caught.value.code == "ERR_UNAUTHORIZED"
    assert caught.value.status == 401
    return caught.value


async def test_a_valid_hs256_token_gives_its_sub_as_the_principal() -> None:
    auth = BearerAuth(secret_key(SECRET))
    assert await auth.principal(f"Bearer {token(sub='alice')}") == Principal("alice", admin=False)
    assert await auth.principal(f"bearer  {token(sub='bob')} ") == Principal("bob")  # the scheme in any case


@pytest.mark.parametrize("authorization", [None, "Basic YWxpY2U6c2VjcmV0"])
async def test_no_bearer_token_gets_a_bare_challenge(authorization: str | None) -> None:
    error = await refusal(BearerAuth(secret_key(SECRET)), authorization)
    assert error.headers() == {"WWW-Authenticate": "Bearer"}  # RFC 6750 §3.1: no error code without a token


@pytest.mark.parametrize(
    ("authorization", "reason"),
    [
        ("Bearer", "the bearer token is empty"),
        ("Bearer not-a-jwt", "the token is not a JWT"),
        (f"Bearer {token(expires_in=-120)}", "the token has expired"),
        (f"Bearer {token('another-secret-that-is-32-bytes-long')}", "Signature verification failed"),
        (f"Bearer {token(sub=None)}", 'Token is missing the "sub" claim'),
        (f"Bearer {token(sub='')}", "the token's sub (its principal) is empty"),
        (f"Bearer {jwt.encode({'sub': 'alice'}, SECRET, algorithm='HS256')}", 'Token is missing the "exp" claim'),
        (f"Bearer {jwt.encode({'sub': 'a', 'exp': 2**40}, '', algorithm='none')}", "alg value is not allowed"),
        (f"Bearer {token(aud='another-service')}", "Invalid audience"),
    ],
)
async def test_a_bad_token_gets_invalid_token(authorization: str, reason: str) -> None:
    error = await refusal(BearerAuth(secret_key(SECRET)), authorization)
    assert reason in error.message
    challenge = error.headers()["WWW-Authenticate"]
    assert challenge.startswith(INVALID)
    assert '"' not in challenge.split("error_description=", 1)[1].strip('"')  # quoted-string safe (RFC 6750 §3)


async def test_expiry_allows_a_little_clock_skew() -> None:
    auth = BearerAuth(secret_key(SECRET))
    assert (await auth.principal(f"Bearer {token(expires_in=-10)}")).id == "alice"


async def test_audience_and_issuer_must_match_when_configured() -> None:
    auth = BearerAuth(secret_key(SECRET), audience="tus", issuer="https://idp.example/")
    good = token(aud="tus", iss="https://idp.example/")
    assert (await auth.principal(f"Bearer {good}")).id == "alice"
    assert (await auth.principal(f"Bearer {token(aud=['other', 'tus'], iss='https://idp.example/')}")).id == "alice"
    for bad in (token(aud="other", iss="https://idp.example/"), token(iss="https://idp.example/"), token(aud="tus")):
        assert (await refusal(auth, f"Bearer {bad}")).invalid_token


async def test_rs256_and_es256_with_a_pem_public_key(rsa_signer: SigningKey, ec_signer: SigningKey) -> None:
    for signer in (rsa_signer, ec_signer):
        auth = BearerAuth(pem_key(signer.public_pem()))
        assert (await auth.principal(f"Bearer {token(signer, 'carol')}")).id == "carol"
    wrong = BearerAuth(pem_key(ec_signer.public_pem()))
    assert (await refusal(wrong, f"Bearer {token(rsa_signer)}")).invalid_token


async def test_a_certificate_pem_gives_its_public_key(rsa_signer: SigningKey) -> None:
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "issuer")])
    now = datetime.datetime.now(datetime.UTC)
    builder = x509.CertificateBuilder().subject_name(name).issuer_name(name).serial_number(1)
    builder = builder.public_key(rsa_signer.private.public_key()).not_valid_before(now)
    certificate = builder.not_valid_after(now + datetime.timedelta(days=1)).sign(rsa_signer.private, hashes.SHA256())
    auth = BearerAuth(pem_key(certificate.public_bytes(Encoding.PEM)))
    assert (await auth.principal(f"Bearer {token(rsa_signer)}")).id == "alice"


async def test_an_hs256_token_signed_with_the_public_key_is_refused(rsa_signer: SigningKey) -> None:
    """Algorithm confusion: the public key is no secret, so an HS256 token "signed" with it proves nothing."""
    segments = [base64url(b'{"alg":"HS256","typ":"JWT"}'), base64url(b'{"sub":"mallory","exp":9999999999}')]
    signing_input = ".".join(segments).encode()
    signature = hmac.new(rsa_signer.public_pem(), signing_input, hashlib.sha256).digest()  # PyJWT will not make it
    forged = f"{signing_input.decode()}.{base64url(signature)}"
    error = await refusal(BearerAuth(pem_key(rsa_signer.public_pem())), f"Bearer {forged}")
    assert "alg value is not allowed" in error.message


def test_a_pem_that_is_no_public_key_is_refused() -> None:
    with pytest.raises(ValueError, match="PEM"):
        pem_key(b"-----BEGIN PUBLIC KEY-----\nnot base64\n-----END PUBLIC KEY-----\n")


@pytest.mark.parametrize(
    ("setting", "claims", "admin"),
    [
        ("role=admin", {"role": "admin"}, True),
        ("role=admin", {"role": "administrator"}, False),
        ("roles=admin", {"roles": ["user", "admin"]}, True),
        ("roles=admin", {"roles": ["user"]}, False),
        ("realm_access.roles=admin", {"realm_access": {"roles": ["admin"]}}, True),
        ("realm_access.roles=admin", {"realm_access": ["admin"]}, False),
        ("https://example.com/roles=admin", {"https://example.com/roles": ["admin"]}, True),
        ("is_admin", {"is_admin": True}, True),
        ("is_admin", {"is_admin": "true"}, False),
        ("is_admin", {}, False),
    ],
)
async def test_the_admin_claim(setting: str, claims: dict[str, Any], admin: bool) -> None:
    auth = BearerAuth(secret_key(SECRET), admin_claim=AdminClaim.parse(setting))
    assert (await auth.principal(f"Bearer {token(**claims)}")).admin is admin


def test_an_admin_claim_needs_a_name() -> None:
    with pytest.raises(ValueError, match="NAME=VALUE"):
        AdminClaim.parse("=admin")

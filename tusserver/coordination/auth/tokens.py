"""A request's bearer token (RFC 6750: `Authorization: Bearer <JWT>`) checked, and its principal.

A token must be signed with the configured key (its `alg` one that key may verify), unexpired (`exp` is
required: a token that never expires cannot be taken back), carry a `sub` (the principal), and the configured
`aud` and `iss`. Anything else is a 401 with `WWW-Authenticate: Bearer`: bare when no token was sent, with
`error="invalid_token"` when one was and it does not do.
"""

from __future__ import annotations

import jwt

from tusserver.coordination.auth.claims import AdminClaim
from tusserver.coordination.auth.keys import KeySource, Verifier
from tusserver.protocol.errors import UnauthorizedError
from tusserver.protocol.model import OWS
from tusserver.protocol.principals import Principal

__all__ = ["LEEWAY", "BearerAuth", "bearer_token"]

LEEWAY = 30.0  # seconds a token is still taken past its `exp` (or before its `nbf`): clocks differ a little


class BearerAuth:
    """Checks bearer tokens with the keys of `keys`.

    Args:
        keys: a fixed key or an issuer's JWKS.
        audience: the `aud` a token must carry; None: tokens that carry one are refused (PyJWT's rule: a token
            meant for some other service is not taken here by accident).
        issuer: the `iss` a token must carry; None checks none.
        admin_claim: the claim that makes a principal an admin, if any.
    """

    def __init__(
        self,
        keys: KeySource,
        *,
        audience: str | None = None,
        issuer: str | None = None,
        admin_claim: AdminClaim | None = None,
    ) -> None:
        self.keys, self.audience, self.issuer, self.admin_claim = keys, audience, issuer, admin_claim

    async def principal(self, authorization: str | None) -> Principal:
        """The principal of the request whose Authorization header is `authorization` (None: it has none).

        Raises:
            UnauthorizedError: no bearer token, or one that does not do (401).
            ServiceUnavailableError: the keys to check it with cannot be had now (503).
        """
        token = bearer_token(authorization)
        verifier = await self.keys.verifier(_key_id(token))
        claims = self._claims(token, verifier)
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise UnauthorizedError("the token's sub (its principal) is empty", invalid_token=True)
        admin = self.admin_claim is not None and self.admin_claim.holds(claims)
        return Principal(subject, admin=admin)

    def _claims(self, token: str, verifier: Verifier) -> dict[str, object]:
        try:
            return jwt.decode(
                token,
                verifier.key,
                algorithms=list(verifier.algorithms),
                audience=self.audience,
                issuer=self.issuer,
                leeway=LEEWAY,
                options={"require": ["exp", "sub"]},
            )
        except jwt.ExpiredSignatureError:
            raise UnauthorizedError("the token has expired", invalid_token=True) from None
        except jwt.InvalidTokenError as exc:  # a bad signature, audience, issuer, algorithm, a missing claim
            raise UnauthorizedError(f"the token is not valid: {exc}", invalid_token=True) from None


def bearer_token(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer <token>` header (the scheme in any case, RFC 9110 §11.1).

    Raises:
        UnauthorizedError: no header, another scheme (a bare challenge: RFC 6750 §3.1), or an empty token.
    """
    if authorization is None:
        raise UnauthorizedError()
    scheme, _, token = authorization.strip(OWS).partition(" ")
    if scheme.lower() != "bearer":
        raise UnauthorizedError("Authorization must be a bearer token: Authorization: Bearer <token>")
    token = token.strip(OWS)
    if not token:
        raise UnauthorizedError("the bearer token is empty", invalid_token=True)
    return token


def _key_id(token: str) -> str | None:
    try:
        kid = jwt.get_unverified_header(token).get("kid")
    except jwt.InvalidTokenError:
        raise UnauthorizedError("the token is not a JWT", invalid_token=True) from None
    if kid is not None and not isinstance(kid, str):
        raise UnauthorizedError("the token's kid is not a string", invalid_token=True)
    return kid
